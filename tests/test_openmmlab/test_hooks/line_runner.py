"""A tiny mmengine training run for the engine hooks' tests: linear regression
on eight points, two iterations per epoch, SGD, on CPU in a few milliseconds."""

import torch
from mmengine.runner import Runner
from torch.utils.data import Dataset


class Line(Dataset):
    """Eight points ``x`` with the target ``y = 2 * x[0] - x[2]``."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([i / 8, 1.0, -i / 16])
        return dict(x=x, y=2 * x[0] - x[2])


def line_runner(
    work_dir,
    model,
    *,
    by_epoch=False,
    max_iters=6,
    checkpoint=None,
    custom_hooks=None,
    **kwargs,
):
    """A ``Runner`` training ``model`` on :class:`Line` in the mmseg scope.

    Args:
        work_dir: The work directory.
        model: An mmengine ``BaseModel`` taking ``x`` and ``y``.
        by_epoch: Train 3 epochs (6 iterations) instead of ``max_iters``
            iterations; the checkpoint hook counts the same unit.
        max_iters: Iterations of an iteration-based run.
        checkpoint: More ``CheckpointHook`` arguments (``interval``, ...).
        custom_hooks: The runner's custom hooks.
        **kwargs: More ``Runner`` arguments (``resume``, ``load_from``, ...).
    """
    train_cfg = (
        dict(by_epoch=True, max_epochs=3)
        if by_epoch
        else dict(by_epoch=False, max_iters=max_iters)
    )
    return Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Line(),
            batch_size=4,  # 2 iterations per epoch
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
        ),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=train_cfg,
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', by_epoch=by_epoch, **(checkpoint or {})
            )
        ),
        custom_hooks=custom_hooks,
        default_scope='mmseg',
        **kwargs,
    )

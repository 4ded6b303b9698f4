"""Stop training at the first NaN or Inf loss, naming where it happened.

A diverged loss (too high a learning rate, a bad sample, an fp16 overflow)
turns the weights into NaN within a step, and mmengine keeps going: the log
shows ``loss: nan`` and every later checkpoint holds a broken model.
:class:`NaNGuardHook` checks every loss term after each training iteration
and raises :class:`NonFiniteLossError` with the iteration (and epoch) and the
offending terms. It runs before the ``CheckpointHook`` of the same iteration,
so no checkpoint is written after the loss went bad: the last checkpoint is
the one to resume from, e.g. with a lower learning rate or gradient
clipping.

Example:
    >>> custom_hooks = [dict(type='NaNGuardHook')]  # in a config
"""

from typing import Any, Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from ...utils.validation import check_int
from ..registry import register_hook

__all__ = ['NaNGuardHook', 'NonFiniteLossError', 'add_nan_guard']


class NonFiniteLossError(FloatingPointError):
    """A loss term was NaN or infinite; training was stopped."""


def _non_finite(value: Any) -> Optional[str]:
    """The value as text if any element of it is NaN or Inf, else None."""
    tensor = torch.as_tensor(value).detach()
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
        return None
    return str(tensor.item() if tensor.numel() == 1 else tensor.tolist())


@register_hook()
class NaNGuardHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss term is NaN or Inf.

    After each training iteration, every entry of the model's log variables
    whose name contains ``'loss'`` (the terms mmengine sums into the total
    ``loss``, and the total) is checked. Other entries, such as accuracies,
    are not. In a distributed run the ranks agree through one all-reduce, so
    they all stop at the same iteration instead of waiting for one another.

    Iterations and epochs in the message count from 1, as in the training
    log (``Iter(train) [k/N]``, ``Epoch(train) [e][i/N]``).

    Args:
        interval (int): Check every ``interval`` iterations; 1 checks all.
            Default: 1.

    Example:
        >>> custom_hooks = [dict(type='NaNGuardHook')]  # in a config
    """

    # Above the LoggerHook (BELOW_NORMAL), ParamSchedulerHook (LOW) and
    # CheckpointHook (VERY_LOW): nothing of the broken iteration is saved.
    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 1) -> None:
        self.interval = check_int('interval', interval)

    def after_train_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Check the loss terms of the iteration that just ran.

        Raises:
            NonFiniteLossError: A loss term (here or on another rank) is NaN
                or infinite.
        """
        if not self.every_n_train_iters(runner, self.interval):
            return
        bad: List[str] = []
        if isinstance(outputs, dict):
            # the terms first, their total ('loss') last
            names = sorted(
                (k for k in outputs if 'loss' in k), key=lambda k: k == 'loss'
            )
            for name in names:
                value = outputs[name]
                text = _non_finite(value)
                if text is not None:
                    bad.append(f'{name}={text}')
        ranks_bad = int(bool(bad))  # ranks with a non-finite loss
        if get_world_size() > 1:
            flag = torch.tensor([float(len(bad) > 0)])
            all_reduce(flag, op='sum')
            ranks_bad = int(flag.item())
        if not ranks_bad:
            return
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += (
                f' (epoch {runner.epoch + 1}, iteration {batch_idx + 1} of the epoch)'
            )
        if bad:
            what = 'non-finite loss ' + ', '.join(bad)
            if get_world_size() > 1:
                what += f' on rank {get_rank()}'
        else:
            what = f'non-finite loss on {ranks_bad} other rank(s)'
        raise NonFiniteLossError(
            f'{what} at {where}; training stopped before anything of this '
            f'iteration was checkpointed. Resume from the last checkpoint with '
            f'a lower learning rate or gradient clipping '
            f'(optim_wrapper.clip_grad), or check the data of this iteration.'
        )


def add_nan_guard(cfg: Config, **kwargs: Any) -> bool:
    """Append a :class:`NaNGuardHook` to ``cfg.custom_hooks`` unless present.

    Args:
        cfg (Config): A training config, changed in place.
        **kwargs: Arguments of :class:`NaNGuardHook`.

    Returns:
        bool: True if the hook was added, False if the config already had one.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    for hook in hooks:
        kind = hook.get('type') if isinstance(hook, dict) else type(hook)
        if kind in ('NaNGuardHook', NaNGuardHook) or isinstance(hook, NaNGuardHook):
            return False
    hooks.append(dict(type='NaNGuardHook', **kwargs))
    cfg.custom_hooks = hooks
    return True

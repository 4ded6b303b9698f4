"""RNGStateHook in mmengine's Runner: a resumed run draws the random numbers
an uninterrupted one draws, so it ends with the same weights, bit for bit.

The runs here train a small network with dropout (torch's generator) on data
whose every fetch draws from numpy, Python's ``random`` and torch, as random
augmentations do, with shuffling; without the hook such a resume diverges.
The same guarantee through ``tools/train.py`` on the demo configs is tested in
``tests/test_tools/test_exact_resume.py``."""

import io
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmdrn.openmmlab.compat import mmengine_checkpoints_allowed
from mmdrn.openmmlab.hooks import rng_state
from mmdrn.openmmlab.hooks.rng_state import (
    RNG_STATE_KEY,
    capture_rng_state,
    restore_rng_state,
)
from mmdrn.utils import load_file


class _Noisy(Dataset):
    """Eight points; each fetch draws noise from numpy, random and torch."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        noise = [np.random.rand(), random.random(), np.random.randn()]
        x = torch.tensor([i / 8, 1.0, *noise, torch.rand(()).item()])
        return dict(x=x, y=2 * x[0] - x[2])


class _DropoutNet(BaseModel):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 1))

    def forward(self, x, y=None, mode='tensor'):
        out = self.body(x).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - y) ** 2).mean())
        return list(out) if mode == 'predict' else out


class _MeanPrediction(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(float(p) for p in data_samples)

    def compute_metrics(self, results):
        return dict(mean=sum(results) / len(results))


def _loader(shuffle, num_workers=0, batch_size=2, infinite=False, persistent=False):
    sampler = 'InfiniteSampler' if infinite else 'DefaultSampler'
    return dict(
        dataset=_Noisy(),
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=persistent,
        sampler=dict(type=sampler, shuffle=shuffle),
        collate_fn=dict(type='default_collate'),
    )


def _runner(
    work_dir,
    *,
    hook=True,
    by_epoch=False,
    num_workers=0,
    batch_size=2,
    persistent_workers=False,
    val_interval=1000,
    checkpoint=None,
    **kwargs,
):
    """A seeded run: 6 iterations (or 3 epochs of 4), a checkpoint every 2
    iterations (or every epoch), validation every ``val_interval``."""
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=val_interval)
    else:
        train_cfg = dict(by_epoch=False, max_iters=6, val_interval=val_interval)
    torch.manual_seed(0)  # the model is built before the Runner seeds
    return Runner(
        model=_DropoutNet(),
        work_dir=str(work_dir),
        train_dataloader=_loader(
            True, num_workers, batch_size, not by_epoch, persistent_workers
        ),
        val_dataloader=_loader(False, batch_size=4),
        val_evaluator=[_MeanPrediction()],
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=train_cfg,
        default_hooks=dict(
            checkpoint=checkpoint
            or dict(
                type='CheckpointHook', by_epoch=by_epoch, interval=1 if by_epoch else 2
            )
        ),
        custom_hooks=[dict(type='RNGStateHook')] if hook else [],
        randomness=dict(seed=0),
        default_scope='mmseg',
        **kwargs,
    )


def _train(runner):
    runner.train()
    # Ends worker processes now: left to the garbage collector (or to the
    # interpreter's exit), their shutdown waits out a 5 s timeout each.
    loop = runner.train_loop
    if hasattr(loop, 'dataloader_iterator'):
        loop.dataloader_iterator = None
    elif loop.dataloader.persistent_workers:
        loop.dataloader = None
    return runner


def _resumed(work_dir, path, **kwargs):
    return _train(_runner(work_dir, resume=True, load_from=str(path), **kwargs))


def _weights(path):
    return load_file(path)['state_dict']


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def logged(monkeypatch):
    """The hook's warnings, as logged."""
    logged = []
    monkeypatch.setattr(
        rng_state, 'print_log', lambda msg, logger=None, level=None: logged.append(msg)
    )
    return logged


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """An uninterrupted run with the hook, validating every 2 iterations:
    its work dir, holding iter_2.pth, iter_4.pth and iter_6.pth."""
    work = tmp_path_factory.mktemp('reference')
    _train(_runner(work, val_interval=2))
    return work


def test_capture_and_restore_replay_every_generator():
    np.random.randn()  # leaves a cached Gaussian in numpy's state
    random.gauss(0, 1)  # and in random's
    state = capture_rng_state()

    def draws():
        return (
            torch.rand(3),
            np.random.randn(3),
            np.random.rand(),
            random.gauss(0, 1),
            random.random(),
        )

    first = draws()
    restore_rng_state(state)
    second = draws()
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2:] == second[2:]


def _only_plain_types(value) -> bool:
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and _only_plain_types(v) for k, v in value.items()
        )
    if isinstance(value, (list, tuple)):
        return all(_only_plain_types(v) for v in value)
    return isinstance(value, (torch.Tensor, int, float, str, type(None)))


def test_checkpoint_carries_the_state_in_weights_only_types(reference):
    record = load_file(reference / 'iter_4.pth')[RNG_STATE_KEY]
    assert record['version'] == 1 and record['iter'] == 4
    assert record['world_size'] == 1 and len(record['ranks']) == 1
    assert record['loader'] == dict(
        seed=0, sampler_seed=0, batch_size=2, num_workers=0, cuda=False
    )
    assert set(record['ranks'][0]) == {'torch', 'numpy', 'random'}
    # Needs nothing on torch's weights-only allow-list.
    assert _only_plain_types(record)
    buffer = io.BytesIO()
    torch.save(record, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert torch.equal(loaded['ranks'][0]['torch'], record['ranks'][0]['torch'])


@pytest.mark.parametrize('step', [2, 4])
def test_resume_ends_with_the_uninterrupted_weights(tmp_path, reference, step, logged):
    """From either checkpoint, although the uninterrupted run validated at
    iterations 2 and 4 and the resumed one does not at its first."""
    _resumed(tmp_path, reference / f'iter_{step}.pth', val_interval=2)
    assert _same(_weights(tmp_path / 'iter_6.pth'), _weights(reference / 'iter_6.pth'))
    assert logged == []


def test_resume_with_worker_processes(tmp_path):
    """Workers are re-seeded by mmengine and replayed; the main process's
    state (dropout) comes from the checkpoint."""
    _train(_runner(tmp_path / 'a', num_workers=2))
    _resumed(tmp_path / 'b', tmp_path / 'a' / 'iter_2.pth', num_workers=2)
    assert _same(
        _weights(tmp_path / 'b' / 'iter_6.pth'), _weights(tmp_path / 'a' / 'iter_6.pth')
    )


def test_without_the_hook_resume_diverges(tmp_path):
    """The problem the hook solves: mmengine re-seeds on resume."""
    _train(_runner(tmp_path / 'a', hook=False))
    _resumed(tmp_path / 'b', tmp_path / 'a' / 'iter_2.pth', hook=False)
    assert not _same(
        _weights(tmp_path / 'b' / 'iter_6.pth'), _weights(tmp_path / 'a' / 'iter_6.pth')
    )


def test_validation_does_not_change_training(tmp_path, reference):
    _train(_runner(tmp_path))  # never validates before the end
    assert _same(_weights(tmp_path / 'iter_6.pth'), _weights(reference / 'iter_6.pth'))


def _edited(reference, tmp_path, edit):
    """A copy of iter_2.pth with ``edit`` applied to the loaded checkpoint."""
    checkpoint = load_file(reference / 'iter_2.pth')
    edit(checkpoint)
    path = tmp_path / 'edited.pth'
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope='module')
def fresh_seeding(tmp_path_factory, reference):
    """The final weights of a resume from iter_2.pth with fresh seeding (no
    validation before the end, which the hook would isolate)."""
    work = tmp_path_factory.mktemp('fresh')
    with mmengine_checkpoints_allowed():  # the autouse fixture is per test
        _resumed(work, reference / 'iter_2.pth', hook=False)
        return _weights(work / 'iter_6.pth')


def test_a_checkpoint_without_state_resumes_with_one_warning(
    tmp_path, reference, fresh_seeding, logged
):
    path = _edited(reference, tmp_path, lambda c: c.pop(RNG_STATE_KEY))
    _resumed(tmp_path / 'w', path)
    assert len(logged) == 1
    assert 'the checkpoint carries no random state' in logged[0]
    assert 'the continuation is not bit-exact' in logged[0]
    assert _same(_weights(tmp_path / 'w' / 'iter_6.pth'), fresh_seeding)


def test_another_number_of_processes_keeps_fresh_seeding(
    tmp_path, reference, fresh_seeding, logged
):
    def two_ranks(checkpoint):
        record = checkpoint[RNG_STATE_KEY]
        record.update(world_size=2, ranks=record['ranks'] * 2)

    _resumed(tmp_path / 'w', _edited(reference, tmp_path, two_ranks))
    assert logged == [
        'RNGStateHook: the checkpoint was saved by 2 processes, this run has 1: the '
        'random state is not restored (fresh seeding) and the continuation is not '
        'bit-exact'
    ]
    assert _same(_weights(tmp_path / 'w' / 'iter_6.pth'), fresh_seeding)


def test_changed_loader_settings_are_named(tmp_path, reference, logged):
    _resumed(tmp_path, reference / 'iter_2.pth', batch_size=4)
    assert len(logged) == 1
    assert 'the data loader settings differ from the checkpoint' in logged[0]
    assert '(batch_size: 2 then, 4 now)' in logged[0]
    assert 'the random state is restored, but the continuation is not' in logged[0]


def test_an_unknown_format_is_not_restored(tmp_path, reference, fresh_seeding, logged):
    path = _edited(reference, tmp_path, lambda c: c[RNG_STATE_KEY].update(version=9))
    _resumed(tmp_path / 'w', path)
    assert len(logged) == 1 and 'has format 9, this version reads 1' in logged[0]
    assert _same(_weights(tmp_path / 'w' / 'iter_6.pth'), fresh_seeding)


def test_load_from_is_no_resume(tmp_path, reference, logged):
    """Fine-tuning from a training checkpoint starts with the run's own
    seeding, as without the hook."""
    for name, hook in (('a', True), ('b', False)):
        _train(
            _runner(tmp_path / name, hook=hook, load_from=str(reference / 'iter_2.pth'))
        )
    assert _same(
        _weights(tmp_path / 'a' / 'iter_6.pth'), _weights(tmp_path / 'b' / 'iter_6.pth')
    )
    assert logged == []


def test_a_save_outside_an_iteration_carries_no_state(tmp_path, reference, logged):
    runner = _resumed(tmp_path, reference / 'iter_4.pth')
    runner.save_checkpoint(str(tmp_path), 'extra.pth', by_epoch=False)
    assert RNG_STATE_KEY not in load_file(tmp_path / 'extra.pth')
    assert logged == [
        'RNGStateHook: the checkpoint of iteration 7 is saved outside a training '
        'iteration and carries no random state: resuming from it, the continuation '
        'is not bit-exact'
    ]


def test_epoch_based_resume_at_an_epoch_end_is_exact(tmp_path, logged):
    """mmpretrain's loop: the next epoch's data loader starts from the saved
    state; validation after every epoch changes nothing."""
    _train(_runner(tmp_path / 'a', by_epoch=True, val_interval=1))
    _resumed(
        tmp_path / 'b', tmp_path / 'a' / 'epoch_1.pth', by_epoch=True, val_interval=1
    )
    assert _same(
        _weights(tmp_path / 'b' / 'epoch_3.pth'),
        _weights(tmp_path / 'a' / 'epoch_3.pth'),
    )
    assert logged == []


def test_epoch_based_resume_mid_epoch_warns(tmp_path, logged):
    """mmengine restarts an interrupted epoch from its first batch: the
    state of iteration 2 would not fit, so it is not restored."""
    iters = dict(type='CheckpointHook', by_epoch=False, interval=2)
    _train(_runner(tmp_path / 'a', by_epoch=True, checkpoint=iters))
    _resumed(
        tmp_path / 'b', tmp_path / 'a' / 'iter_2.pth', by_epoch=True, checkpoint=iters
    )
    assert logged == [
        'RNGStateHook: the checkpoint of iteration 2 was saved in the middle of '
        'epoch 1, which mmengine restarts from its first batch: the random state '
        'is not restored and the continuation is not bit-exact'
    ]
    assert (tmp_path / 'b' / 'iter_12.pth').is_file()


def test_epoch_based_resume_with_persistent_workers_warns(tmp_path, logged):
    """Workers that live across epochs carry their random state from one
    epoch into the next; a resumed run starts them afresh."""
    kwargs = dict(by_epoch=True, num_workers=2, persistent_workers=True)
    _train(_runner(tmp_path / 'a', **kwargs))
    _resumed(tmp_path / 'b', tmp_path / 'a' / 'epoch_1.pth', **kwargs)
    assert len(logged) == 1
    assert (
        'worker processes persist across epochs (persistent_workers=True)' in logged[0]
    )
    assert not _same(
        _weights(tmp_path / 'b' / 'epoch_3.pth'),
        _weights(tmp_path / 'a' / 'epoch_3.pth'),
    )

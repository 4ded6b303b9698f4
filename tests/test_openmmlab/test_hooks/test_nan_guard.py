"""A NaN or Inf loss stops training, naming the iteration and the terms."""

import math

import pytest
import torch
import torch.nn as nn
from line_runner import line_runner
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmpretrain.registry import HOOKS as PRETRAIN_HOOKS
from mmseg.registry import HOOKS as SEG_HOOKS

from mmdrn.openmmlab.hooks import nan_guard
from mmdrn.openmmlab.hooks.nan_guard import NaNGuardHook, NonFiniteLossError


class _Diverging(BaseModel):
    """Linear regression whose ``loss_aux`` turns ``bad`` at call ``at``.

    ``at`` counts training forward passes from 1, i.e. training iterations.
    """

    def __init__(self, at=None, bad=math.nan, extra=None):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.at, self.bad, self.extra = at, bad, extra or {}
        self.calls = 0

    def forward(self, x, y=None, mode='tensor'):
        out = self.linear(x).squeeze(-1)
        if mode != 'loss':
            return out
        self.calls += 1
        aux = torch.zeros(())
        if self.calls == self.at:
            # depends on the weights (and keeps the sign of bad): the update
            # of this iteration then breaks them, as a real divergence does
            aux = self.bad * (1 + out.mean() ** 2)
        losses = dict(loss_mse=((out - y) ** 2).mean(), loss_aux=aux)
        losses.update({k: torch.tensor(v) for k, v in self.extra.items()})
        return losses


def _runner(work_dir, model, by_epoch=False, hooks=None, max_iters=6):
    return line_runner(
        work_dir,
        model,
        by_epoch=by_epoch,
        max_iters=max_iters,
        checkpoint=dict(interval=1),
        custom_hooks=[dict(type='NaNGuardHook')] if hooks is None else hooks,
    )


def test_nan_loss_stops_training_at_its_iteration_without_checkpointing_it(tmp_path):
    runner = _runner(tmp_path, _Diverging(at=3))
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert 'non-finite loss loss_aux=nan, loss=nan at iteration 3;' in message
    assert 'loss_mse' not in message  # only the offending terms are named
    assert (tmp_path / 'iter_2.pth').is_file()
    assert not (tmp_path / 'iter_3.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_2.pth')


def test_without_the_guard_training_goes_on_and_saves_broken_weights(tmp_path):
    """Control: what the hook prevents."""
    runner = _runner(tmp_path, _Diverging(at=3), hooks=[])
    runner.train()
    broken = torch.load(tmp_path / 'iter_6.pth', weights_only=True)['state_dict']
    assert torch.isnan(broken['linear.weight']).all()


def test_inf_loss_in_an_epoch_based_run_names_epoch_and_iteration(tmp_path):
    runner = _runner(tmp_path, _Diverging(at=3, bad=-math.inf), by_epoch=True)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert 'loss_aux=-inf, loss=-inf' in message
    assert 'at iteration 3 (epoch 2, iteration 1 of the epoch)' in message
    assert (tmp_path / 'epoch_1.pth').is_file()
    assert not (tmp_path / 'epoch_2.pth').exists()


def test_non_loss_entries_may_be_nan(tmp_path):
    """Accuracies of a batch without valid pixels are NaN; that is no reason
    to stop."""
    runner = _runner(tmp_path, _Diverging(extra={'acc_seg': math.nan}), max_iters=2)
    runner.train()
    assert runner.iter == 2


def test_interval_checks_every_nth_iteration_only(tmp_path):
    runner = _runner(
        tmp_path,
        _Diverging(at=3),
        hooks=[dict(type='NaNGuardHook', interval=2)],
    )
    with pytest.raises(NonFiniteLossError, match='at iteration 4;'):
        runner.train()  # the NaN weights of iteration 3 make iteration 4 NaN


def test_all_ranks_stop_when_one_rank_diverges(tmp_path, monkeypatch):
    """The ranks agree through an all-reduce; here the other rank is bad."""
    reduced = []

    def all_reduce(flag, op):
        reduced.append(op)
        flag += 1  # the other rank's vote

    monkeypatch.setattr(nan_guard, 'get_world_size', lambda: 2)
    monkeypatch.setattr(nan_guard, 'all_reduce', all_reduce)
    runner = _runner(tmp_path, _Diverging(), max_iters=3)
    with pytest.raises(NonFiniteLossError, match='on 1 other rank.* at iteration 1;'):
        runner.train()
    assert reduced == ['sum']


@pytest.mark.parametrize(
    'interval,error,match',
    [
        (0, ValueError, 'interval must be an int >= 1, got 0'),
        (-2, ValueError, 'interval must be an int >= 1, got -2'),
        (1.5, TypeError, 'interval must be an int >= 1, got 1.5 of type float'),
        (True, TypeError, 'interval must be an int >= 1, got True of type bool'),
        ('1', TypeError, "interval must be an int >= 1, got '1' of type str"),
    ],
)
def test_bad_interval(interval, error, match):
    with pytest.raises(error, match=match):
        NaNGuardHook(interval=interval)


@pytest.mark.parametrize('registry', [SEG_HOOKS, PRETRAIN_HOOKS])
def test_registered_for_both_codebases(registry):
    with DefaultScope.overwrite_default_scope(registry.scope):
        hook = registry.build(dict(type='NaNGuardHook', interval=3))
    assert isinstance(hook, NaNGuardHook) and hook.interval == 3
    # before the CheckpointHook (VERY_LOW) and LoggerHook (BELOW_NORMAL)
    assert hook.priority == 'VERY_HIGH'

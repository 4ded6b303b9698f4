"""PreemptionHook in mmengine's Runner: a signal stops training after the
iteration in progress, with one resumable checkpoint and exit status 75."""

import os
import signal

import pytest
import torch
import torch.nn as nn
from line_runner import line_runner
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmpretrain.registry import HOOKS as PRETRAIN_HOOKS
from mmseg.registry import HOOKS as SEG_HOOKS

from mmdrn.openmmlab.hooks.preemption import (
    PREEMPTED_EXIT_CODE,
    PreemptionHook,
    TrainingPreempted,
    parse_signal,
)
from mmdrn.utils import load_file


class _Regression(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x, y=None, mode='tensor'):
        out = self.linear(x).squeeze(-1)
        return dict(loss=((out - y) ** 2).mean()) if mode == 'loss' else out


class _SignalAt(Hook):
    """Send ``sig`` to this process during iteration ``at`` (counted from 1)."""

    priority = 'VERY_HIGH'

    def __init__(self, at, sig=signal.SIGTERM):
        self.at, self.sig = at, sig

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), self.sig)


def _runner(work_dir, hooks, by_epoch=False, interval=100, keep=-1, **kwargs):
    torch.manual_seed(0)  # the same initial weights in every run
    return line_runner(
        work_dir,
        _Regression(),
        by_epoch=by_epoch,
        checkpoint=dict(interval=interval, max_keep_ckpts=keep),
        custom_hooks=hooks,
        **kwargs,
    )


@pytest.fixture
def restore_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _files(work_dir):
    return sorted(p for p in os.listdir(work_dir) if p.endswith(('.pth', '.tmp')))


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_the_iteration_in_progress_and_exits_75(
    tmp_path, restore_handlers, sig
):
    hook = PreemptionHook(signals=['SIGTERM', 'USR1'])
    runner = _runner(tmp_path, [hook, _SignalAt(3, sig)])
    with pytest.raises(TrainingPreempted) as info:
        runner.train()
    assert info.value.code == PREEMPTED_EXIT_CODE == 75
    path = str(tmp_path / 'iter_3.pth')
    assert str(info.value) == (
        f'training pre-empted by {sig.name} after iteration 3; resume from '
        f'{path} with tools/train.py CONFIG --resume (exit status 75)'
    )
    assert info.value.checkpoint == path
    assert _files(tmp_path) == ['iter_3.pth']  # one complete file, no temp file
    assert (tmp_path / 'last_checkpoint').read_text() == path
    saved = load_file(path)
    assert saved['meta']['iter'] == 3
    assert {'optimizer', 'message_hub'} <= set(saved)
    # Iteration 3 ran to its end: its update is in the saved weights.
    weight = runner.model.linear.weight.detach()
    assert torch.equal(saved['state_dict']['linear.weight'], weight)


def test_resume_continues_to_the_uninterrupted_weights(tmp_path, restore_handlers):
    straight = _runner(tmp_path / 'a', [])
    straight.train()
    with pytest.raises(TrainingPreempted):
        _runner(tmp_path / 'b', [PreemptionHook(), _SignalAt(4)]).train()
    ckpt = str(tmp_path / 'b' / 'iter_4.pth')
    resumed = _runner(tmp_path / 'b', [], resume=True, load_from=ckpt)
    resumed.train()
    assert resumed.iter == 6
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    # Iterations 5 and 6 moved the weights: the equality is not trivial.
    saved = load_file(ckpt)['state_dict']['linear.weight']
    assert not torch.equal(saved, straight.model.linear.weight.detach())


def test_a_periodic_checkpoint_of_the_same_iteration_is_not_written_twice(
    tmp_path, restore_handlers, monkeypatch
):
    runner = _runner(tmp_path, [PreemptionHook(), _SignalAt(4)], interval=2)
    saves = []
    real = runner.save_checkpoint
    monkeypatch.setattr(
        runner, 'save_checkpoint', lambda *a, **k: saves.append(a[1]) or real(*a, **k)
    )
    with pytest.raises(TrainingPreempted):
        runner.train()
    assert saves == ['iter_2.pth', 'iter_4.pth']
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_4.pth')


def test_max_keep_ckpts_never_deletes_the_preemption_checkpoint(
    tmp_path, restore_handlers
):
    # saved through the Runner's public save_checkpoint: the CheckpointHook's
    # list of files to rotate does not hold it
    runner = _runner(tmp_path, [PreemptionHook(), _SignalAt(5)], interval=2, keep=2)
    with pytest.raises(TrainingPreempted):
        runner.train()
    assert _files(tmp_path) == ['iter_2.pth', 'iter_4.pth', 'iter_5.pth']


def test_epoch_based_run_saves_an_iteration_checkpoint(tmp_path, restore_handlers):
    runner = _runner(tmp_path, [PreemptionHook(), _SignalAt(3)], by_epoch=True)
    with pytest.raises(TrainingPreempted) as info:
        runner.train()
    assert info.value.checkpoint == str(tmp_path / 'iter_3.pth')
    saved = load_file(tmp_path / 'iter_3.pth')
    assert (saved['meta']['epoch'], saved['meta']['iter']) == (1, 3)
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_3.pth')


def test_signal_in_the_last_iteration_lets_training_finish(tmp_path, restore_handlers):
    before = signal.getsignal(signal.SIGTERM)
    runner = _runner(tmp_path, [PreemptionHook(), _SignalAt(6)])
    runner.train()
    assert runner.iter == 6
    assert _files(tmp_path) == ['iter_6.pth']
    assert signal.getsignal(signal.SIGTERM) == before  # handler put back


def test_parse_signal_and_arguments(restore_handlers):
    assert parse_signal('USR1') is parse_signal('sigusr1') is signal.SIGUSR1
    assert parse_signal(int(signal.SIGTERM)) is signal.SIGTERM
    with pytest.raises(ValueError, match="unknown signal 'USR9'; signals here: "):
        parse_signal('USR9')
    with pytest.raises(ValueError, match='SIGKILL cannot be used'):
        parse_signal('KILL')
    with pytest.raises(TypeError, match='a signal must be a name'):
        parse_signal(1.5)
    with pytest.raises(ValueError, match=r'exit_code must be an int >= 1, got 0'):
        PreemptionHook(exit_code=0)
    with pytest.raises(ValueError, match=r'exit_code must be in 1..255, got 256'):
        PreemptionHook(exit_code=256)
    with pytest.raises(TypeError, match=r'exit_code must be an int >= 1, got True'):
        PreemptionHook(exit_code=True)
    with pytest.raises(ValueError, match=r'interval must be an int >= 1, got 0'):
        PreemptionHook(interval=0)
    assert PreemptionHook(signals='USR2').signals == (signal.SIGUSR2,)


def test_registered_for_both_codebases(restore_handlers):
    assert SEG_HOOKS.get('PreemptionHook') is PreemptionHook
    assert PRETRAIN_HOOKS.get('PreemptionHook') is PreemptionHook

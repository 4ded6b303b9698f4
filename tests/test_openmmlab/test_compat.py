"""The checkpoint changes of mmdrn.openmmlab.compat: off at import, on for a run
that names them, undone after it."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmdrn.openmmlab.compat import (
    CheckpointCompatHook,
    mmengine_checkpoints_allowed,
)

ROOT = Path(__file__).resolve().parents[2]


class _Regressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x, y=None, mode='tensor'):
        out = self.linear(x).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - y) ** 2).mean())
        return out


class _Line(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        x = torch.tensor([i / 16, 1.0, -i / 32])
        return dict(x=x, y=2 * x[0] - x[2])


def _runner(work_dir, max_iters, **kwargs):
    torch.manual_seed(0)  # the model is built before the Runner seeds
    return Runner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Line(),
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
        ),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[3], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)
        ),
        randomness=dict(seed=0),
        **kwargs,
    )


def _compat():
    return CheckpointCompatHook(mmengine_checkpoints=True, safe_loading=True)


def test_stock_mmengine_cannot_resume_its_own_checkpoint(tmp_path):
    # the problem the allow-list solves (mmengine 0.10.7, torch >= 2.6)
    _runner(tmp_path, 2).train()
    resumed = _runner(tmp_path, 4, resume=True, load_from=str(tmp_path / 'iter_2.pth'))
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        resumed.train()


def test_resume_from_mmengine_checkpoint_with_the_hook(tmp_path):
    full = _runner(tmp_path / 'full', 6)
    full.train()
    expected = full.model.state_dict()

    stopped = _runner(tmp_path / 'stopped', 4, custom_hooks=[_compat()])
    stopped.train()
    checkpoint = tmp_path / 'stopped' / 'iter_4.pth'
    with mmengine_checkpoints_allowed():
        state = torch.load(checkpoint, weights_only=True)
    assert isinstance(state['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    # after_run undid the change: a plain weights-only load refuses it again
    with pytest.raises(pickle.UnpicklingError):
        torch.load(checkpoint, weights_only=True)

    resumed = _runner(
        tmp_path / 'stopped',
        6,
        resume=True,
        load_from=str(checkpoint),
        custom_hooks=[_compat()],
    )
    resumed.train()
    assert resumed.iter == 6
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_hook_refuses_an_empty_choice_and_non_bools():
    with pytest.raises(ValueError, match='nothing switched on'):
        CheckpointCompatHook()
    with pytest.raises(TypeError, match='safe_loading must be True or False'):
        CheckpointCompatHook(safe_loading='yes')


def test_history_buffer_private_registry_still_holds_the_statistics():
    # history_buffer_method reads HistoryBuffer._statistics_methods (private;
    # checked on mmengine 0.8.3-0.10.7): pin what it relies on
    HistoryBuffer()
    methods = HistoryBuffer._statistics_methods
    assert {'min', 'max', 'current', 'mean'} <= set(methods)
    assert methods['mean'] is HistoryBuffer.mean


class _GetattrPayload:
    """Pickles as getattr(owner, name), like HistoryBuffer's state does."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


@pytest.mark.parametrize(
    'owner,name',
    [
        (HistoryBuffer, '__init__'),  # not a statistic method
        (HistoryBuffer, '__dict__'),
        (np.ndarray, 'tofile'),  # an allowed class, but not HistoryBuffer
    ],
)
def test_getattr_stays_refused_beyond_history_buffer_methods(tmp_path, owner, name):
    path = tmp_path / 'payload.pth'
    torch.save({'x': _GetattrPayload(owner, name)}, path)
    with (
        mmengine_checkpoints_allowed(),
        pytest.raises(pickle.UnpicklingError, match='refusing getattr'),
    ):
        torch.load(path, weights_only=True)


def test_history_buffer_methods_round_trip(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save({'m': _GetattrPayload(HistoryBuffer, 'mean')}, path)
    with mmengine_checkpoints_allowed():
        assert torch.load(path, weights_only=True)['m'] is HistoryBuffer.mean


def test_core_load_file_names_an_mmengine_checkpoint_and_the_switch(tmp_path):
    """Without the allow-list, an mmengine checkpoint is named as such."""
    path = tmp_path / 'iter_1.pth'
    script = f"""
import json, torch
from mmdrn.utils import CheckpointError, load_file
from mmengine.logging import HistoryBuffer
buffer = HistoryBuffer()
buffer.update(1.0)
torch.save(dict(message_hub=dict(loss=buffer)), {str(path)!r})
try:
    load_file({str(path)!r})
except CheckpointError as err:
    message = str(err)
import mmdrn.openmmlab
from mmdrn.openmmlab.compat import enable_mmengine_checkpoints
enable_mmengine_checkpoints()
loaded = load_file({str(path)!r})['message_hub']['loss'].current()
print(json.dumps([message, loaded]))
"""
    proc = subprocess.run(
        [sys.executable, '-c', script],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    message, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert message == (
        f'cannot read {str(path)!r} yet: it is an mmengine checkpoint (it holds '
        "mmengine.logging.history_buffer.HistoryBuffer); allow exactly mmengine's "
        'own objects in a weights-only load first: mmdrn.openmmlab.compat.'
        'enable_mmengine_checkpoints(), or in a config custom_hooks=['
        "dict(type='CheckpointCompatHook', mmengine_checkpoints=True)]"
    )
    assert loaded == 1.0


def _allowed():
    return {repr(g) for g in torch.serialization.get_safe_globals()}


def test_hook_restores_the_allow_list_as_it_was(tmp_path):
    outside = _allowed()
    # an allow-list the process already had (here the same entries) stays
    with mmengine_checkpoints_allowed():
        before = _allowed()
        assert before > outside
        _runner(tmp_path, 2, custom_hooks=[_compat()]).train()
        assert _allowed() == before
    assert _allowed() == outside

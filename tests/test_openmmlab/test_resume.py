"""The --resume rule, as functions (the tool runs are in tests/test_tools)."""

import os

import pytest
import torch
from mmengine.config import Config

from mmdrn.openmmlab.checkpoint import (
    find_resumable_checkpoint,
    inspect_training_checkpoint,
    setup_resume,
)
from mmdrn.utils import CheckpointError


def _save(path, iteration):
    torch.save({'meta': {'iter': iteration, 'epoch': 0}, 'state_dict': {}}, path)
    return str(path)


def _cfg(work_dir, max_iters=10, **extra):
    return Config(
        dict(work_dir=str(work_dir), train_cfg=dict(max_iters=max_iters), **extra)
    )


def test_inspect_names_what_is_wrong(tmp_path):
    assert inspect_training_checkpoint(_save(tmp_path / 'ok.pth', 3))['iter'] == 3
    with pytest.raises(CheckpointError, match="'.*missing.pth' does not exist"):
        inspect_training_checkpoint(tmp_path / 'missing.pth')
    with pytest.raises(CheckpointError, match='is a directory, not a checkpoint'):
        inspect_training_checkpoint(tmp_path)
    plain = tmp_path / 'plain.pth'
    torch.save({'w': torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match=r"first keys: \['w'\]\).*load_from"):
        inspect_training_checkpoint(plain)
    truncated = tmp_path / 'cut.pth'
    truncated.write_bytes((tmp_path / 'ok.pth').read_bytes()[:-1])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        inspect_training_checkpoint(truncated)


def test_find_prefers_the_pointer_then_the_newest_complete_file(tmp_path, capsys):
    assert find_resumable_checkpoint(tmp_path) is None
    old, new = _save(tmp_path / 'iter_2.pth', 2), _save(tmp_path / 'iter_4.pth', 4)
    os.utime(old, (1, 1))
    assert find_resumable_checkpoint(tmp_path) == new
    (tmp_path / 'last_checkpoint').write_text(old)
    assert find_resumable_checkpoint(tmp_path) == old
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    with open(new, 'r+b') as f:
        f.truncate(100)
    assert find_resumable_checkpoint(tmp_path) == old


def test_setup_resume_auto_without_checkpoint_turns_resuming_off(tmp_path):
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    cfg = _cfg(tmp_path, load_from='pretrained.pth')
    setup_resume(cfg, 'auto')
    # mmengine must not look up last_checkpoint; the initial weights stay
    assert cfg.resume is False and cfg.load_from == 'pretrained.pth'


def test_setup_resume_named_and_auto(tmp_path):
    ckpt = _save(tmp_path / 'iter_4.pth', 4)
    cfg = _cfg(tmp_path, load_from='pretrained.pth')
    setup_resume(cfg, ckpt)
    assert cfg.resume is True and cfg.load_from == ckpt
    cfg = _cfg(tmp_path)
    setup_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from == ckpt
    cfg = _cfg(tmp_path)
    setup_resume(cfg, None)
    assert 'resume' not in cfg and 'load_from' not in cfg


@pytest.mark.parametrize(
    'train_cfg,message',
    [
        (
            dict(max_iters=4),
            'after iteration 4 and the config ends at train_cfg.max_iters=4',
        ),
        (
            dict(max_iters=3),
            'after iteration 4 and the config ends at train_cfg.max_iters=3',
        ),
        (dict(by_epoch=True, max_epochs=2), None),
    ],
)
def test_setup_resume_refuses_a_finished_training(tmp_path, train_cfg, message):
    path = tmp_path / 'iter_4.pth'
    torch.save({'meta': {'iter': 4, 'epoch': 1}, 'state_dict': {}}, path)
    cfg = Config(dict(work_dir=str(tmp_path), train_cfg=train_cfg))
    if message is None:  # epoch 1 of 2: there is something left
        setup_resume(cfg, str(path))
        assert cfg.load_from == str(path)
        return
    with pytest.raises(ValueError, match=message):
        setup_resume(cfg, str(path))

"""tools/train.py and tools/test.py end to end, as separate processes."""

import glob
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from tool_runner import (
    DEMO_CONFIG,
    check,
    run_tool,
    scalars,
    weights,
    write_tiny_config,
)

from mmdrn.datasets import CLASSES
from mmdrn.utils import load_file

KILL_HOOK = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SigkillAfterIter(Hook):
    """Kill the whole process, without any clean-up, after iteration ``at``."""

    priority = 'LOWEST'  # after the CheckpointHook of the same iteration

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _has_class_table(output: str) -> bool:
    """MMSeg's IoUMetric logs a table with one row per class."""
    return all(
        re.search(rf'\|\s+{name}\s+\|\s+[0-9.]+\s+\|', output) for name in CLASSES
    )


def test_demo_config_trains_two_iterations_validates_and_tests(tmp_path, demo_data):
    """The demo's DRN config, shrunk: train 2 iterations + validation, then
    test the checkpoint with --show-dir and --out."""
    config = tmp_path / 'demo_tiny.py'
    config.write_text(
        f"""_base_ = [{DEMO_CONFIG!r}]
data_root = {demo_data!r}
crop_size = (32, 32)
model = dict(data_preprocessor=dict(size=crop_size))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, generate=None))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, generate=None))
test_dataloader = val_dataloader
param_scheduler = [dict(type='PolyLR', power=0.9, begin=0, end=2, by_epoch=False)]
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
"""
    )
    work_dir = tmp_path / 'work'
    out = check(
        run_tool('train.py', [str(config), '--work-dir', str(work_dir)], str(tmp_path))
    )
    ckpt = work_dir / 'iter_2.pth'
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(ckpt)
    # The validation after iteration 2 logged mIoU and the per-class table.
    assert any('mIoU' in row and row['step'] == 2 for row in scalars(str(work_dir)))
    assert _has_class_table(out)
    saved = load_file(ckpt)  # weights_only=True: no pickled code needed
    assert {'state_dict', 'optimizer', 'message_hub', 'meta'} <= set(saved)
    assert saved['meta']['iter'] == 2
    assert any(key.startswith('backbone.') for key in saved['state_dict'])

    show_dir, pred_dir = tmp_path / 'vis', tmp_path / 'preds'
    args = [str(config), str(ckpt), '--work-dir', str(work_dir)]
    args += ['--show-dir', str(show_dir), '--out', str(pred_dir)]
    out = check(run_tool('test.py', args, str(tmp_path)))
    assert 'mIoU' in out and _has_class_table(out)
    pictures = sorted(glob.glob(str(show_dir / 'vis_data' / 'vis_image' / '*.png')))
    assert len(pictures) == 2
    # Ground truth and prediction side by side.
    assert Image.open(pictures[0]).size == (64, 32)
    preds = sorted(os.listdir(pred_dir))
    assert preds == ['scene_00000.png', 'scene_00001.png']
    pred = np.asarray(Image.open(pred_dir / preds[0]))
    assert pred.shape == (32, 32) and pred.max() < len(CLASSES)


def test_resume_after_sigkill_gives_the_uninterrupted_weights(tmp_path, demo_data):
    """Train 6 iterations straight; train again but SIGKILL the process after
    iteration 3 (last checkpoint: iteration 2), then resume, once with
    ``--resume`` (latest checkpoint of the work dir) and once with
    ``--resume CHECKPOINT``: both end with the uninterrupted weights."""
    (tmp_path / 'kill_hook.py').write_text(KILL_HOOK)
    config = write_tiny_config(tmp_path / 'tiny.py', demo_data)
    killed = write_tiny_config(
        tmp_path / 'killed.py',
        demo_data,
        imports=['kill_hook'],
        custom_hooks=[dict(type='SigkillAfterIter', at=3)],
    )
    cwd = str(tmp_path)
    check(run_tool('train.py', [config, '--work-dir', 'a'], cwd))

    env = dict(
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')])
    )
    proc = run_tool('train.py', [killed, '--work-dir', 'b'], cwd, env=env)
    assert proc.returncode == -9, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / 'b' / 'iter_2.pth').is_file()
    assert not (tmp_path / 'b' / 'iter_4.pth').exists()
    ckpt = str(tmp_path / 'b' / 'iter_2.pth')

    out = check(run_tool('train.py', [config, '--work-dir', 'b', '--resume'], cwd))
    assert f'Load checkpoint from {ckpt}' in out
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'Advance dataloader 2 steps' in out
    out = check(
        run_tool('train.py', [config, '--work-dir', 'c', '--resume', ckpt], cwd)
    )
    assert f'Load checkpoint from {ckpt}' in out
    assert not (tmp_path / 'c' / 'iter_2.pth').exists()

    straight = weights(tmp_path / 'a' / 'iter_6.pth')
    for work_dir in ('b', 'c'):
        resumed = weights(tmp_path / work_dir / 'iter_6.pth')
        assert resumed.keys() == straight.keys()
        for key in straight:
            assert torch.equal(resumed[key], straight[key]), (work_dir, key)
    # Training did move the weights: the equality is not trivial.
    first = weights(ckpt)
    assert any(not torch.equal(first[k], straight[k]) for k in straight)


@pytest.mark.skipif(torch.cuda.is_available(), reason='the bf16 path is the CPU one')
def test_amp_on_cpu_trains_in_bfloat16(tmp_path, demo_data):
    config = write_tiny_config(tmp_path / 'amp.py', demo_data, max_iters=2)
    check(run_tool('train.py', [config, '--work-dir', 'w', '--amp'], str(tmp_path)))
    dumped = (tmp_path / 'w' / 'amp.py').read_text()
    assert "type='CPUAmpOptimWrapper'" in dumped
    losses = [row['loss'] for row in scalars(str(tmp_path / 'w')) if 'loss' in row]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_tools_report_bad_arguments(tmp_path):
    proc = run_tool('train.py', ['missing.py', '--launcher', 'k8s'], str(tmp_path))
    assert proc.returncode == 2
    assert "argument --launcher: invalid choice: 'k8s'" in proc.stderr
    proc = run_tool('test.py', [str(tmp_path / 'missing.py'), 'x.pth'], str(tmp_path))
    assert proc.returncode != 0 and 'missing.py' in proc.stderr

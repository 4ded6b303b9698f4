"""tools/train.py and tools/test.py end to end, as separate processes."""

import glob
import os
import re
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from tool_runner import (
    check,
    run_tool,
    scalars,
    weights,
    write_tiny_config,
)

from mmdrn.datasets import CLASSES
from mmdrn.inference import precision_decision
from mmdrn.openmmlab.runtime import AMP_MODES
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


def _demo_outputs_are_complete(work_dir, out: str, num_val: int) -> float:
    assert _has_class_table(out)
    found = re.findall(r'\[demo\] mIoU ([0-9.]+)', out)
    assert len(found) == 1, out[-3000:]
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    saved = load_file(ckpt)  # weights_only=True: no pickled code needed
    assert {'state_dict', 'optimizer', 'message_hub', 'meta'} <= set(saved)
    assert any(key.startswith('backbone.layer8') for key in saved['state_dict'])
    # MMSeg's visualizer: ground truth beside prediction, one per image.
    pictures = sorted(
        glob.glob(str(work_dir / 'pictures' / 'vis_data' / 'vis_image' / '*.png'))
    )
    assert len(pictures) == num_val
    assert Image.open(pictures[0]).size == (128, 64)
    preds = sorted(os.listdir(work_dir / 'predictions'))
    assert len(preds) == num_val
    pred = np.asarray(Image.open(work_dir / 'predictions' / preds[0]))
    assert pred.shape == (64, 64) and pred.max() < len(CLASSES)
    assert (work_dir / 'overview.png').is_file()
    return float(found[0])


def test_demo_command_end_to_end_shortened(tmp_path):
    """The README's demo command, cut to 2 iterations with a validation and
    4 test images: data drawn, DRN-C-26 trained, checkpoint tested with the
    per-class table, pictures and overview written."""
    work_dir = tmp_path / 'work_dirs' / 'drn_demo'
    options = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2']
    options += ['val_dataloader.dataset.indices=4', 'test_dataloader.dataset.indices=4']
    out = check(run_tool('demo.py', ['--', '--cfg-options', *options], str(tmp_path)))
    assert '1000 training and 100 validation scenes of 64x64 ready' in out
    # --amp auto by default: the training log states the measured choice.
    assert '--amp auto' in out
    assert re.search(r'--amp: training in (bfloat16 autocast|float32)', out)
    # The validation after iteration 2 logged mIoU.
    assert any('mIoU' in row and row['step'] == 2 for row in scalars(str(work_dir)))
    _demo_outputs_are_complete(work_dir, out, num_val=4)


@pytest.mark.slow
def test_demo_command_full_run_learns(tmp_path):
    """The README's demo, unchanged (about 10 minutes on 2 free cores)."""
    work_dir = tmp_path / 'work_dirs' / 'drn_demo'
    out = check(
        run_tool(
            'demo.py', [], str(tmp_path), timeout=7200, env=dict(OMP_NUM_THREADS='2')
        )
    )
    miou = _demo_outputs_are_complete(work_dir, out, num_val=100)
    # 52.29 (float32) and 52.71 (bfloat16) in our runs (README); all-sky/ground
    # guesses give < 20.
    assert miou > 40


# periodic checkpoint + resume is covered by test_exact_resume.py (default suite)
@pytest.mark.slow
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


# Slow: a training run and two test runs; the hook itself is tested in
# tests/test_openmmlab/test_engine/test_fast_inference.py.
@pytest.mark.slow
def test_test_fast_flag_folds_norms_and_keeps_the_metrics(tmp_path, demo_data):
    """``tools/test.py --fast`` on a trained BN model: the norms are folded
    after the checkpoint is loaded, and the fp32 fast path gives the metrics
    of the plain test run."""
    config = write_tiny_config(tmp_path / 'bn.py', demo_data, norm='BN', max_iters=2)
    cwd = str(tmp_path)
    check(run_tool('train.py', [config, '--work-dir', 'w'], cwd))
    ckpt = str(tmp_path / 'w' / 'iter_2.pth')

    def miou(out: str) -> float:
        found = re.findall(r'mIoU: ([0-9.]+)', out)
        assert found, out[-3000:]
        return float(found[-1])

    plain = check(run_tool('test.py', [config, ckpt, '--work-dir', 'p'], cwd))
    assert 'fast inference' not in plain
    args = [config, ckpt, '--work-dir', 'f', '--fast', '--fast-dtype', 'fp32']
    fast = check(run_tool('test.py', args, cwd))
    # the tiny ResNetV1c: 3 stem convs, 2 stages of 2 blocks (2 convs each)
    # and a projection shortcut per stage, every conv followed by BN
    folded = re.findall(r'fast inference: (\d+) batch norms folded', fast)
    assert folded == ['13'], fast[-3000:]
    assert "dtype=torch.float32 (float32: asked for (dtype='fp32'))" in fast
    assert miou(fast) == miou(plain)

    proc = run_tool('test.py', [config, ckpt, '--compile'], cwd)
    assert proc.returncode == 2
    assert '--compile and --fast-dtype only apply with --fast' in proc.stderr
    proc = run_tool('test.py', [config, ckpt, '--fast', '--fast-dtype', 'int8'], cwd)
    assert proc.returncode == 2 and "invalid choice: 'int8'" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='the bf16 path is the CPU one')
def test_amp_on_cpu_trains_in_bfloat16_where_measured_faster(
    tmp_path, demo_data, fake_precision_probe
):
    # the tool process reads the decision this process caches (same machine)
    fake_precision_probe(float32=10.0, bfloat16=5.0)
    assert precision_decision('cpu').dtype == torch.bfloat16
    config = write_tiny_config(tmp_path / 'amp.py', demo_data, max_iters=2)
    out = check(
        run_tool('train.py', [config, '--work-dir', 'w', '--amp'], str(tmp_path))
    )
    assert '--amp: training in bfloat16 autocast, measured 2.00x float32' in out
    dumped = (tmp_path / 'w' / 'amp.py').read_text()
    assert "type='CPUAmpOptimWrapper'" in dumped
    losses = [row['loss'] for row in scalars(str(tmp_path / 'w')) if 'loss' in row]
    assert len(losses) == 2 and all(np.isfinite(losses))
    proc = run_tool('train.py', [config, '--amp', 'fp32'], str(tmp_path))
    assert proc.returncode == 2
    assert "argument --amp: invalid choice: 'fp32'" in proc.stderr


def test_train_tool_offers_the_runtime_amp_modes(tmp_path):
    help_text = ' '.join(check(run_tool('train.py', ['--help'], str(tmp_path))).split())
    assert '--amp [{' + ','.join(AMP_MODES) + '}]' in help_text
    assert "'off' (the default) trains in float32" in help_text


def test_demo_trains_in_the_measured_precision_by_default(tmp_path):
    help_text = ' '.join(check(run_tool('demo.py', ['--help'], str(tmp_path))).split())
    assert '--amp {auto,bf16,off}' in help_text
    assert "'auto' (default)" in help_text
    proc = run_tool('demo.py', ['--amp', 'fp16'], str(tmp_path))
    assert proc.returncode == 2
    assert "argument --amp: invalid choice: 'fp16'" in proc.stderr


def test_tools_report_bad_arguments(tmp_path):
    proc = run_tool('train.py', ['missing.py', '--launcher', 'k8s'], str(tmp_path))
    assert proc.returncode == 2
    assert "argument --launcher: invalid choice: 'k8s'" in proc.stderr
    proc = run_tool('test.py', [str(tmp_path / 'missing.py'), 'x.pth'], str(tmp_path))
    assert proc.returncode != 0 and 'missing.py' in proc.stderr


PRETRAIN_CONFIG = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DRN_C', depth=26, out_indices=1),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=512))
test_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root={data_root!r},
                 data_prefix='img_dir/val', with_label=False, pipeline=[]))
test_evaluator = dict(type='Accuracy')
test_cfg = dict()
default_hooks = dict(visualization=dict(type='VisualizationHook'))
"""


def _config_as_tested(tmp_path, config, *flags) -> Config:
    """Run tools/test.py with a checkpoint that does not exist: the Runner is
    built (and dumps the config it got into the work dir), then the load
    fails. That config."""
    args = [config, 'missing.pth', '--work-dir', 'w', *flags]
    proc = run_tool('test.py', args, str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'missing.pth can not be found' in proc.stderr.strip().splitlines()[-1]
    return Config.fromfile(str(tmp_path / 'w' / os.path.basename(config)))


def test_test_tool_show_and_out_flags_edit_the_config(tmp_path, demo_data):
    """mmpretrain: --show-dir and --show turn its VisualizationHook on, --out
    adds a DumpResults metric (MMSeg's pictures and PNG predictions are
    checked in the demo test above)."""
    config = tmp_path / 'cls.py'
    config.write_text(textwrap.dedent(PRETRAIN_CONFIG.format(data_root=demo_data)))
    flags = ['--show-dir', 'vis', '--show', '--wait-time', '0.5', '--out', 'p.pkl']
    cfg = _config_as_tested(tmp_path, str(config), *flags)
    hook = cfg.default_hooks.visualization
    assert (hook.enable, hook.out_dir, hook.show, hook.wait_time) == (
        True,
        'vis',
        True,
        0.5,
    )
    assert cfg.test_evaluator == [
        dict(type='Accuracy'),
        dict(type='DumpResults', out_file_path='p.pkl'),
    ]
    # without a visualization hook there is nothing to draw with
    seg = write_tiny_config(tmp_path / 'seg.py', demo_data)
    options = ['--cfg-options', 'default_hooks.visualization=None']
    proc = run_tool(
        'test.py', [seg, 'x.pth', '--show-dir', 'v', *options], str(tmp_path)
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "KeyError: 'the config has no default_hooks.visualization to draw with'"
    )


def test_train_tool_checks_class_weight_against_num_classes(tmp_path, demo_data):
    """Once the model is built, before the first loss: a decode head's
    class_weight needs one entry per class."""
    config = write_tiny_config(tmp_path / 'cw.py', demo_data, max_iters=1)
    weights = 'model.decode_head.loss_decode.class_weight'
    args = [config, '--work-dir', 'w', '--cfg-options']
    proc = run_tool(
        'train.py', args + [f'{weights}=[1.0,1.0,1.0,1.0,1.0]'], str(tmp_path)
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        'ValueError: decode_head: class_weight of CrossEntropyLoss has 5 entries '
        'but num_classes is 7; give one weight per class'
    )
    assert 'Iter(train)' not in proc.stdout + proc.stderr
    options = [f'{weights}=[1.0,1.0,1.0,1.0,1.0,1.0,2.0]']
    check(run_tool('train.py', args + options, str(tmp_path)))
    assert (tmp_path / 'w' / 'iter_1.pth').is_file()

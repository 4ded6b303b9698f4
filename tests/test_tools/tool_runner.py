"""Shared pieces of the tool tests: tiny configs, and running the tools as
users do (separate processes).

A module of its own (not ``conftest``): several test folders have a
``conftest.py``, and ``from conftest import ...`` would pick whichever pytest
imported first."""

import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

import torch

from mmdrn.openmmlab.compat import mmengine_checkpoints_allowed
from mmdrn.utils import load_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')

# A deliberately tiny MMSeg model (ResNet stem + 2 stages of 4-8 channels,
# output stride 8, 1x1 classifier) so tool tests spend their time in the
# tools, not in convolutions. GroupNorm does not depend on how a batch is
# split between processes, which the distributed test relies on.
TINY_CONFIG = """
default_scope = 'mmseg'
custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
norm_cfg = dict(type={norm!r}, requires_grad=True{norm_extra})
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[127.5] * 3, std=[64.0] * 3,
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(32, 32)),
    backbone=dict(
        type='ResNetV1c', depth=18, stem_channels=8, base_channels=4,
        num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1,),
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='FCNHead', in_channels=8, channels=8, in_index=0, num_convs=0,
        concat_input=False, dropout_ratio=0.0, num_classes=7,
        norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    {flip}
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='DRNDemoDataset', data_root={data_root!r},
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='DRNDemoDataset', data_root={data_root!r},
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end={max_iters},
         by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters},
                 val_interval={val_interval})
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval={checkpoint_interval}),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', interval=1))
custom_hooks = {custom_hooks}
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
visualizer = dict(type='SegLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=True)
"""


def write_tiny_config(
    path: str,
    data_root: str,
    *,
    norm: str = 'GN',
    batch_size: int = 4,
    max_iters: int = 6,
    val_interval: int = 1000,
    checkpoint_interval: int = 2,
    flip: bool = True,
    imports: Optional[List[str]] = None,
    custom_hooks: Optional[List[dict]] = None,
) -> str:
    """Write the tiny config to ``path`` and return ``path``."""
    text = TINY_CONFIG.format(
        imports=['mmdrn.openmmlab'] + list(imports or []),
        norm=norm,
        norm_extra=', num_groups=4' if norm == 'GN' else '',
        flip="dict(type='RandomFlip', prob=0.5)," if flip else '',
        batch_size=batch_size,
        data_root=str(data_root),
        max_iters=max_iters,
        val_interval=val_interval,
        checkpoint_interval=checkpoint_interval,
        custom_hooks=custom_hooks or [],
    )
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def run(
    args: List[str], cwd: str, env: Optional[Dict[str, str]] = None, timeout: int = 300
):
    """Run a command like a user would; return the completed process."""
    full_env = dict(os.environ)
    # One thread per process: comparable numbers, and fair on a shared box.
    full_env.update(OMP_NUM_THREADS='1', PYTHONPATH=REPO, PYTHON=sys.executable)
    full_env.update(env or {})
    return subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def run_tool(tool: str, args: List[str], cwd: str, **kwargs):
    """Run ``tools/<tool>`` (a .py with this interpreter, or a .sh with bash)."""
    path = osp.join(TOOLS, tool)
    cmd = ['bash', path] if tool.endswith('.sh') else [sys.executable, path]
    return run(cmd + list(args), cwd, **kwargs)


def check(proc) -> str:
    """Assert a process succeeded; return its combined output."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'exit {proc.returncode}\n{out[-6000:]}'
    return out


def weights(path: str) -> Dict[str, torch.Tensor]:
    """The model state dict of a checkpoint, loaded with weights_only=True."""
    with mmengine_checkpoints_allowed():
        return load_file(path)['state_dict']


def scalars(work_dir: str) -> List[dict]:
    """The logged scalars (one dict per log line) of every run in work_dir."""
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows

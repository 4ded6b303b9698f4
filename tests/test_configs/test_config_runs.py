"""One config per family trains two iterations and validates, on CPU.

(The CAM localization config is evaluation-only: it runs a test pass; the
context module's second stage runs on the checkpoint of its first.)

Each run uses the config as it is (pipelines, model layout, optimiser,
schedule, hooks, evaluator) with only what a 2-core CPU needs changed: the
smallest depth of the config's DRN arch, 32x32 crops (every size in the
pipelines shrunk to fit the tiny fixtures), two iterations, no dataloader
workers. mmengine's Runner turns SyncBN into BN in a non-distributed run.
"""

import math
from pathlib import Path

import pytest
import torch
from _config_utils import (
    CONFIG_DIR,
    IMAGENET_LOC_ANNS,
    SMALL_CHANNELS,
    SMALL_DEPTH,
    fixture_kind,
    leaf_datasets,
    load,
    use_scope,
    walk_dicts,
)
from mmengine.config import Config

import mmdrn.openmmlab  # noqa: F401  (registers the DRN components)
from mmdrn.utils import load_file

# config -> (the metric the validation pass must report, expected base lr)
RUNS = {
    'drn/fcn_drn-d-105-d8_8xb2-poly-92k_cityscapes-840x840.py': ('mIoU', 0.01),
    'cam/cam_drn-c-26-d8_8xb2-20k_voc12aug-512x512.py': ('mIoU', 0.001),
    'context_module/fcn_drn-c-26-d8_8xb2-60k_voc12aug-512x512.py': ('mIoU', 0.001),
    'deeplabv3/deeplabv3_drn-d-54-d16_8xb2-30k_voc12aug-513x513.py': ('mIoU', 0.007),
    'drn_cls/drn-a-50_8xb32_in1k.py': ('accuracy/top1', 0.1),
}

# Sizes that fit the fixtures: Cityscapes frames are 64x32, VOC images at
# most 48x48, ImageNet images 40x30.
CROP = (32, 32)
RESIZE = {'cityscapes': (64, 32), 'voc': (48, 48), 'imagenet': (32, 32)}


def _shrink_pipelines(cfg: Config, kind: str) -> None:
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for t in walk_dicts(cfg[loader]['dataset']):
            kind_of = t.get('type')
            if kind_of == 'RandomCrop':
                t['crop_size'] = CROP
            elif kind_of in ('RandomResize', 'Resize') and 'scale' in t:
                t['scale'] = RESIZE[kind]
            elif kind_of == 'Pad':
                t['size'] = CROP
            elif kind_of == 'RandomResizedCrop':
                t['scale'] = CROP[0]
            elif kind_of == 'ResizeEdge':
                t['scale'] = 36
            elif kind_of == 'CenterCrop':
                t['crop_size'] = CROP[0]


def _tiny_run_config(path: Path, fixtures, work_dir: Path) -> Config:
    cfg = load(path)
    kind = fixture_kind(cfg)
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.cudnn_benchmark = False

    backbone = cfg.model.backbone
    backbone.depth = SMALL_DEPTH[backbone.type]
    backbone.init_cfg = None  # no pretrained download
    channels = SMALL_CHANNELS[backbone.type]
    if cfg.default_scope == 'mmseg':
        cfg.model.data_preprocessor.size = CROP
        consumer = cfg.model.get('neck') or cfg.model.decode_head
        consumer.in_channels = channels
        if 'channels' in consumer and consumer is cfg.model.decode_head:
            consumer.channels = channels  # FCNHead without convs: in == out
    else:
        cfg.model.head.in_channels = channels

    root = getattr(fixtures, kind)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        for leaf in leaf_datasets(cfg[loader].dataset):
            leaf.data_root = str(
                root / 'VOCdevkit' / 'VOC2012' if kind == 'voc' else root
            )
    cfg.train_dataloader.batch_size = 2
    _shrink_pipelines(cfg, kind)

    hooks = cfg.default_hooks
    hooks.logger.interval = 1
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.train_cfg.max_iters = 2
        cfg.train_cfg.val_interval = 2
        hooks.checkpoint.interval = 2
    else:  # epoch based: 4 training images in batches of 2
        cfg.train_cfg.max_epochs = 1
        cfg.train_cfg.val_interval = 1
        hooks.checkpoint.interval = 1
    return cfg


@pytest.fixture(autouse=True)
def _fast_config_text(monkeypatch):
    # The Runner prints and saves ``cfg.pretty_text`` about five times per
    # run, and yapf-formatting it costs about a second each on this CPU. The
    # text is still produced and valid Python, only not re-indented.
    monkeypatch.setattr(
        'mmengine.config.config.FormatCode', lambda text, **kwargs: (text, False)
    )


@pytest.mark.parametrize('name', sorted(RUNS))
def test_config_trains_two_iterations_and_validates(name, fixtures, tmp_path):
    from mmengine.runner import Runner

    metric, base_lr = RUNS[name]
    cfg = _tiny_run_config(CONFIG_DIR / name, fixtures, tmp_path)
    use_scope(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()

    assert runner.iter == 2
    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current()
    assert math.isfinite(loss) and loss > 0
    # the config's optimiser and schedule are in force: at the second
    # iteration the lr is still (within 0.1%) the recipe's base lr
    lr = hub.get_scalar('train/lr').current()
    assert lr == pytest.approx(base_lr, rel=1e-3)
    value = hub.get_scalar(f'val/{metric}').current()
    assert 0.0 <= value <= 100.0

    # the checkpoint the run wrote loads weights-only and holds the model
    ckpts = sorted(tmp_path.glob('*.pth'))
    assert ckpts, 'no checkpoint written'
    state = load_file(ckpts[-1])['state_dict']
    model_keys = set(runner.model.state_dict())
    assert set(state) == model_keys
    weight = next(k for k in state if k.startswith('backbone.'))
    assert torch.equal(state[weight], runner.model.state_dict()[weight])


def test_cam_localization_config_evaluates_boxes(fixtures, tmp_path):
    from mmengine.runner import Runner

    name = 'cam/cam-loc_drn-c-26_8xb32_in1k.py'
    cfg = _tiny_run_config(CONFIG_DIR / name, fixtures, tmp_path)
    for metric in cfg.test_evaluator:
        if metric.type == 'ImageNetLocMetric':
            metric.ann_dir = str(IMAGENET_LOC_ANNS)
    use_scope(cfg)
    metrics = Runner.from_cfg(cfg).test()

    # classification and both localization protocols on the two images
    for key in (
        'accuracy/top1',
        'loc/top1_loc_acc',
        'loc/top1_loc_err',
        'loc/top1_cls_acc',
        'loc/gt_known_loc_acc',
        'loc/no_box_rate',
    ):
        assert 0.0 <= metrics[key] <= 100.0, key
    assert metrics['loc/top1_loc_acc'] + metrics['loc/top1_loc_err'] == 100.0
    assert metrics['loc/top1_cls_acc'] == pytest.approx(metrics['accuracy/top1'])


def test_context_second_stage_trains_the_module_on_the_fixed_front_end(
    fixtures, tmp_path
):
    from mmengine.runner import Runner

    folder = CONFIG_DIR / 'context_module'
    stage1 = _tiny_run_config(
        folder / 'fcn_drn-c-26-d8_8xb2-60k_voc12aug-512x512.py',
        fixtures,
        tmp_path / '1',
    )
    use_scope(stage1)
    Runner.from_cfg(stage1).train()
    front_end = tmp_path / '1' / 'iter_2.pth'
    trained = load_file(front_end)['state_dict']

    stage2 = _tiny_run_config(
        folder / 'context-large8_drn-c-26-d8_8xb2-60k_voc12aug-512x512.py',
        fixtures,
        tmp_path / '2',
    )
    assert stage2.load_from.endswith('iter_60000.pth')
    stage2.load_from = str(front_end)
    runner = Runner.from_cfg(stage2)
    initial_module = {
        k: v.clone() for k, v in runner.model.decode_head.context.state_dict().items()
    }
    runner.train()
    assert runner.iter == 2
    after = runner.model.state_dict()

    # the front-end (backbone with its BN statistics, classifier) is the
    # stage-1 checkpoint's, untouched by two training iterations
    front_keys = [
        k for k in trained if k.startswith(('backbone.', 'decode_head.conv_seg.'))
    ]
    assert any(k.startswith('decode_head.conv_seg.') for k in front_keys)
    for key in front_keys:
        assert torch.equal(after[key], trained[key]), key
    # the module, which the front-end checkpoint does not have, trained
    module = runner.model.decode_head.context.state_dict()
    assert not any(k.startswith('decode_head.context.') for k in trained)
    changed = [k for k in module if not torch.equal(module[k], initial_module[k])]
    assert changed, 'the context module did not train'

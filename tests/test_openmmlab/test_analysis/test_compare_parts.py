"""The comparison's pieces: run plan, tool commands, IoU, spread, measuring."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from PIL import Image

from mmdrn.openmmlab.analysis.activation_maps import load_segmentor
from mmdrn.openmmlab.analysis.compare import (
    DEMO_MODELS,
    HEADLINE,
    StudySettings,
    class_iou,
    compare_pair,
    data_options,
    run_plan,
    schedule_options,
    spread,
    tool_command,
)
from mmdrn.openmmlab.analysis.measure import measure_models

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / 'configs' / 'demo'


def _apply(config: Path, options):
    cfg = Config.fromfile(str(config))
    parsed = {}
    for option in options:
        key, value = option.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(parsed)
    return cfg


def test_every_model_has_its_demo_config():
    assert {m.key for m in DEMO_MODELS} >= set(HEADLINE)
    for model in DEMO_MODELS:
        assert (DEMO / model.config).is_file(), model.config


def test_all_configs_share_the_drn_demo_recipe():
    # One recipe for every model: whatever is not the model is identical to
    # the DRN-C-26 demo config, and so are the loss and the preprocessing.
    reference = Config.fromfile(str(DEMO / DEMO_MODELS[1].config))
    for model in DEMO_MODELS:
        cfg = Config.fromfile(str(DEMO / model.config))
        for key in (
            'optim_wrapper',
            'param_scheduler',
            'train_cfg',
            'val_cfg',
            'test_cfg',
            'default_hooks',
            'randomness',
            'env_cfg',
            'train_dataloader',
            'val_dataloader',
            'test_dataloader',
            'val_evaluator',
            'test_evaluator',
            'default_scope',
        ):
            assert cfg[key] == reference[key], (model.key, key)
        assert cfg.model.data_preprocessor == reference.model.data_preprocessor
        head = cfg.model.decode_head
        assert head.loss_decode == reference.model.decode_head.loss_decode
        assert head.num_classes == reference.model.decode_head.num_classes
        assert cfg.model.get('auxiliary_head') is None, model.key
        assert cfg.model.get('pretrained') is None, model.key


@pytest.mark.parametrize(
    'key, backbone, head',
    [
        ('drn-a-18', 'DRN_A', 'FCNHead'),
        ('drn-c-26', 'DRN_C', 'FCNHead'),
        ('drn-d-22', 'DRN_D', 'FCNHead'),
        ('r18-d8', 'ResNetV1c', 'FCNHead'),
        ('deeplabv3-r18-d8', 'ResNetV1c', 'ASPPHead'),
    ],
)
def test_configs_build_the_intended_classes(key, backbone, head):
    import mmseg.models

    import mmdrn.openmmlab

    config = DEMO / {m.key: m for m in DEMO_MODELS}[key].config
    model = load_segmentor(str(config))
    classes = {**vars(mmseg.models), **vars(mmdrn.openmmlab.backbones)}
    assert type(model.backbone) is classes[backbone]
    assert type(model.decode_head) is classes[head]
    if backbone == 'ResNetV1c':
        # MMSeg's r18-d8: strides 1,2,1,1, dilations 1,1,2,4 (output stride 8;
        # MMSeg halves the first block's dilation, contract_dilation=True)
        layers = [getattr(model.backbone, n) for n in model.backbone.res_layers]
        assert [layer[0].conv1.stride[0] for layer in layers] == [1, 2, 1, 1]
        assert [layer[-1].conv1.dilation[0] for layer in layers] == [1, 1, 2, 4]
        out = model.backbone(torch.zeros(1, 3, 64, 64))
        assert out[-1].shape == (1, 512, 8, 8)
    if head == 'FCNHead':
        # the plain head: nothing but the 1x1 classifier
        assert isinstance(model.decode_head.convs, torch.nn.Identity)
        assert model.decode_head.conv_seg.kernel_size == (1, 1)


def test_run_plan_gives_the_headline_pair_more_seeds():
    keys = [m.key for m in DEMO_MODELS]
    plan = run_plan(keys, seeds=3, other_seeds=1)
    assert plan == [
        ('drn-a-18', 0),
        ('drn-c-26', 0),
        ('drn-c-26', 1),
        ('drn-c-26', 2),
        ('drn-d-22', 0),
        ('r18-d8', 0),
        ('r18-d8', 1),
        ('r18-d8', 2),
        ('deeplabv3-r18-d8', 0),
    ]
    with pytest.raises(ValueError, match='seeds must be an int >= 1'):
        run_plan(keys, seeds=0, other_seeds=1)


def test_schedule_options_shorten_the_whole_schedule():
    cfg = _apply(DEMO / DEMO_MODELS[3].config, schedule_options(40))
    assert cfg.train_cfg.max_iters == 40
    assert cfg.param_scheduler[0].end == 40
    assert cfg.default_hooks.checkpoint.interval == 40
    assert cfg.train_cfg.val_begin == 41  # no validation while training
    full = _apply(DEMO / DEMO_MODELS[3].config, schedule_options(None))
    assert full.train_cfg.max_iters == 1000
    assert full.train_cfg.val_begin > full.train_cfg.max_iters


def test_data_options_point_every_loader_at_the_data(tmp_path):
    cfg = _apply(DEMO / DEMO_MODELS[0].config, data_options(str(tmp_path)))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == str(tmp_path)
        assert cfg[loader].dataset.generate is False
    assert data_options(None) == []


def test_tool_command_uses_the_launch_scripts():
    assert tool_command('train', ['C', '--cpu'], '/t', python='py') == [
        'py',
        '/t/train.py',
        'C',
        '--cpu',
    ]
    assert tool_command('train', ['C', '--cpu'], '/t', 'pytorch', 4) == [
        'bash',
        '/t/dist_train.sh',
        'C',
        '4',
        '--cpu',
    ]
    assert tool_command('test', ['C', 'K', '--out', 'p'], '/t', 'pytorch', 2) == [
        'bash',
        '/t/dist_test.sh',
        'C',
        'K',
        '2',
        '--out',
        'p',
    ]
    with pytest.raises(ValueError, match="tool must be 'train' or 'test'"):
        tool_command('benchmark', [], '/t')
    with pytest.raises(ValueError, match='launcher must be one of'):
        tool_command('train', [], '/t', 'slurm')


def _png(path: Path, array) -> None:
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def test_class_iou_sums_areas_over_images(tmp_path):
    pred, ann = tmp_path / 'pred', tmp_path / 'ann'
    pred.mkdir()
    ann.mkdir()
    _png(ann / 'a.png', [[0, 0, 1], [1, 2, 255]])
    _png(pred / 'a.png', [[0, 1, 1], [1, 2, 2]])
    _png(ann / 'b.png', [[2, 2, 2], [0, 0, 0]])
    _png(pred / 'b.png', [[2, 2, 0], [0, 0, 0]])
    scores = class_iou(str(pred), str(ann), classes=('x', 'y', 'z', 'absent'))
    # x: I 1+3, U 2+4; y: I 2, U 3; z: I 1+2, U 1+3; 'absent' never occurs
    assert scores['IoU']['x'] == pytest.approx(400 / 6)
    assert scores['IoU']['y'] == pytest.approx(200 / 3)
    assert scores['IoU']['z'] == pytest.approx(75.0)
    assert math.isnan(scores['IoU']['absent'])
    assert scores['mIoU'] == round((400 / 6 + 200 / 3 + 75) / 3, 2)
    assert scores['aAcc'] == round(9 / 11 * 100, 2)  # 11 labelled pixels
    assert scores['num_images'] == 2


def test_class_iou_needs_every_prediction(tmp_path):
    pred, ann = tmp_path / 'pred', tmp_path / 'ann'
    pred.mkdir()
    ann.mkdir()
    _png(ann / 'a.png', [[0, 1]])
    with pytest.raises(ValueError, match=r"missing: \['a.png'\]"):
        class_iou(str(pred), str(ann), classes=('x', 'y'))
    _png(pred / 'a.png', [[0, 1, 1]])
    with pytest.raises(ValueError, match='differ in size'):
        class_iou(str(pred), str(ann), classes=('x', 'y'))


def test_spread_and_the_plain_sentence():
    assert spread([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert spread([4.0]) == (4.0, None)
    clear = compare_pair('A', [50, 51, 52], 'B', [40, 41, 42])
    assert clear['difference'] == pytest.approx(10)
    assert clear['exceeds_spread'] is True
    assert 'A scores 10.00 mIoU points above B' in clear['sentence']
    assert 'the difference exceeds the spread' in clear['sentence']
    close = compare_pair('A', [50, 52, 54], 'B', [49, 51, 53])
    assert close['exceeds_spread'] is False
    assert 'does not exceed the spread' in close['sentence']
    below = compare_pair('A', [40, 41, 42], 'B', [50, 51, 52])
    assert below['difference'] == pytest.approx(-10)
    assert below['sentence'].startswith('B scores 10.00 mIoU points above A')
    single = compare_pair('A', [50], 'B', [40])
    assert single['exceeds_spread'] is None
    assert 'single seed' in single['sentence']


def test_settings_reject_bad_values(tmp_path):
    base = dict(configs_dir=str(DEMO), tools_dir='tools', work_dir=str(tmp_path))
    StudySettings(**base).check()
    with pytest.raises(ValueError, match='models must be a non-empty selection'):
        StudySettings(**base, models=('drn-c-26', 'resnet50')).check()
    with pytest.raises(ValueError, match="jobs > 1 needs launcher='none'"):
        StudySettings(**base, jobs=2, launcher='pytorch').check()
    with pytest.raises(ValueError, match='key=value'):
        StudySettings(**base, cfg_options=['train_cfg.max_iters']).check()
    with pytest.raises(ValueError, match='is not a demo dataset'):
        StudySettings(**base, data_root=str(tmp_path)).check()
    with pytest.raises(TypeError, match='seeds must be an int'):
        StudySettings(**base, seeds=2.5).check()


def test_measure_models_counts_and_times_each_model():
    segmentor = load_segmentor(str(DEMO / DEMO_MODELS[3].config))
    small = measure_models(
        {'r18': segmentor}, (32, 32), batch=1, rounds=2, seconds=0.01
    )
    large = measure_models(
        {'r18': segmentor}, (64, 64), batch=1, rounds=1, seconds=0.01
    )
    entry = small['r18']
    assert entry['backbone'] == 'mmseg.models.backbones.resnet.ResNetV1c'
    assert entry['decode_head'] == 'mmseg.models.decode_heads.fcn_head.FCNHead'
    assert entry['params'] == sum(p.numel() for p in segmentor.parameters())
    # fully convolutional: four times the pixels, four times the FLOPs
    assert large['r18']['flops'] == 4 * entry['flops'] > 0
    assert len(entry['img_per_s_turns']) == 2
    assert entry['img_per_s'] == pytest.approx(
        float(np.median(entry['img_per_s_turns']))
    )


def _settings(tmp_path, **kwargs):
    tools = str(REPO / 'tools')
    return StudySettings(
        configs_dir=str(DEMO), tools_dir=tools, work_dir=str(tmp_path), **kwargs
    )


def test_a_failed_run_stops_the_study(tmp_path, monkeypatch):
    from mmdrn.openmmlab.analysis import compare

    calls = []

    def failing_run(model, seed, settings, log):
        calls.append((model.key, seed))
        raise RuntimeError('tools/train.py failed')

    monkeypatch.setattr(compare, '_run_one', failing_run)
    with pytest.raises(RuntimeError, match='tools/train.py failed'):
        compare.run_study(_settings(tmp_path), log=lambda message: None)
    assert calls == [('drn-a-18', 0)]  # no other run was started


def test_results_are_kept_unless_resumed(tmp_path):
    from mmdrn.openmmlab.analysis import compare

    (tmp_path / 'compare.md').write_text('an earlier study')
    with pytest.raises(ValueError, match='already holds results'):
        compare.run_study(_settings(tmp_path))
    assert (tmp_path / 'compare.md').read_text() == 'an earlier study'

    run_dir = tmp_path / 'runs' / 'drn-c-26' / 'seed1'
    run_dir.mkdir(parents=True)
    (run_dir / 'result.json').write_text('{"mIoU": 12.5}')
    model = DEMO_MODELS[1]
    with pytest.raises(ValueError, match='result.json exists: pass resume=True'):
        compare._run_one(model, 1, _settings(tmp_path), print)
    reused = compare._run_one(model, 1, _settings(tmp_path, resume=True), print)
    assert reused == {'mIoU': 12.5}
    (run_dir / 'result.json').unlink()
    (run_dir / 'last_checkpoint').write_text('iter_10.pth')
    with pytest.raises(ValueError, match='holds an unfinished training'):
        compare._run_one(model, 1, _settings(tmp_path), print)

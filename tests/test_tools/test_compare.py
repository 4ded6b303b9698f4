"""tools/analysis_tools/compare.py, run as a user runs it.

The default run compares two configs named on the command line, the demo's
DRN-C-26 and MMSegmentation's ResNetV1c-18-D8, each trained for two
iterations and tested through tools/train.py and tools/test.py on the tiny
demo data; all five demo configs run in a slow test. The demo configs
themselves are checked to share one recipe and to build the intended models.
"""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from PIL import Image
from tool_runner import REPO, check, run_tool

from mmdrn.datasets import CLASSES

TOOL = 'analysis_tools/compare.py'
DEMO = Path(REPO) / 'configs' / 'demo'
DRN_A18 = DEMO / 'fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py'
DRN_C26 = DEMO / 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
DRN_D22 = DEMO / 'fcn_drn-d-22-d8_1xb8-1k_drn-demo-64x64.py'
R18 = DEMO / 'fcn_r18-d8_1xb8-1k_drn-demo-64x64.py'
DLV3_R18 = DEMO / 'deeplabv3_r18-d8_1xb8-1k_drn-demo-64x64.py'
# config -> (backbone class, decode head class)
CLASS_OF = {
    DRN_A18: ('mmdrn.openmmlab.backbones.DRN_A', 'FCNHead'),
    DRN_C26: ('mmdrn.openmmlab.backbones.DRN_C', 'FCNHead'),
    DRN_D22: ('mmdrn.openmmlab.backbones.DRN_D', 'FCNHead'),
    R18: ('mmseg.models.backbones.resnet.ResNetV1c', 'FCNHead'),
    DLV3_R18: ('mmseg.models.backbones.resnet.ResNetV1c', 'ASPPHead'),
}
# The smallest settings: the demo configs pad every training image to their
# 64x64 crop, the tiny fixture's scenes are 32x32 (MMSeg 1.2.2's
# class-weighted cross-entropy fails on padded, ignored pixels).
TINY = [
    '--iters', '2', '--speed-batch', '2', '--speed-rounds', '1',
    '--speed-time', '0.01', '--class-columns', 'pole', 'wire', 'sign',
]  # fmt: skip


def _data_options(config: Path, data_root: str) -> list:
    """``--cfg-options`` pointing every dataloader of ``config`` at the data
    (through dataset wrappers), drawing nothing."""
    cfg, options = (
        Config.fromfile(str(config)),
        ['model.data_preprocessor.size=(32,32)'],
    )
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        key, dataset = f'{loader}.dataset', cfg[loader].dataset
        while 'dataset' in dataset:
            key, dataset = f'{key}.dataset', dataset.dataset
        options += [f'{key}.data_root={data_root}', f'{key}.generate=False']
    return options + ['train_dataloader.batch_size=2']


def _compare(configs, work_dir, data_root, *extra, cwd=None, options=()):
    args = [*map(str, configs), '--work-dir', str(work_dir), *TINY, *extra]
    args += ['--cfg-options', *_data_options(configs[0], data_root), *options]
    return run_tool(TOOL, args, str(cwd or work_dir), timeout=1200)


@pytest.fixture(scope='module')
def study(demo_data, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('compare')
    labels = ['--labels', 'DRN-C-26', 'ResNetV1c-18-D8']
    check(_compare([DRN_C26, R18], work_dir, demo_data, *labels))
    with open(work_dir / 'compare.json') as f:
        return work_dir, json.load(f)


def test_the_report_holds_both_configs_and_their_numbers(study):
    work_dir, report = study
    assert [m['label'] for m in report['models']] == ['DRN-C-26', 'ResNetV1c-18-D8']
    assert [m['config'] for m in report['models']] == [str(DRN_C26), str(R18)]
    for model in report['models']:
        (run,) = model['runs']
        assert run['seed'] == 0 and model['seeds'] == [0]
        # tools/train.py ran the shortened schedule, tools/test.py tested it
        assert Path(run['checkpoint']).name == 'iter_2.pth'
        assert run['mIoU'] == run['logged']['mIoU'] == model['mIoU'][0]
        assert model['mIoU'][1] is None  # one seed: no spread
        # the per-class table of the test log, parsed: every class, and its
        # mean is the logged mIoU
        assert list(run['IoU']) == list(CLASSES)
        ious = [v for v in run['IoU'].values() if not math.isnan(v)]
        assert sum(ious) / len(ious) == pytest.approx(run['mIoU'], abs=0.011)
        assert model['IoU']['sky'] == [run['IoU']['sky'], None]
        assert model['flops'] > 1e7 and model['img_per_s'] > 0
        assert len(model['img_per_s_turns']) == 1
    backbones = [m['backbone'] for m in report['models']]
    assert backbones == [CLASS_OF[DRN_C26][0], CLASS_OF[R18][0]]
    assert report['meta']['input_size'] == [32, 32]


def test_parameters_are_counted_on_the_models_of_the_configs(study):
    from mmseg.apis import init_model

    _, report = study
    for model, config in zip(report['models'], (DRN_C26, R18)):
        built = init_model(str(config), device='cpu')
        assert model['params'] == sum(p.numel() for p in built.parameters())


def test_the_markdown_table_shows_the_numbers(study):
    work_dir, report = study
    text = (work_dir / 'compare.md').read_text()
    lines = text.splitlines()
    assert lines[0] == (
        '| model | backbone | head | seeds | mIoU | pole | wire | sign | '
        'params (M) | FLOPs (G) | CPU img/s |'
    )
    for model in report['models']:
        row = next(line for line in lines if line.startswith(f'| {model["label"]} |'))
        cells = [cell.strip() for cell in row.strip('|').split('|')]
        backbone = model['backbone'].rsplit('.')[-1]
        assert cells[1:5] == [backbone, 'FCNHead', '1', f'{model["mIoU"][0]:.2f}']
        assert cells[5] == f'{model["IoU"]["pole"][0]:.2f}'
        assert cells[8] == f'{model["params"] / 1e6:.2f}'
    assert f'| model | {" | ".join(CLASSES)} |' in lines
    # one seed each: the verdict says the spread is unknown
    assert report['verdict']['exceeds_spread'] is None
    assert 'with a single seed there is no spread' in report['verdict']['sentence']
    assert report['verdict']['sentence'] in text
    assert 'Settings: 2 iterations;' in text


def test_the_chart_is_written(study):
    work_dir, _ = study
    with Image.open(work_dir / 'compare_chart.png') as picture:
        # 1.3 inches per group (7 classes and the mIoU), 4.2 high, at 120 dpi
        assert picture.size == (round(8 * 1.3 * 120), round(4.2 * 120))


def test_a_second_run_neither_overwrites_nor_retrains(study, demo_data, tmp_path):
    work_dir, _ = study
    proc = _compare([DRN_C26, R18], work_dir, demo_data, cwd=tmp_path)
    assert proc.returncode != 0
    assert 'holds a comparison; pass --resume' in proc.stderr


def test_resume_reuses_finished_runs_and_judges_the_spread(study, demo_data, tmp_path):
    """Seeds 1 and 2 given as finished runs: nothing trains, and the verdict
    follows the rule (difference of the means against the sum of the stds)."""
    work_dir = tmp_path / 'compare'
    shutil.copytree(study[0], work_dir)
    for config, mious in ((DRN_C26, [50.0, 51.0, 52.0]), (R18, [40.0, 41.0, 42.0])):
        seed0 = work_dir / 'runs' / config.stem / 'seed0'
        result = json.loads((seed0 / 'result.json').read_text())
        for seed, miou in enumerate(mious):
            (work_dir / 'runs' / config.stem / f'seed{seed}').mkdir(exist_ok=True)
            result.update(seed=seed, mIoU=miou)
            path = work_dir / 'runs' / config.stem / f'seed{seed}' / 'result.json'
            path.write_text(json.dumps(result))
    out = check(
        _compare(
            [DRN_C26, R18], work_dir, demo_data, '--seeds', '0', '1', '2', '--resume'
        )
    )
    assert out.count(': reusing ') == 6 and ': training' not in out
    report = json.loads((work_dir / 'compare.json').read_text())
    assert report['models'][0]['mIoU'] == [51.0, 1.0]
    assert report['verdict']['exceeds_spread'] is True
    assert report['verdict']['sentence'] == (
        'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64 scores 10.00 mIoU points above '
        'fcn_r18-d8_1xb8-1k_drn-demo-64x64 (means over 3 and 3 seeds); the '
        'difference exceeds the spread over seeds (standard deviations 1.00 and '
        '1.00, sum 2.00).'
    )
    assert '| 3 | 51.00 ± 1.00 |' in (work_dir / 'compare.md').read_text()
    # the chart is drawn again, now with error bars
    with Image.open(work_dir / 'compare_chart.png') as picture:
        assert picture.size == (round(8 * 1.3 * 120), round(4.2 * 120))


def test_dry_run_shows_each_run_and_its_launch(tmp_path):
    args = [str(DRN_C26), 'mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py']
    args += ['--seeds-for', 'fcn_r18-d8_4xb2-80k_cityscapes-512x1024', '1', '2']
    args += ['--iters', '40', '--launcher', 'pytorch', '--gpus', '4', '--dry-run']
    out = check(run_tool(TOOL, args + ['--work-dir', str(tmp_path)], str(tmp_path)))
    commands = [line.split() for line in out.splitlines() if line.startswith('bash ')]
    assert len(commands) == 6  # train and test of 3 runs
    train, test = commands[:2]
    assert train[1].endswith('tools/dist_train.sh') and train[2:4] == [
        str(DRN_C26),
        '4',
    ]
    assert test[1].endswith('tools/dist_test.sh') and test[3:5] == ['CHECKPOINT', '4']
    # the DRN config's seed 0, its schedule shortened (its poly decay ends at 40)
    for option in (
        'randomness.seed=0',
        'train_cfg.max_iters=40',
        'param_scheduler.0.end=40',
        'default_hooks.checkpoint.interval=40',
    ):
        assert option in train, option
    # mmseg:: names are MMSeg's own config files
    r18 = [c for c in commands[2:] if c[1].endswith('dist_train.sh')]
    assert [c[2] for c in r18] == [r18[0][2]] * 2
    assert r18[0][2].endswith(
        'mmseg/.mim/configs/fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py'
    )
    assert [c[c.index('--cfg-options') + 1] for c in r18] == [
        'randomness.seed=1',
        'randomness.seed=2',
    ]
    assert not (tmp_path / 'runs').exists()


@pytest.mark.parametrize(
    'args, message',
    [
        (
            ['A.py', 'B.py', '--labels', 'a'],
            "--labels: one per config, all different, got ['a']",
        ),
        (['A.py', 'x/A.py'], 'config file names: one per config, all different'),
        (
            ['A.py', '--seeds-for', 'B.py', '1'],
            "--seeds-for: 'B.py' is none of the configs",
        ),
        (['A.py', '--seeds-for', 'A.py', 'one'], 'seeds are ints >= 0'),
        (['A.py', '--seeds', '1', '1'], 'seeds are different ints >= 0'),
        (['A.py', 'B.py', '--pair', 'A.py', 'A'], '--pair needs two different configs'),
        (['A.py', '--speed-rounds', '0'], '--speed-rounds must be >= 1'),
        (['A.py', '--speed-time', '0'], '--speed-time must be > 0 seconds'),
        (
            ['A.py', '--cfg-options', 'train_cfg.max_iters'],
            '--cfg-options are KEY=VALUE',
        ),
        (['missing.py'], 'no config file missing.py'),
        (['nopackage::fcn/x.py'], 'nopackage is not installed'),
    ],
)
def test_bad_arguments_are_named(args, message, tmp_path):
    proc = run_tool(TOOL, args, str(tmp_path))
    assert proc.returncode != 0
    assert message in proc.stderr


def test_a_failed_run_stops_the_study(tmp_path, demo_data):
    # DRN-C has no depth 27: its training stops at once
    options = ['model.backbone.depth=27']
    proc = _compare([DRN_C26, R18], tmp_path, demo_data, options=options)
    assert proc.returncode != 0
    assert 'tools/train.py failed' in proc.stderr and 'train.log ends:' in proc.stderr
    assert not (tmp_path / 'runs' / R18.stem).exists()  # no other run started


@pytest.mark.slow
def test_all_five_demo_configs(demo_data, tmp_path):
    configs = list(CLASS_OF)
    check(_compare(configs, tmp_path, demo_data))
    report = json.loads((tmp_path / 'compare.json').read_text())
    for model, config in zip(report['models'], configs):
        backbone, head = CLASS_OF[config]
        assert model['backbone'] == backbone
        assert model['decode_head'].rsplit('.')[-1] == head
        assert model['mIoU'][0] == model['runs'][0]['logged']['mIoU']


# --- the demo study's configs ------------------------------------------------


def test_all_demo_configs_share_the_drn_demo_recipe():
    """Whatever is not the model is the DRN-C-26 demo config's, and so are
    the loss and the preprocessing."""
    reference = Config.fromfile(str(DRN_C26))
    for config in CLASS_OF:
        cfg = Config.fromfile(str(config))
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
            assert cfg[key] == reference[key], (config.name, key)
        assert cfg.model.data_preprocessor == reference.model.data_preprocessor
        head = cfg.model.decode_head
        assert head.loss_decode == reference.model.decode_head.loss_decode
        assert head.num_classes == reference.model.decode_head.num_classes
        assert cfg.model.get('auxiliary_head') is None, config.name
        assert cfg.model.get('pretrained') is None, config.name


@pytest.mark.parametrize('config', list(CLASS_OF), ids=lambda c: c.stem)
def test_demo_configs_build_the_intended_models(config, one_thread):
    from mmseg.apis import init_model

    model = init_model(str(config), device='cpu')
    backbone, head = CLASS_OF[config]
    kind = type(model.backbone)
    assert f'{kind.__module__}.{kind.__qualname__}' == backbone
    assert type(model.decode_head).__name__ == head
    assert type(model.decode_head).__module__.startswith('mmseg.models.decode_heads')
    if 'ResNetV1c' in backbone:
        # MMSeg's r18-d8: strides 1,2,1,1, dilations 1,1,2,4 (output stride 8;
        # MMSeg halves the first block's dilation, contract_dilation=True)
        layers = [getattr(model.backbone, n) for n in model.backbone.res_layers]
        assert [layer[0].conv1.stride[0] for layer in layers] == [1, 2, 1, 1]
        assert [layer[-1].conv1.dilation[0] for layer in layers] == [1, 1, 2, 4]
        with torch.no_grad():
            out = model.backbone(torch.zeros(1, 3, 64, 64))
        assert out[-1].shape == (1, 512, 8, 8)
    if head == 'FCNHead':
        # the plain head: nothing but the 1x1 classifier
        assert isinstance(model.decode_head.convs, torch.nn.Identity)
        assert model.decode_head.conv_seg.kernel_size == (1, 1)

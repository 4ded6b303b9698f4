"""tools/analysis_tools/compare.py end to end: each model trains two
iterations and is tested through tools/train.py and tools/test.py, on the
tiny demo data; the tables, JSON and pictures are written, and each model is
the class it is meant to be. DRN-A-18, DRN-C-26 and ResNetV1c-18-D8 run by
default, all five models in a slow test."""

import json
import os.path as osp

import pytest
from PIL import Image
from tool_runner import check, run_tool

from mmdrn.datasets import CLASSES

# The demo configs pad every training image to 64x64 (their crop size); the
# tiny fixture's scenes are 32x32, and MMSeg 1.2.2's class-weighted
# cross-entropy fails on padded (ignore-label) pixels, so the preprocessor
# pads to the fixture's size instead.
TINY = [
    '--iters', '2', '--seeds', '1', '--scenes', '2', '--speed-batch', '2',
    '--speed-rounds', '1', '--speed-time', '0.01', '--jobs', '2',
    '--cfg-options', 'model.data_preprocessor.size=(32,32)',
    'train_dataloader.batch_size=2',
]  # fmt: skip
CLASS_OF = {
    'drn-a-18': ('mmdrn.openmmlab.backbones.DRN_A', 'FCNHead'),
    'drn-c-26': ('mmdrn.openmmlab.backbones.DRN_C', 'FCNHead'),
    'drn-d-22': ('mmdrn.openmmlab.backbones.DRN_D', 'FCNHead'),
    'r18-d8': ('mmseg.models.backbones.resnet.ResNetV1c', 'FCNHead'),
    'deeplabv3-r18-d8': ('mmseg.models.backbones.resnet.ResNetV1c', 'ASPPHead'),
}


# The default run: the gridding pair and the headline pair (about a minute
# of CPU time); all five models run in the slow test.
MODELS = ['drn-a-18', 'drn-c-26', 'r18-d8']


def _run_study(demo_data, work_dir, models):
    args = ['--work-dir', str(work_dir), '--data-root', demo_data, *TINY]
    args += ['--models', *models]
    out = check(run_tool('analysis_tools/compare.py', args, str(work_dir), timeout=900))
    with open(work_dir / 'compare.json') as f:
        return work_dir, json.load(f), out, args


def _check_classes(report, models):
    assert list(report['models']) == list(models)
    for key in models:
        backbone, head = CLASS_OF[key]
        entry = report['models'][key]
        assert entry['backbone'] == backbone, key
        assert entry['decode_head'].rsplit('.', 1)[-1] == head, key
        assert entry['decode_head'].startswith('mmseg.models.decode_heads.'), key


@pytest.fixture(scope='module')
def study(demo_data, tmp_path_factory):
    return _run_study(demo_data, tmp_path_factory.mktemp('compare'), MODELS)


def test_every_model_is_the_intended_class(study):
    _check_classes(study[1], MODELS)


def test_each_run_went_through_the_tools(study):
    _, report, _, _ = study
    for key, entry in report['models'].items():
        (run,) = entry['runs']
        assert run['seed'] == 0
        # tools/train.py ran the shortened schedule, tools/test.py evaluated it
        assert osp.basename(run['checkpoint']) == 'iter_2.pth', key
        assert run['num_images'] == 2
        # our per-class numbers reproduce the mIoU tools/test.py logged
        assert run['mIoU'] == pytest.approx(run['logged']['mIoU'], abs=0.011)
        assert set(run['IoU']) == set(CLASSES)
        assert entry['mIoU_mean'] == run['mIoU'] and entry['mIoU_std'] is None
        assert entry['params'] > 1e6 and entry['flops'] > 1e6
        assert entry['img_per_s'] > 0


def test_the_tables_name_every_model_and_the_small_classes(study):
    work_dir, report, _, _ = study
    text = (work_dir / 'compare.md').read_text()
    header = text.splitlines()[0]
    for column in ('mIoU', 'pole', 'wire', 'sign', 'params (M)', 'FLOPs (G)'):
        assert f' {column} |' in header
    for entry in report['models'].values():
        miou = f'{entry["mIoU_mean"]:.2f}'
        row = next(
            line
            for line in text.splitlines()
            if line.startswith(f'| {entry["label"]} |')
        )
        assert f'| {miou} |' in row
    # one seed each: the headline sentence says the spread is unknown
    assert report['headline']['exceeds_spread'] is None
    assert report['headline']['sentence'] in text
    assert '2 iterations' in text


def test_the_pictures_are_written(study):
    work_dir, report, _, _ = study
    outputs = report['outputs']
    assert set(outputs) == {'markdown', 'json', 'chart', 'predictions', 'gridding'}
    for name in ('chart', 'predictions', 'gridding'):
        with Image.open(outputs[name]) as picture:
            width, height = picture.size
        assert width > 300 and height > 100, name


def test_a_second_run_neither_overwrites_nor_retrains(study):
    work_dir, report, _, args = study
    proc = run_tool('analysis_tools/compare.py', args, str(work_dir))
    assert proc.returncode != 0
    assert 'pass resume=True (--resume)' in proc.stderr


@pytest.mark.slow
def test_all_five_models(demo_data, tmp_path):
    models = list(CLASS_OF)
    _, report, _, _ = _run_study(demo_data, tmp_path, models)
    _check_classes(report, models)
    for key in models:
        (run,) = report['models'][key]['runs']
        assert run['mIoU'] == pytest.approx(run['logged']['mIoU'], abs=0.011)
    for name in ('markdown', 'json', 'chart', 'predictions', 'gridding'):
        assert osp.isfile(report['outputs'][name]), name

"""tools/test.py refuses a checkpoint that does not fit the config's model.

mmengine loads ``load_from`` non-strictly: without the check, each of these
runs ends with exit status 0 and a near-zero mIoU. The checkpoints are the
state dicts of models built from the configs (what a training of that
config saves). The tool runs as a separate process, as a user runs it, where
the exit status and the absence of a metric are checked; the other refusals
call its ``main`` in this process. (A fitting checkpoint passes the same
check in every other test.py run of the suite.)
"""

import re

import pytest
import torch
from mmseg.registry import MODELS
from tool_runner import check, run_tool

import mmdrn.openmmlab  # noqa: F401  (registers DRN_* for MMSeg)
from mmdrn.backbones import DRN

CONFIG = """
default_scope = 'mmseg'
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[128.0] * 3,
                           std=[64.0] * 3, size=(32, 32)),
    backbone=dict(type='DRN_{arch}', depth={depth}, out_indices=(7,)),
    decode_head=dict(type='FCNHead', in_channels=512, channels=512, in_index=0,
                     num_convs=0, concat_input=False, num_classes={classes},
                     loss_decode=dict(type='CrossEntropyLoss')),
    test_cfg=dict(mode='whole'))
test_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler'),
    dataset=dict(type='DRNDemoDataset', data_root={root!r},
                 data_prefix=dict(img_path='img_dir/val',
                                  seg_map_path='ann_dir/val'),
                 indices=1,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadAnnotations'),
                           dict(type='PackSegInputs')]))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
"""


def _config(tmp_path, root, arch, depth, classes):
    path = tmp_path / f'fcn_drn-{arch.lower()}-{depth}_{classes}cls.py'
    path.write_text(CONFIG.format(arch=arch, depth=depth, classes=classes, root=root))
    return str(path)


def _segmentor_checkpoint(tmp_path, arch, depth, classes):
    """What a training of that config saves: meta + the model's state dict."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(type=f'DRN_{arch}', depth=depth, out_indices=(7,)),
            decode_head=dict(
                type='FCNHead',
                in_channels=512,
                channels=512,
                num_convs=0,
                concat_input=False,
                num_classes=classes,
            ),
        )
    )
    path = tmp_path / f'drn-{arch.lower()}-{depth}_{classes}cls.pth'
    torch.save({'meta': {'iter': 10}, 'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def files(tmp_path_factory, demo_data):
    tmp = tmp_path_factory.mktemp('strict')
    backbone = tmp / 'drn_d_22_fyu.pth'  # fyu/drn's classification network
    torch.save(DRN('D', 22).state_dict(), backbone)
    safetensors_torch = pytest.importorskip('safetensors.torch')
    safetensors_torch.save_file(DRN('D', 22).state_dict(), tmp / 'drn_d_22.safetensors')
    return dict(
        d22_7=_config(tmp, demo_data, 'D', 22, 7),
        d22_19=_config(tmp, demo_data, 'D', 22, 19),
        ckpt_c26_7=_segmentor_checkpoint(tmp, 'C', 26, 7),
        ckpt_d22_7=_segmentor_checkpoint(tmp, 'D', 22, 7),
        backbone=str(backbone),
        safetensors=str(tmp / 'drn_d_22.safetensors'),
    )


def _refused(tmp_path, config, checkpoint):
    """Run tools/test.py; it must refuse the checkpoint. Its output."""
    proc = run_tool('test.py', [config, checkpoint], str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert not re.search(r'mIoU: [0-9.]+', out)  # no metric is printed
    assert 'CheckpointMismatchError' in out
    assert f'{checkpoint!r} does not fit the model of the config' in out
    return out


def test_another_backbone_is_refused_and_named(tmp_path, files):
    out = _refused(tmp_path, files['d22_7'], files['ckpt_c26_7'])
    assert re.search(
        r'\d+ model keys missing from the checkpoint .*backbone\.layer0', out
    )
    assert re.search(
        r'\d+ checkpoint keys the model does not have .*backbone\.conv1', out
    )
    assert 'convert_checkpoint' not in out  # an OpenMMLab model needs no conversion


def test_another_number_of_classes_is_refused_and_named(tmp_path, files):
    out = _refused(tmp_path, files['d22_19'], files['ckpt_d22_7'])
    assert (
        '2 of another shape (not loaded): decode_head.conv_seg.weight '
        '(checkpoint [7, 512, 1, 1], model [19, 512, 1, 1]), '
        'decode_head.conv_seg.bias (checkpoint [7], model [19])'
    ) in out
    assert 'missing from the checkpoint' not in out


@pytest.mark.parametrize('kind', ['backbone', 'safetensors'])
def test_a_plain_fyu_drn_network_is_refused_with_the_conversion(tmp_path, files, kind):
    out = _refused(tmp_path, files['d22_7'], files[kind])
    assert "The file holds a plain DRN network in 'drn' layout, not an" in out
    assert (
        'convert it with `python tools/model_converters/convert_checkpoint.py '
        'FILE OUT.pth --target mmseg --model NAME`'
    ) in out


def test_allow_partial_load_tests_and_reports_what_was_not_loaded(tmp_path, files):
    args = [files['d22_7'], files['ckpt_c26_7'], '--allow-partial-load']
    out = check(run_tool('test.py', args, str(tmp_path)))
    metric = [m.end() for m in re.finditer(r'mIoU: [0-9.]+', out)]
    assert metric, out[-3000:]
    summary = [m.start() for m in re.finditer(r'partial load of .* \(allowed\)', out)]
    # once when loading, once after the metrics
    assert len(summary) == 2 and summary[0] < metric[-1] < summary[1], out[-3000:]
    assert re.search(r'\d+ model keys missing from the checkpoint', out[summary[1] :])

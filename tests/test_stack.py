"""The OpenMMLab + timm stack mmdrn is built on installs and works on CPU."""

import importlib

import pytest
import torch


@pytest.mark.parametrize(
    'module', ['mmcv.ops', 'mmseg.models', 'mmpretrain.models', 'timm', 'mmdrn']
)
def test_stack_imports(module):
    assert importlib.import_module(module) is not None


def test_mmcv_compiled_op_runs():
    from mmcv.ops import nms

    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    # the second box overlaps the first with IoU 0.81 and is suppressed
    assert keep.tolist() == [0, 2]


def test_mmseg_encoder_decoder_runs_on_cpu():
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    norm_cfg = dict(type='BN', requires_grad=True)
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor', size=(32, 32)),
            backbone=dict(
                type='ResNetV1c',
                depth=18,
                num_stages=4,
                dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1),
                norm_cfg=norm_cfg,
            ),
            decode_head=dict(
                type='FCNHead',
                in_channels=512,
                channels=16,
                num_convs=1,
                num_classes=3,
                norm_cfg=norm_cfg,
                align_corners=False,
            ),
        )
    ).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
    # FCN on a D8 ResNet: logits at 1/8 of the input, one channel per class
    assert logits.shape == (2, 3, 4, 4)
    assert torch.isfinite(logits).all()


def test_mmpretrain_image_classifier_trains_on_cpu():
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    from mmpretrain.utils import register_all_modules

    register_all_modules()
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=512),
        )
    )
    images = torch.rand(2, 3, 32, 32)
    samples = [DataSample().set_gt_label(1), DataSample().set_gt_label(3)]
    losses = model(images, samples, mode='loss')
    assert set(losses) == {'loss'} and losses['loss'].item() > 0
    losses['loss'].backward()
    assert model.head.fc.weight.grad is not None
    model.eval()
    with torch.no_grad():
        preds = model(images, mode='predict')
    assert len(preds) == 2 and preds[0].pred_score.shape == (5,)

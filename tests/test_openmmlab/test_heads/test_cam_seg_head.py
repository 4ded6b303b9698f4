"""CAMSegHead (MMSeg): CAM label maps through EncoderDecoder and IoUMetric."""

import math

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmdrn.heads import cam_label_map, image_level_labels
from mmdrn.openmmlab.heads import CAMSegHead


def test_image_level_labels_known_answer():
    masks = torch.tensor(
        [
            [[0, 2, 255], [2, 2, 0]],  # class 2 -> foreground index 1
            [[255, 255, 255], [0, 0, 0]],  # nothing
            [[1, 3, 9], [3, 0, 0]],  # 9 is out of range and ignored
        ]
    )[:, None]
    labels = image_level_labels(masks, num_classes=4, ignore_index=255)
    assert labels.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]


def test_cam_label_map_known_answer():
    probs = torch.zeros(1, 3, 1, 4)
    probs[0, :, 0, 0] = torch.tensor([0.8, 0.1, 0.1])  # class 0 -> label 1
    probs[0, :, 0, 1] = torch.tensor([0.2, 0.2, 0.6])  # class 2 -> label 3
    probs[0, :, 0, 2] = torch.tensor([0.5, 0.25, 0.25])  # 0.5 == t: background
    probs[0, :, 0, 3] = torch.tensor([0.4, 0.3, 0.3])  # below t: background
    assert cam_label_map(probs, 0.5).tolist() == [[[1, 3, 0, 0]]]
    assert cam_label_map(probs, 0.0).tolist() == [[[1, 3, 1, 1]]]
    up = cam_label_map(probs, 0.5, size=(2, 8))
    assert up.shape == (1, 2, 8) and up.dtype == torch.long
    with pytest.raises(ValueError, match=r'bg_threshold must be in \[0, 1\), got 2'):
        cam_label_map(probs, 2)
    with pytest.raises(
        ValueError, match=r'probs must be a 4-D .*got shape \(3, 1, 4\)'
    ):
        cam_label_map(probs[0], 0.5)


def test_forward_is_threshold_then_probabilities():
    torch.manual_seed(0)
    head = MODELS.build(
        dict(type='CAMSegHead', in_channels=8, num_classes=4, bg_threshold=0.3)
    )
    head.init_weights()
    out = head((torch.randn(2, 8, 3, 5),))
    assert out.shape == (2, 4, 3, 5)
    assert (out[:, 0] == 0.3).all()
    torch.testing.assert_close(out[:, 1:].sum(dim=1), torch.ones(2, 3, 5))
    assert head.fc.weight.shape == (3, 8, 1, 1)
    assert not hasattr(head, 'conv_seg')


def test_loss_uses_only_image_level_labels():
    head = CAMSegHead(in_channels=4, num_classes=3)
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.copy_(torch.tensor([2.0, -1.0]))  # constant logits
    mask = torch.zeros(1, 6, 6, dtype=torch.long)
    mask[0, :2, :2] = 1  # foreground class 0 present, class 1 absent
    sample = SegDataSample(gt_sem_seg=PixelData(data=mask))
    loss = head.loss((torch.randn(1, 4, 3, 3),), [sample], None)['loss_cls']

    def softplus(x):
        return math.log1p(math.exp(x))

    # BCE(2, 1) = softplus(-2), BCE(-1, 0) = softplus(-1), averaged
    expected = (softplus(-2.0) + softplus(-1.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # moving the present class's pixels elsewhere changes nothing
    mask2 = torch.zeros_like(mask)
    mask2[0, 5, 5] = 1
    sample2 = SegDataSample(gt_sem_seg=PixelData(data=mask2))
    loss2 = head.loss((torch.randn(1, 4, 3, 3),), [sample2], None)['loss_cls']
    assert loss2.item() == pytest.approx(loss.item())


def test_cam_seg_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match='num_classes must be an int >= 2, got 1'):
        CAMSegHead(in_channels=4, num_classes=1)
    with pytest.raises(TypeError, match="num_classes must be an int >= 2, got '3'"):
        CAMSegHead(in_channels=4, num_classes='3')
    with pytest.raises(ValueError, match=r'bg_threshold must be in \[0, 1\), got -0.5'):
        CAMSegHead(in_channels=4, num_classes=3, bg_threshold=-0.5)


def _segmentor(backbone, in_channels, num_classes=3, bg_threshold=0.5):
    # EncoderDecoder builds its data preprocessor through the default scope
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = _build_segmentor(backbone, in_channels, num_classes, bg_threshold)
    model.init_weights()
    return model.eval()


def _build_segmentor(backbone, in_channels, num_classes, bg_threshold):
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=backbone,
            decode_head=dict(
                type='CAMSegHead',
                in_channels=in_channels,
                num_classes=num_classes,
                bg_threshold=bg_threshold,
            ),
            test_cfg=ConfigDict(mode='whole'),
        )
    )


def _sample(mask):
    h, w = mask.shape
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))
    return SegDataSample(metainfo=meta, gt_sem_seg=PixelData(data=mask[None]))


def test_encoder_decoder_label_map_is_cam_label_map():
    torch.manual_seed(1)
    backbone = dict(type='DRN_D', depth=22)
    model = _segmentor(backbone, in_channels=512, num_classes=4, bg_threshold=0.5)
    with torch.no_grad():
        # zero-mean weights ignore the features' common offset, so that
        # several classes and background occur
        weight = torch.randn(3, 512, 1, 1)
        model.decode_head.fc.weight.copy_(weight - weight.mean(dim=1, keepdim=True))
    images = torch.randn(2, 3, 32, 48)
    samples = [_sample(torch.zeros(32, 48, dtype=torch.long)) for _ in range(2)]
    with torch.no_grad():
        out = model.predict(images, samples)
        probs = model.decode_head.class_probs(model.extract_feat(images))
    expected = cam_label_map(probs, 0.5, size=(32, 48))
    labels = torch.stack([s.pred_sem_seg.data[0] for s in out])
    assert labels.shape == (2, 32, 48)
    # background and at least two foreground classes occur
    assert labels.unique().tolist()[0] == 0 and labels.unique().numel() >= 3
    assert torch.equal(labels, expected)


def test_iou_metric_scores_a_known_prediction():
    backbone = dict(type='DRN_C', depth=26, out_indices=(7,))
    model = _segmentor(backbone, in_channels=512, num_classes=3)
    with torch.no_grad():
        model.decode_head.fc.weight.zero_()
        model.decode_head.fc.bias.copy_(torch.tensor([5.0, 0.0]))  # p = 0.993
    mask = torch.zeros(16, 16, dtype=torch.long)
    mask[:, 8:] = 1  # right half is class 1, left half background
    with torch.no_grad():
        (out,) = model.predict(torch.randn(1, 3, 16, 16), [_sample(mask)])
    # every pixel is foreground class 0 -> label 1
    assert (out.pred_sem_seg.data == 1).all()
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('background', 'a', 'b'))
    metric.process({}, [out.to_dict()])
    results = metric.compute_metrics(metric.results)
    # background IoU 0, class 1 IoU 128 / 256, class 2 absent (NaN, skipped)
    assert results['mIoU'] == pytest.approx(25.0)


def test_encoder_decoder_trains_from_image_level_labels():
    torch.manual_seed(2)
    model = _segmentor(dict(type='DRN_D', depth=22), in_channels=512).train()
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[4:10, 4:10] = 2
    losses = model.loss(torch.randn(1, 3, 32, 32), [_sample(mask)])
    assert set(losses) == {'decode.loss_cls'}
    losses['decode.loss_cls'].backward()
    assert model.decode_head.fc.weight.grad.abs().sum() > 0
    assert model.backbone.layer1[0].weight.grad.abs().sum() > 0

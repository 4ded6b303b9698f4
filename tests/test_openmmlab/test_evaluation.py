"""ImageNetLocMetric on hand-built predictions with known IoUs."""

from pathlib import Path

import pytest
import torch

from mmdrn.openmmlab.evaluation import ImageNetLocMetric

FIXTURE = Path(__file__).parents[1] / 'data' / 'imagenet_loc'
WNIDS = ['n01440764', 'n01443537', 'n01484850']  # ImageNet classes 0, 1, 2


def _sample(pred, gt, box, valid=True, known=None, **extra):
    sample = dict(
        pred_label=torch.tensor([pred]),
        gt_label=torch.tensor([gt]),
        pred_bbox=torch.tensor(box, dtype=torch.float32),
        pred_bbox_valid=torch.tensor(valid),
        **extra,
    )
    if known is not None:
        sample['gt_known_bbox'] = torch.tensor(known, dtype=torch.float32)
    return sample


def _evaluate(metric, samples):
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def test_metric_with_boxes_in_samples_known_ious():
    gt = dict(
        gt_bboxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
        gt_bbox_labels=torch.tensor([1, 3]),
    )
    samples = [
        # right class, IoU exactly 0.5 -> localization error
        _sample(1, 1, [0, 0, 10, 5], known=[0, 0, 10, 5], **gt),
        # right class, IoU 0.51 -> correct
        _sample(1, 1, [0, 0, 10, 5.1], known=[0, 0, 10, 5.1], **gt),
        # wrong class, perfect box -> error; GT-known box perfect -> GT-known hit
        _sample(2, 1, [0, 0, 10, 10], known=[0, 0, 10, 10], **gt),
        # right class 3 but the box matches the class-1 object only -> error
        _sample(3, 3, [0, 0, 10, 10], valid=False, known=[20, 20, 30, 30], **gt),
    ]
    metrics = _evaluate(ImageNetLocMetric(), samples)
    assert metrics == pytest.approx(
        {
            'loc/top1_cls_acc': 75.0,
            'loc/top1_loc_acc': 25.0,
            'loc/top1_loc_err': 75.0,
            'loc/gt_known_loc_acc': 75.0,
            'loc/no_box_rate': 25.0,
        }
    )


def test_metric_iou_threshold_is_configurable():
    gt = dict(gt_bboxes=torch.tensor([[0.0, 0.0, 10.0, 10.0]]), gt_bbox_labels=[0])
    samples = [_sample(0, 0, [0, 0, 10, 5], **gt)]
    assert _evaluate(ImageNetLocMetric(iou_thr=0.5), samples)['loc/top1_loc_acc'] == 0
    metric = ImageNetLocMetric(iou_thr=0.49, prefix='wsol')
    assert _evaluate(metric, samples)['wsol/top1_loc_acc'] == 100.0


def test_metric_reads_imagenet_xml_fixture():
    img1 = dict(img_path='val/ILSVRC2012_val_00000001.JPEG')
    img2 = dict(img_path='/x/ILSVRC2012_val_00000002.JPEG')
    samples = [
        # GT box (8, 8, 40, 32), area 768: the upper half has IoU exactly 0.5
        _sample(1, 1, [8, 8, 40, 20], **img1),
        # 416 / 768 > 0.5
        _sample(1, 1, [8, 8, 40, 21], **img1),
        # exactly the second class-2 object
        _sample(2, 2, [32, 32, 64, 64], **img2),
        # exactly the class-0 object, but class 2 was asked: IoU 256 / 1792
        _sample(2, 2, [16, 16, 48, 48], **img2),
    ]
    for classes in (WNIDS, None):  # None: the ImageNet-1k order from timm
        metric = ImageNetLocMetric(ann_dir=str(FIXTURE), classes=classes)
        metrics = _evaluate(metric, samples)
        assert metrics['loc/top1_cls_acc'] == 100.0
        assert metrics['loc/top1_loc_acc'] == 50.0
        assert metrics['loc/no_box_rate'] == 0.0
        assert 'loc/gt_known_loc_acc' not in metrics


def test_metric_accepts_data_samples():
    from mmpretrain.structures import DataSample

    sample = DataSample(metainfo=dict(img_path='ILSVRC2012_val_00000001.JPEG'))
    sample.set_gt_label(1).set_pred_label(1)
    sample.set_field(torch.tensor([8.0, 8.0, 40.0, 32.0]), 'pred_bbox')
    metric = ImageNetLocMetric(ann_dir=str(FIXTURE), classes=WNIDS)
    assert _evaluate(metric, [sample])['loc/top1_loc_acc'] == 100.0


def test_metric_rejects_bad_configuration(tmp_path):
    with pytest.raises(
        ValueError, match="ann_dir must be an existing folder, got '/nope'"
    ):
        ImageNetLocMetric(ann_dir='/nope')
    with pytest.raises(ValueError, match=r'iou_thr must be in \[0, 1\), got 1.5'):
        ImageNetLocMetric(iou_thr=1.5)
    with pytest.raises(
        TypeError, match=r'iou_thr must be a float in \[0, 1\), got .* of type str'
    ):
        ImageNetLocMetric(iou_thr='0.5')


def test_metric_rejects_bad_samples():
    metric = ImageNetLocMetric(ann_dir=str(FIXTURE), classes=WNIDS[:2])
    with pytest.raises(ValueError, match=r"missing \['pred_bbox'\]"):
        metric.process(None, [dict(pred_label=1, gt_label=1)])
    bad = _sample(2, 2, [0, 0, 1, 1], img_path='ILSVRC2012_val_00000002.JPEG')
    with pytest.raises(ValueError, match=r"object names \['n01484850'\] are not among"):
        metric.process(None, [bad])
    with pytest.raises(ValueError, match='needs ann_dir'):
        ImageNetLocMetric().process(None, [_sample(0, 0, [0, 0, 1, 1])])
    with pytest.raises(FileNotFoundError, match='ILSVRC2012_val_00000009.xml'):
        metric.process(
            None, [_sample(0, 0, [0, 0, 1, 1], img_path='ILSVRC2012_val_00000009.JPEG')]
        )


def test_metric_is_registered_in_both_scopes():
    from mmpretrain.registry import METRICS as PRETRAIN_METRICS
    from mmseg.registry import METRICS as SEG_METRICS

    for registry in (PRETRAIN_METRICS, SEG_METRICS):
        metric = registry.build(dict(type='ImageNetLocMetric', iou_thr=0.3))
        assert isinstance(metric, ImageNetLocMetric) and metric.iou_thr == 0.3

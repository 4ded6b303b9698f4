"""``ImageNetLocMetric``: the ImageNet weakly-supervised localization metric
of Yu et al., "Dilated Residual Networks", CVPR 2017
(https://arxiv.org/abs/1705.09914), for the boxes ``CAMHead`` predicts.

Example:
    >>> test_evaluator = dict(
    ...     type='ImageNetLocMetric', ann_dir='data/imagenet/bbox_val')
"""

import os
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from ..evaluation.imagenet_loc import localized, parse_imagenet_xml
from ..utils.validation import check_threshold
from .registry import register_metric

__all__ = ['ImageNetLocMetric']


def _imagenet_wnids() -> List[str]:
    """The WordNet ids of the 1000 ImageNet classes, in class-index order."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def _as_int(value: Union[int, Tensor]) -> int:
    return int(torch.as_tensor(value).reshape(-1)[0])


@register_metric()
class ImageNetLocMetric(BaseMetric):
    """Top-1 localization error, top-1 accuracy and GT-known localization.

    For every image with ground-truth class ``g`` and ground-truth boxes
    ``B_g`` (the boxes of class ``g``):

    * **top-1 classification**: the predicted class is ``g``;
    * **top-1 localization**: the predicted class is ``g`` *and* the box of the
      predicted class has IoU ``> iou_thr`` with some box in ``B_g``. The
      top-1 localization error is its complement: wrong class, or IoU
      ``<= iou_thr`` with every box of that class;
    * **GT-known localization**: the box computed for class ``g`` (whatever
      was predicted) has IoU ``> iou_thr`` with some box in ``B_g``.

    Boxes are compared in original-image edge coordinates (see
    :mod:`mmdrn.evaluation.imagenet_loc`). Images where no pixel passed the
    box rule are scored with their fallback box and also counted in
    ``no_box_rate``. All values are percentages.

    Each prediction (a data sample, or its ``to_dict()``) must hold
    ``pred_label``, ``gt_label``, ``pred_bbox`` (and optionally
    ``pred_bbox_valid``, ``gt_known_bbox``), as written by ``CAMHead``.
    Ground-truth boxes come from ``gt_bboxes`` (``M x 4`` edge coordinates)
    with ``gt_bbox_labels`` (``M`` class indices) when a dataset provides
    them, otherwise from ``<ann_dir>/<image name>.xml``.

    Args:
        ann_dir (str, optional): Folder of ImageNet bounding-box XML files
            named after the images (``ILSVRC2012_val_00000001.xml`` for
            ``ILSVRC2012_val_00000001.JPEG``). Default: None (samples must
            carry ``gt_bboxes``).
        classes (Sequence[str], optional): The WordNet id of each class index,
            used to read the ``<name>`` of XML objects. Default: None, the
            standard ImageNet-1k order (sorted WordNet ids, from timm).
        iou_thr (float): A box localizes when its IoU is strictly greater.
            Default: 0.5.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default: ``'cpu'``.
        prefix (str, optional): Metric name prefix. Default: None (``'loc'``).
    """

    default_prefix = 'loc'

    def __init__(
        self,
        ann_dir: Optional[str] = None,
        classes: Optional[Sequence[str]] = None,
        iou_thr: float = 0.5,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        if collect_device not in ('cpu', 'gpu'):
            raise ValueError(
                f"collect_device must be one of ('cpu', 'gpu'), got {collect_device!r}"
            )
        if ann_dir is not None and not isinstance(ann_dir, (str, os.PathLike)):
            raise TypeError(
                f'ann_dir must be None or the path of an existing folder, got '
                f'{type(ann_dir).__name__} {ann_dir!r}'
            )
        if classes is not None and (
            not isinstance(classes, (list, tuple))
            or not all(isinstance(name, str) for name in classes)
        ):
            raise TypeError(
                f'classes must be None or a list/tuple of WordNet id strings, '
                f'got {classes!r}'
            )
        super().__init__(collect_device=collect_device, prefix=prefix)
        if ann_dir is not None and not os.path.isdir(ann_dir):
            raise ValueError(f'ann_dir must be an existing folder, got {ann_dir!r}')
        self.ann_dir = ann_dir
        self.iou_thr = check_threshold('iou_thr', iou_thr)
        self._classes = list(classes) if classes is not None else None
        self._class_index: Optional[Dict[str, int]] = None

    @property
    def class_index(self) -> Dict[str, int]:
        """WordNet id -> class index (built on first use)."""
        if self._class_index is None:
            names = self._classes if self._classes is not None else _imagenet_wnids()
            self._class_index = {name: i for i, name in enumerate(names)}
        return self._class_index

    def _gt_boxes(self, sample: dict) -> Tensor:
        """Ground-truth boxes of the sample's class, ``M x 4``."""
        gt_label = _as_int(sample['gt_label'])
        if 'gt_bboxes' in sample:
            boxes = torch.as_tensor(sample['gt_bboxes'], dtype=torch.float64)
            labels = torch.as_tensor(sample['gt_bbox_labels']).reshape(-1)
            return boxes.reshape(-1, 4)[labels == gt_label]
        if self.ann_dir is None:
            raise ValueError(
                'ImageNetLocMetric needs ann_dir (a folder of bounding-box XML '
                'files) when samples carry no gt_bboxes'
            )
        img_path = sample.get('img_path')
        if img_path is None:
            raise ValueError('a sample has no img_path to find its XML file with')
        stem = os.path.splitext(os.path.basename(img_path))[0]
        xml_path = os.path.join(self.ann_dir, stem + '.xml')
        ann = parse_imagenet_xml(xml_path)
        unknown = sorted(set(ann.names) - set(self.class_index))
        if unknown:
            raise ValueError(
                f'{xml_path}: object names {unknown} are not among the metric '
                f'classes; pass classes=[...] with the WordNet id of every class'
            )
        keep = [
            i for i, name in enumerate(ann.names) if self.class_index[name] == gt_label
        ]
        return ann.boxes[keep].double()

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Score each prediction and keep per-image outcomes.

        Args:
            data_batch: Unused (the ground truth travels with the samples).
            data_samples (Sequence[dict]): Predictions (data samples or their
                ``to_dict()``) with the fields described in the class docstring.
        """
        for sample in data_samples:
            if not isinstance(sample, dict):
                sample = sample.to_dict()
            missing = [
                k for k in ('pred_label', 'gt_label', 'pred_bbox') if k not in sample
            ]
            if missing:
                raise ValueError(
                    f'ImageNetLocMetric needs pred_label, gt_label and pred_bbox '
                    f'in every sample (use CAMHead with with_boxes=True); '
                    f'missing {missing}'
                )
            gt_boxes = self._gt_boxes(sample)
            cls_ok = _as_int(sample['pred_label']) == _as_int(sample['gt_label'])
            pred_box = torch.as_tensor(sample['pred_bbox'], dtype=torch.float64)
            result = dict(
                cls=cls_ok,
                loc=cls_ok and localized(pred_box, gt_boxes, self.iou_thr),
                no_box=not bool(sample.get('pred_bbox_valid', True)),
            )
            if 'gt_known_bbox' in sample:
                gt_known_box = torch.as_tensor(
                    sample['gt_known_bbox'], dtype=torch.float64
                )
                result['gt_known'] = localized(gt_known_box, gt_boxes, self.iou_thr)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Percentages over all images.

        Args:
            results (list[dict]): Per-image outcomes from :meth:`process`.

        Returns:
            dict[str, float]: ``top1_loc_err``, ``top1_loc_acc``,
            ``top1_cls_acc``, ``no_box_rate`` and, when the head computed
            boxes for the ground-truth class, ``gt_known_loc_acc``.
        """

        def percent(key: str) -> float:
            values = [r[key] for r in results if key in r]
            return 100.0 * sum(values) / len(values)

        metrics = dict(
            top1_loc_acc=percent('loc'),
            top1_cls_acc=percent('cls'),
            no_box_rate=percent('no_box'),
        )
        metrics['top1_loc_err'] = 100.0 - metrics['top1_loc_acc']
        if any('gt_known' in r for r in results):
            metrics['gt_known_loc_acc'] = percent('gt_known')
        return metrics

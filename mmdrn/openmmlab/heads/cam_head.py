"""``CAMHead``: the DRN classifier with a dense localization path (mmpretrain).

Yu et al., "Dilated Residual Networks", CVPR 2017
(https://arxiv.org/abs/1705.09914), Section 3 "Localization"; the maps and
boxes are those of :mod:`mmdrn.heads.cam`. The classifier is ``self.fc``, a
``Conv2d(in_channels, num_classes, 1)``, so fyu/drn's ``fc.*`` keys load as
``head.fc.*`` of an ``ImageClassifier`` (:func:`mmdrn.heads.image_classifier_keys`);
a DRN-A checkpoint's linear ``K x C`` weight is reshaped to ``K x C x 1 x 1`` on
load, which is the same function.

Example:
    >>> import torch
    >>> head = CAMHead(num_classes=10, in_channels=512)
    >>> feats = (torch.randn(2, 512, 28, 28),)
    >>> print(head(feats).shape, head.forward_dense(feats).shape)
    torch.Size([2, 10]) torch.Size([2, 10, 28, 28])
"""

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ...heads.cam import (
    DEFAULT_THRESHOLD,
    CAMOutput,
    cam_boxes,
    cam_probs,
    dense_logits,
)
from ...utils.validation import check_int, check_threshold
from ..registry import register_model

__all__ = ['CAMHead']


@register_model('mmpretrain')
class CAMHead(ClsHead):
    """Global-average-pooling classifier with class activation maps and boxes.

    Training and ``forward`` are the paper's classifier: global average
    pooling, the 1x1 convolution, cross-entropy. ``predict`` returns the
    usual ``pred_score`` / ``pred_label`` and, when ``with_boxes`` and the
    samples carry ``img_shape``, these fields per sample (boxes are
    ``(x1, y1, x2, y2)`` edge coordinates of the original image, see
    :mod:`mmdrn.heads.cam`):

    * ``pred_bbox`` (Tensor, 4): box of the predicted class;
    * ``pred_bbox_valid`` (bool Tensor): False where no pixel passed the rule
      (the box is then the whole image);
    * ``gt_known_bbox`` / ``gt_known_bbox_valid``: the same for the
      ground-truth class, when the sample has ``gt_label``.

    Boxes found on the network input are mapped to ``ori_shape`` by the
    per-axis ratio ``ori_shape / img_shape``, which is exact for an evaluation
    pipeline that only resizes (e.g. ``Resize(scale=224)`` to a fixed square,
    the usual weakly-supervised localization protocol); a crop in the
    pipeline would need its offset, which mmpretrain does not record.

    Args:
        num_classes (int): Number of classes ``K``.
        in_channels (int): Channels ``C`` of the backbone's last feature map.
        threshold (float): Box-rule threshold ``t`` in ``[0, 1)``; a pixel
            needs probability ``> t``. Default: 0.1
            (:data:`mmdrn.heads.DEFAULT_THRESHOLD`; the paper gives no value).
        with_boxes (bool): Attach boxes in ``predict``. Default: True.
        loss (dict, optional): Classification loss config. Default: None,
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        topk (int | tuple[int]): Top-k accuracy during training. Default: (1,).
        cal_acc (bool): Compute accuracy during training. Default: False.
        init_cfg (dict, optional): Initialisation config. Default: None,
            ``dict(type='Normal', layer='Conv2d', std=0.01)``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        threshold: float = DEFAULT_THRESHOLD,
        with_boxes: bool = True,
        loss: Optional[dict] = None,
        topk: Union[int, Tuple[int, ...]] = (1,),
        cal_acc: bool = False,
        init_cfg: Optional[dict] = None,
    ) -> None:
        if loss is None:
            loss = dict(type='CrossEntropyLoss', loss_weight=1.0)
        if init_cfg is None:
            init_cfg = dict(type='Normal', layer='Conv2d', std=0.01)
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        check_int('num_classes', num_classes)
        check_int('in_channels', in_channels)
        check_threshold('threshold', threshold)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.threshold = float(threshold)
        self.with_boxes = with_boxes
        self.fc = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # DRN-A checkpoints hold a linear classifier: same weights, K x C shape
        key = prefix + 'fc.weight'
        weight = state_dict.get(key)
        if weight is not None and weight.dim() == 2:
            state_dict[key] = weight[:, :, None, None]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pre_logits(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """The backbone's last feature map, ``N x C x h x w``."""
        if (
            not isinstance(feats, (tuple, list))
            or not feats
            or not isinstance(feats[-1], Tensor)
        ):
            raise TypeError(
                f'CAMHead takes the backbone outputs as a non-empty tuple of '
                f'tensors, got {type(feats).__name__}'
            )
        x = feats[-1]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'CAMHead expects the last feature map as N x {self.in_channels} '
                f'x h x w, got shape {tuple(x.shape)}'
            )
        return x

    def forward(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Image logits: global average pooling, then the 1x1 classifier."""
        pooled = F.adaptive_avg_pool2d(self.pre_logits(feats), 1)
        return self.fc(pooled).flatten(1)

    def forward_dense(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Class logits at every position, ``N x K x h x w``.

        Their mean over positions equals :meth:`forward` up to float rounding.
        """
        return dense_logits(self.pre_logits(feats), self.fc)

    def cam(
        self,
        feats: Tuple[Tensor, ...],
        labels: Optional[Tensor] = None,
        img_size: Optional[Union[int, Sequence[int]]] = None,
        threshold: Optional[float] = None,
    ) -> CAMOutput:
        """Probability maps and boxes for a batch.

        Args:
            feats (tuple[Tensor]): Backbone outputs; the last one is used.
            labels (Tensor, optional): ``N`` classes to box. Default: None,
                the top-1 prediction.
            img_size (int | tuple[int, int], optional): Input ``(H, W)`` the
                map covers. Default: None, feature-map cell units.
            threshold (float, optional): Overrides ``self.threshold``.

        Returns:
            CAMOutput: Image logits (the classification path), ``N x K x h x w``
            probabilities, boxes, validity and boxed labels.
        """
        logits = self(feats)
        probs = cam_probs(self.forward_dense(feats))
        if labels is None:
            labels = logits.argmax(dim=1)
        t = self.threshold if threshold is None else threshold
        boxes = cam_boxes(probs, labels, t, img_size=img_size)
        return CAMOutput(logits, probs, boxes.boxes, boxes.valid, boxes.labels)

    def predict(
        self,
        feats: Tuple[Tensor, ...],
        data_samples: Optional[List[Optional[DataSample]]] = None,
    ) -> List[DataSample]:
        """Classification scores, plus boxes when ``with_boxes`` (see class doc).

        Args:
            feats (tuple[Tensor]): Backbone outputs; the last one is used.
            data_samples (list[DataSample | None], optional): Samples to fill;
                boxes need their ``img_shape`` (and ``ori_shape`` to map back
                to the original image). Default: None.

        Returns:
            list[DataSample]: One prediction per image.
        """
        cls_score = self(feats)
        predictions = self._get_predictions(cls_score, data_samples)
        if not self.with_boxes or data_samples is None:
            return predictions
        if any(s is None or 'img_shape' not in s for s in data_samples):
            return predictions
        probs = cam_probs(self.forward_dense(feats))
        # the map covers the (possibly padded) batch: the largest input
        batch_hw = [max(s.img_shape[i] for s in predictions) for i in (0, 1)]
        pred = cam_boxes(probs, cls_score.argmax(dim=1), self.threshold, batch_hw)
        self._attach(predictions, pred.boxes, pred.valid, 'pred_bbox')
        if all('gt_label' in s for s in predictions):
            gt_labels = torch.cat([s.gt_label.reshape(1) for s in predictions])
            known = cam_boxes(
                probs, gt_labels.to(probs.device), self.threshold, batch_hw
            )
            self._attach(predictions, known.boxes, known.valid, 'gt_known_bbox')
        return predictions

    @staticmethod
    def _attach(
        samples: List[DataSample], boxes: Tensor, valid: Tensor, name: str
    ) -> None:
        """Clip each box to its image and map it to original coordinates."""
        for sample, box, ok in zip(samples, boxes.detach(), valid):
            img_h, img_w = sample.img_shape[:2]
            ori_h, ori_w = sample.get('ori_shape', sample.img_shape)[:2]
            limit = box.new_tensor([img_w, img_h, img_w, img_h])
            scale = box.new_tensor([ori_w / img_w, ori_h / img_h] * 2)
            box = torch.minimum(box, limit) * scale
            sample.set_field(box, name)
            sample.set_field(ok.clone(), name + '_valid')

"""``CAMSegHead``: class activation maps as a segmentation output (MMSeg).

Yu et al., "Dilated Residual Networks", CVPR 2017
(https://arxiv.org/abs/1705.09914), Section 3 "Localization": a DRN trained
only for classification gives dense per-pixel class probabilities that can be
used for segmentation directly. This decode head turns them into something
MMSeg's ``EncoderDecoder`` and ``IoUMetric`` understand.

* **Prediction.** ``forward`` returns ``N x (K + 1) x h x w``: channel 0 is
  the constant background threshold ``t``, channels ``1..K`` are the
  per-pixel softmax probabilities of the ``K`` foreground classes (1x1
  classifier at every position, :mod:`mmdrn.heads.cam`). ``EncoderDecoder``
  upsamples this volume bilinearly to the input and then to the original
  image and takes the argmax, so a pixel gets class ``c + 1`` when ``c`` is
  its most probable foreground class and ``p_c > t``, and background 0
  otherwise (a tie with ``t`` goes to background, the argmax keeping the
  first index): :func:`mmdrn.heads.cam_label_map`. The ``seg_logits`` that
  MMSeg stores are these probabilities, not logits.
* **Training (weak supervision).** The loss only asks *which* classes occur
  in each image: the foreground classes present in the ground-truth mask
  (pixels equal to ``ignore_index`` and background 0 are left out) form an
  image-level multi-hot target, and the globally average-pooled classifier
  output is trained with binary cross-entropy (multi-label, as on PASCAL
  VOC; the paper's single-label ImageNet softmax loss is ``CAMHead``'s). The
  masks' pixels are never used as targets.

Class layout: ``num_classes`` counts background, which must be class 0 (the
PASCAL VOC convention); the classifier ``self.fc`` has ``num_classes - 1``
outputs. Its keys in an ``EncoderDecoder`` are ``decode_head.fc.weight`` /
``decode_head.fc.bias`` (fyu/drn's ``fc.*`` when the class counts agree).

Example:
    >>> import torch
    >>> head = CAMSegHead(in_channels=512, num_classes=21)
    >>> print(head((torch.randn(1, 512, 8, 8),)).shape)
    torch.Size([1, 21, 8, 8])
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor, nn

from ...heads.cam import cam_probs, dense_logits, image_level_labels
from ...utils.validation import check_int, check_threshold
from ..registry import register_model

__all__ = ['CAMSegHead']


@register_model('mmseg')
class CAMSegHead(BaseDecodeHead):
    """Weakly-supervised segmentation head built on DRN class activation maps.

    See the module docstring for what it predicts and how it trains.

    Args:
        in_channels (int): Channels of the backbone's last feature map.
        num_classes (int): Segmentation classes including background 0.
        bg_threshold (float): ``t`` in ``[0, 1)``: a pixel is foreground when
            its most probable class has probability ``> t``. The softmax over
            the foreground classes cannot say "background" by itself; 0.5
            keeps pixels where one class outweighs all others together.
            Default: 0.5.
        loss_weight (float): Weight of the image-level loss. Default: 1.0.
        in_index (int): Which backbone output to use. Default: -1 (the last).
        ignore_index (int): Mask value of unlabelled pixels. Default: 255.
        align_corners (bool): For the bilinear upsampling. Default: False.
        init_cfg (dict, optional): Initialisation config. Default: None,
            ``dict(type='Normal', std=0.01, override=dict(name='fc'))``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        bg_threshold: float = 0.5,
        loss_weight: float = 1.0,
        in_index: int = -1,
        ignore_index: int = 255,
        align_corners: bool = False,
        init_cfg: Optional[dict] = None,
    ) -> None:
        check_int('in_channels', in_channels)
        # num_classes counts background 0
        check_int('num_classes', num_classes, minimum=2)
        if init_cfg is None:
            init_cfg = dict(type='Normal', std=0.01, override=dict(name='fc'))
        super().__init__(
            in_channels,
            in_channels,
            num_classes=num_classes,
            dropout_ratio=0.0,
            # no pixel-wise loss: loss() below is image-level
            loss_decode=[],
            in_index=in_index,
            ignore_index=ignore_index,
            align_corners=align_corners,
            init_cfg=init_cfg,
        )
        # the classifier covers foreground classes only; background comes
        # from the threshold, so the base class's conv_seg has no role
        del self.conv_seg
        self.fc = nn.Conv2d(in_channels, num_classes - 1, kernel_size=1)
        self.bg_threshold = check_threshold('bg_threshold', bg_threshold)
        self.loss_weight = float(loss_weight)

    def class_probs(self, inputs: Tuple[Tensor, ...]) -> Tensor:
        """Per-pixel softmax over foreground classes, ``N x (K) x h x w``."""
        return cam_probs(dense_logits(self._transform_inputs(inputs), self.fc))

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tensor:
        """``[t, p_1 .. p_K]`` per pixel, ``N x num_classes x h x w``."""
        probs = self.class_probs(inputs)
        background = probs.new_full(probs[:, :1].shape, self.bg_threshold)
        return torch.cat([background, probs], dim=1)

    def image_logits(self, inputs: Tuple[Tensor, ...]) -> Tensor:
        """Global average pooling then the classifier, ``N x (num_classes - 1)``."""
        pooled = F.adaptive_avg_pool2d(self._transform_inputs(inputs), 1)
        return self.fc(pooled).flatten(1)

    def loss(
        self, inputs: Tuple[Tensor, ...], batch_data_samples: List, train_cfg
    ) -> dict:
        """Image-level multi-label loss from the classes present in each mask.

        Args:
            inputs (tuple[Tensor]): Backbone outputs.
            batch_data_samples (list[SegDataSample]): Samples with
                ``gt_sem_seg``; only the set of classes in each is used.
            train_cfg (dict): Unused.

        Returns:
            dict[str, Tensor]: ``loss_cls``.
        """
        logits = self.image_logits(inputs)
        targets = image_level_labels(
            self._stack_batch_gt(batch_data_samples),
            self.num_classes,
            self.ignore_index,
        ).to(logits)
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        return dict(loss_cls=self.loss_weight * loss)

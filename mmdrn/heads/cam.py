"""Dense class activation maps and the DRN box rule, in plain PyTorch.

Yu, Koltun and Funkhouser, "Dilated Residual Networks", CVPR 2017
(https://arxiv.org/abs/1705.09914), Section 3 "Localization" and the Object
Localization experiment: remove the global average pooling of a classification
DRN, apply its final 1x1 classifier at every position of the last feature map
(28x28 for a 224x224 input) and take a softmax over classes at every pixel.
For the predicted class ``c`` the box is the tightest box enclosing every
pixel whose argmax class is ``c`` and whose probability of ``c`` exceeds a
threshold ``t``.

Conventions used throughout mmdrn:

* **Coordinates.** Cell ``(i, j)`` of an ``h x w`` map covers the image
  rectangle ``[j * W / w, (j + 1) * W / w) x [i * H / h, (i + 1) * H / h)`` of
  an ``H x W`` image (the footprint of one output-stride cell). A box is
  ``(x1, y1, x2, y2)`` in continuous image coordinates, ``x2``/``y2`` being
  the far cell edges, so a box around the single cell ``(0, 0)`` of a 28x28
  map on a 224x224 image is ``(0, 0, 8, 8)`` and its area is 64 pixels.
* **Threshold.** A pixel passes when its probability is *strictly* greater
  than ``t`` (``prob == t`` is excluded). The paper does not state ``t``;
  :data:`DEFAULT_THRESHOLD` is 0.1, i.e. 100 times the chance level of a
  1000-way softmax, which drops argmax pixels on which the network is barely
  more confident about ``c`` than about anything else.
* **Ties.** The per-pixel argmax is :func:`torch.argmax`: when several classes
  share the top probability the lowest class index wins.
* **No pixel passes.** The result carries ``valid = False`` and the fallback
  box is the whole image ``(0, 0, W, H)``: with no evidence of where the
  object is, the whole image is the box that assumes least, and the flag lets
  a metric report or exclude such images.

Example:
    >>> import torch
    >>> from torch import nn
    >>> feats = torch.randn(2, 512, 28, 28)
    >>> fc = nn.Conv2d(512, 1000, 1)
    >>> probs = cam_probs(dense_logits(feats, fc))
    >>> labels = probs.mean(dim=(2, 3)).argmax(dim=1)
    >>> boxes = cam_boxes(probs, labels, img_size=(224, 224))
    >>> print(probs.shape, boxes.boxes.shape, boxes.valid.shape)
    torch.Size([2, 1000, 28, 28]) torch.Size([2, 4]) torch.Size([2])
"""

from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..utils.validation import check_threshold

__all__ = [
    'DEFAULT_THRESHOLD',
    'CAMBoxes',
    'CAMOutput',
    'dense_logits',
    'cam_probs',
    'cam_boxes',
    'cam_localize',
    'cam_label_map',
    'image_classifier_keys',
    'image_level_labels',
]

DEFAULT_THRESHOLD = 0.1


class CAMBoxes(NamedTuple):
    """Boxes found by the DRN box rule, one per image.

    Attributes:
        boxes (Tensor): ``N x 4`` float boxes ``(x1, y1, x2, y2)`` in image
            coordinates (see the module docstring for the convention).
        valid (Tensor): ``N`` bools; ``False`` where no pixel passed the rule
            and ``boxes`` holds the whole-image fallback.
        labels (Tensor): ``N`` long, the class each box was computed for.
    """

    boxes: Tensor
    valid: Tensor
    labels: Tensor


class CAMOutput(NamedTuple):
    """Everything :func:`cam_localize` computes for a batch.

    Attributes:
        logits (Tensor): ``N x K`` image-level logits (global average pooling
            then the classifier, i.e. the classification output).
        probs (Tensor): ``N x K x h x w`` per-pixel class probabilities.
        boxes (Tensor): ``N x 4`` boxes for ``labels``.
        valid (Tensor): ``N`` bools, see :class:`CAMBoxes`.
        labels (Tensor): ``N`` long, the class the boxes belong to (the
            top-1 prediction unless labels were given).
    """

    logits: Tensor
    probs: Tensor
    boxes: Tensor
    valid: Tensor
    labels: Tensor


def _check_4d(name: str, x: Tensor, layout: str) -> None:
    if x.dim() != 4:
        raise ValueError(
            f'{name} must be a 4-D {layout} tensor, got shape {tuple(x.shape)}'
        )


def _classifier_params(classifier: nn.Module) -> Tuple[Tensor, Optional[Tensor]]:
    """Weight as ``K x C`` and the bias of a 1x1 conv or linear classifier."""
    if isinstance(classifier, nn.Conv2d):
        if classifier.kernel_size != (1, 1) or classifier.groups != 1:
            raise ValueError(
                f'classifier must be a 1x1 Conv2d with groups=1, got '
                f'kernel_size={classifier.kernel_size}, groups={classifier.groups}'
            )
        return classifier.weight.flatten(1), classifier.bias
    if isinstance(classifier, nn.Linear):
        return classifier.weight, classifier.bias
    raise TypeError(
        f'classifier must be an nn.Conv2d (1x1) or nn.Linear, '
        f'got {type(classifier).__name__}'
    )


def dense_logits(feats: Tensor, classifier: nn.Module) -> Tensor:
    """Apply a classifier at every position of a feature map.

    Because the classifier is linear, averaging the result over positions
    gives exactly the logits of global average pooling followed by the same
    classifier (the classification path), up to float rounding.

    Args:
        feats (Tensor): ``N x C x h x w`` final feature map.
        classifier (nn.Conv2d | nn.Linear): The trained classifier, a 1x1
            ``Conv2d(C, K, 1)`` (DRN-B/C/D) or a ``Linear(C, K)`` (DRN-A).

    Returns:
        Tensor: ``N x K x h x w`` class logits per position.
    """
    _check_4d('feats', feats, 'N x C x h x w')
    weight, bias = _classifier_params(classifier)
    if weight.shape[1] != feats.shape[1]:
        raise ValueError(
            f'feats has {feats.shape[1]} channels but the classifier expects '
            f'{weight.shape[1]}'
        )
    logits = torch.einsum('nchw,kc->nkhw', feats, weight)
    if bias is not None:
        logits = logits + bias.view(1, -1, 1, 1)
    return logits


def cam_probs(logits: Tensor) -> Tensor:
    """Per-pixel softmax over classes.

    Args:
        logits (Tensor): ``N x K x h x w`` dense logits.

    Returns:
        Tensor: ``N x K x h x w`` probabilities summing to 1 over ``K``.
    """
    _check_4d('logits', logits, 'N x K x h x w')
    return logits.softmax(dim=1)


def _first_true(mask: Tensor) -> Tensor:
    """Index of the first True along the last dim (0 where there is none)."""
    # argmax returns the first maximal index, so on 0/1 data it is the first 1
    return mask.to(torch.uint8).argmax(dim=-1)


def cam_boxes(
    probs: Tensor,
    labels: Tensor,
    threshold: float = DEFAULT_THRESHOLD,
    img_size: Optional[Union[int, Sequence[int]]] = None,
) -> CAMBoxes:
    """The DRN box rule of the module docstring, batched.

    Several blobs of kept pixels give one box around all of them.

    Args:
        probs (Tensor): ``N x K x h x w`` per-pixel class probabilities.
        labels (Tensor): ``N`` class indices to box: the classifier's top-1
            prediction for the paper's rule, the ground truth for GT-known
            localization.
        threshold (float): ``t`` in ``[0, 1)``; a pixel needs
            ``prob > t``. Default: :data:`DEFAULT_THRESHOLD` (0.1).
        img_size (int | tuple[int, int], optional): Image ``(H, W)`` (or one
            int for a square image) the map covers. Default: None, map
            coordinates (cell units).

    Returns:
        CAMBoxes: ``boxes`` (``N x 4`` float), ``valid`` (``N`` bool) and
        ``labels`` (``N`` long). Invalid images get the whole-image box.
    """
    labels = _check_labels(probs, labels)
    threshold = check_threshold('threshold', threshold)
    n, _, h, w = probs.shape
    img_h, img_w = _image_size(img_size, (h, w))

    label_prob = probs.gather(1, labels.view(n, 1, 1, 1).expand(n, 1, h, w))[:, 0]
    keep = (probs.argmax(dim=1) == labels.view(n, 1, 1)) & (label_prob > threshold)
    rows = keep.any(dim=2)  # N x h: rows holding a kept pixel
    cols = keep.any(dim=1)  # N x w
    valid = rows.any(dim=1)
    y1 = _first_true(rows)
    y2 = h - _first_true(rows.flip(-1))  # exclusive far edge in cells
    x1 = _first_true(cols)
    x2 = w - _first_true(cols.flip(-1))
    cells = torch.stack([x1, y1, x2, y2], dim=1).to(probs.dtype)
    scale = cells.new_tensor([img_w / w, img_h / h, img_w / w, img_h / h])
    fallback = cells.new_tensor([0.0, 0.0, img_w, img_h])
    boxes = torch.where(valid[:, None], cells * scale, fallback)
    return CAMBoxes(boxes=boxes, valid=valid, labels=labels)


def _check_labels(probs: Tensor, labels: Tensor) -> Tensor:
    """``labels`` as ``N`` long class indices of ``probs``, or raise."""
    _check_4d('probs', probs, 'N x K x h x w')
    if not probs.is_floating_point():
        raise TypeError(f'probs must be a floating-point tensor, got {probs.dtype}')
    n, k = probs.shape[:2]
    labels = torch.as_tensor(labels, device=probs.device).long().reshape(-1)
    if labels.numel() != n:
        raise ValueError(f'labels must hold {n} class indices, got {labels.numel()}')
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(
            f'labels must be in [0, {k}), got values in '
            f'[{int(labels.min())}, {int(labels.max())}]'
        )
    return labels


def _image_size(
    img_size: Optional[Union[int, Sequence[int]]], map_size: Tuple[int, int]
) -> Tuple[float, float]:
    if img_size is None:
        return float(map_size[0]), float(map_size[1])
    if isinstance(img_size, int) and not isinstance(img_size, bool):
        img_size = (img_size, img_size)
    try:
        img_h, img_w = (float(v) for v in img_size)
        if img_h > 0 and img_w > 0:
            return img_h, img_w
    except (TypeError, ValueError):
        pass
    raise ValueError(
        f'img_size must be an int or an (H, W) pair of positive numbers, '
        f'got {img_size!r}'
    )


def cam_localize(
    model: nn.Module,
    images: Tensor,
    threshold: float = DEFAULT_THRESHOLD,
    labels: Optional[Tensor] = None,
) -> CAMOutput:
    """Class activation maps and boxes for a timm-style DRN model.

    Works with any model that has ``forward_features(x)`` returning the final
    ``N x C x h x w`` map and a 1x1 conv or linear classifier reachable via
    ``get_classifier()`` (or an ``fc`` attribute), e.g.
    ``timm.create_model('drn_c_26')`` after ``import mmdrn``. The model's mode
    (``eval()``) and gradient mode are the caller's choice.

    Args:
        model (nn.Module): The classification network.
        images (Tensor): ``N x 3 x H x W`` normalised input batch; boxes are in
            its ``H x W`` pixel coordinates.
        threshold (float): Box-rule threshold ``t``.
            Default: :data:`DEFAULT_THRESHOLD` (0.1).
        labels (Tensor, optional): ``N`` classes to box (e.g. ground truth for
            GT-known localization). Default: None, the top-1 prediction.

    Returns:
        CAMOutput: image logits, probability maps, boxes, validity and the
        boxed labels.
    """
    _check_4d('images', images, 'N x 3 x H x W')
    if hasattr(model, 'get_classifier'):
        classifier = model.get_classifier()
    else:
        classifier = getattr(model, 'fc', None)
    if not isinstance(classifier, (nn.Conv2d, nn.Linear)):
        raise TypeError(
            f'model must expose a 1x1 nn.Conv2d or nn.Linear classifier via '
            f'get_classifier() or .fc, got {type(classifier).__name__}'
        )
    logits = dense_logits(model.forward_features(images), classifier)
    probs = cam_probs(logits)
    image_logits = logits.mean(dim=(2, 3))
    if labels is None:
        labels = image_logits.argmax(dim=1)
    boxes = cam_boxes(probs, labels, threshold, img_size=images.shape[-2:])
    return CAMOutput(
        logits=image_logits,
        probs=probs,
        boxes=boxes.boxes,
        valid=boxes.valid,
        labels=boxes.labels,
    )


def cam_label_map(
    probs: Tensor,
    bg_threshold: float,
    size: Optional[Sequence[int]] = None,
    align_corners: bool = False,
) -> Tensor:
    """Weakly-supervised segmentation from class probability maps.

    The maps are upsampled bilinearly to ``size`` (the paper's way of bringing
    the stride-8 output to full resolution); each pixel then takes its argmax
    class ``c`` shifted by one, or background 0 where ``probs[c]`` is not
    greater than ``bg_threshold`` (the same strict rule as the box).

    Args:
        probs (Tensor): ``N x K x h x w`` per-pixel probabilities over the
            ``K`` foreground classes.
        bg_threshold (float): Background threshold in ``[0, 1)``.
        size (tuple[int, int], optional): Output ``(H, W)``. Default: None,
            the map's own size.
        align_corners (bool): Passed to the bilinear interpolation.
            Default: False.

    Returns:
        Tensor: ``N x H x W`` long labels in ``[0, K]``; 0 is background,
        ``c + 1`` is foreground class ``c``.
    """
    _check_4d('probs', probs, 'N x K x h x w')
    bg_threshold = check_threshold('bg_threshold', bg_threshold)
    if size is not None and tuple(size) != tuple(probs.shape[-2:]):
        probs = torch.nn.functional.interpolate(
            probs, size=tuple(size), mode='bilinear', align_corners=align_corners
        )
    best, labels = probs.max(dim=1)
    return torch.where(best > bg_threshold, labels + 1, torch.zeros_like(labels))


def image_classifier_keys(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Rename a DRN state dict (fyu/drn layout) for ``ImageClassifier`` + ``CAMHead``.

    ``fc.weight`` / ``fc.bias`` become ``head.fc.weight`` / ``head.fc.bias``;
    every other key gets the ``backbone.`` prefix. Convert other layouts
    (pytorchcv, DRNSeg) first with :func:`mmdrn.backbones.convert_state_dict`.

    Args:
        state_dict (Mapping[str, Tensor]): Weights with fyu/drn keys, e.g. a
            timm ``drn_*`` model's ``state_dict()``.

    Returns:
        dict[str, Tensor]: The same tensors under mmpretrain's keys.
    """
    return {
        ('head.' if key.startswith('fc.') else 'backbone.') + key: value
        for key, value in state_dict.items()
    }


def image_level_labels(masks: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """Multi-hot foreground class presence of each segmentation mask.

    Args:
        masks (Tensor): ``N x 1 x H x W`` (or ``N x H x W``) integer labels.
        num_classes (int): Classes including background 0.
        ignore_index (int): Label that marks unlabelled pixels.

    Returns:
        Tensor: ``N x (num_classes - 1)`` float, 1 where foreground class
        ``c`` (mask value ``c + 1``) occurs.
    """
    flat = masks.reshape(masks.shape[0], -1).long()
    valid = (flat != ignore_index) & (flat > 0) & (flat < num_classes)
    # out-of-range and ignored pixels land in an extra bin that is dropped
    index = torch.where(valid, flat - 1, torch.full_like(flat, num_classes - 1))
    present = torch.zeros(masks.shape[0], num_classes, device=masks.device)
    present.scatter_(1, index, 1.0)
    return present[:, :-1]

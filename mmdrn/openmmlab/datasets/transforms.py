"""Data transforms for the DRN papers' evaluation protocols.

:class:`FixedCrop` takes a crop at the centre or at one of the four corners of
an image. The DRN paper's 10-crop ImageNet evaluation (Yu et al., CVPR 2017,
Sec. 5.1: shorter side 256, the central and four corner 224x224 crops and their
mirror images) is five ``FixedCrop`` s times two flips inside mmcv's
``TestTimeAug``; neither mmcv, mmpretrain nor MMSegmentation has a transform
that crops at a given corner. See ``configs/drn_cls/*-10crop.py``.
"""

from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from ..registry import register_transform

__all__ = ['POSITIONS', 'FixedCrop']

POSITIONS = ('center', 'top_left', 'top_right', 'bottom_left', 'bottom_right')


def _crop_size(crop_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``(w, h)`` from an int or a pair; ValueError for anything else."""

    def positive_int(value: object) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if positive_int(crop_size) and crop_size > 0:
        return int(crop_size), int(crop_size)
    if (
        isinstance(crop_size, (tuple, list))
        and len(crop_size) == 2
        and all(positive_int(v) and v > 0 for v in crop_size)
    ):
        return int(crop_size[0]), int(crop_size[1])
    raise ValueError(
        f'crop_size must be a positive int or a (w, h) pair of positive ints, '
        f'got {crop_size!r}'
    )


@register_transform()
class FixedCrop(BaseTransform):
    """Crop at the centre or at a corner of the image.

    The centre crop has the offsets of mmcv's ``CenterCrop``
    (``round((size - crop) / 2)``), so ``position='center'`` gives the same
    pixels as the 1-crop evaluation pipeline. A crop larger than the image is
    cut to the image along that side, as ``CenterCrop`` does without padding.

    Required Keys:

    - img

    Modified Keys:

    - img
    - img_shape
    - gt_seg_map (optional)
    - gt_bboxes (optional; shifted, then clipped to the crop)

    Args:
        crop_size (int | tuple[int, int]): Crop size, ``(w, h)`` for a pair
            (mmcv's convention), or an int for a square.
        position (str): 'center', 'top_left', 'top_right', 'bottom_left' or
            'bottom_right'. Default: 'center'.

    Example:
        >>> import numpy as np
        >>> crop = FixedCrop(2, position='bottom_right')
        >>> img = np.arange(16, dtype=np.uint8).reshape(4, 4)
        >>> crop({'img': img})['img']
        array([[10, 11],
               [14, 15]], dtype=uint8)
    """

    def __init__(
        self, crop_size: Union[int, Tuple[int, int]], position: str = 'center'
    ) -> None:
        super().__init__()
        self.crop_size = _crop_size(crop_size)
        if position not in POSITIONS:
            raise ValueError(
                f'position must be one of {list(POSITIONS)}, got {position!r}'
            )
        self.position = position

    def _offsets(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """Top-left corner and size ``(x1, y1, w, h)`` of the crop."""
        crop_w = min(self.crop_size[0], width)
        crop_h = min(self.crop_size[1], height)
        if self.position == 'center':
            x1 = int(round((width - crop_w) / 2))
            y1 = int(round((height - crop_h) / 2))
        else:
            vertical, horizontal = self.position.split('_')
            x1 = 0 if horizontal == 'left' else width - crop_w
            y1 = 0 if vertical == 'top' else height - crop_h
        return x1, y1, crop_w, crop_h

    def transform(self, results: dict) -> dict:
        """Crop ``img`` (and ``gt_seg_map``, ``gt_bboxes`` if present).

        Args:
            results (dict): Result dict with at least ``img`` (H x W [x C]).

        Returns:
            dict: The same dict, cropped.
        """
        img = results['img']
        x1, y1, crop_w, crop_h = self._offsets(*img.shape[:2])
        window = (slice(y1, y1 + crop_h), slice(x1, x1 + crop_w))
        # copies: the crop must not alias the (possibly shared) input array
        results['img'] = img[window].copy()
        results['img_shape'] = (crop_h, crop_w)
        if results.get('gt_seg_map') is not None:
            results['gt_seg_map'] = results['gt_seg_map'][window].copy()
        if results.get('gt_bboxes') is not None:
            boxes = results['gt_bboxes']
            boxes = boxes - np.array([x1, y1, x1, y1], dtype=boxes.dtype)
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, crop_w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, crop_h)
            results['gt_bboxes'] = boxes
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(crop_size={self.crop_size}, '
            f'position={self.position!r})'
        )

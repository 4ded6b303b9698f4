"""ImageNet localization ground truth and box scoring, in plain PyTorch.

ImageNet ships one PASCAL-VOC-style XML file per image::

    <annotation>
      <filename>ILSVRC2012_val_00000001</filename>
      <size><width>500</width><height>375</height><depth>3</depth></size>
      <object>
        <name>n01751748</name>
        <bndbox><xmin>111</xmin><ymin>108</ymin><xmax>441</xmax><ymax>193</ymax></bndbox>
      </object>
      ...
    </annotation>

The ``bndbox`` values are inclusive pixel indices (the ILSVRC development kit
counts ``xmax - xmin + 1`` pixels). mmdrn compares boxes in continuous
coordinates with exclusive far edges (see :mod:`mmdrn.heads.cam`), so
:func:`parse_imagenet_xml` turns ``xmin..xmax`` into the edges
``xmin, xmax + 1``: an ``xmin = xmax = 0`` box is one pixel wide.

A prediction localizes an object when its IoU with a ground-truth box of the
right class is *greater than* ``iou_thr`` (0.5 in the paper and in the ImageNet
challenge); IoU exactly 0.5 does not count.
"""

import os
import xml.etree.ElementTree as ET
from typing import List, NamedTuple, Union

import torch
from torch import Tensor
from torchvision import ops

__all__ = ['ImageNetBoxes', 'parse_imagenet_xml', 'box_iou', 'localized']


class ImageNetBoxes(NamedTuple):
    """The objects of one ImageNet annotation file.

    Attributes:
        width (int): Image width in pixels, from ``<size>``.
        height (int): Image height in pixels.
        names (list[str]): Class name (WordNet id) of each object.
        boxes (Tensor): ``M x 4`` float ``(x1, y1, x2, y2)`` edge coordinates
            (``x2 = xmax + 1``, ``y2 = ymax + 1``).
    """

    width: int
    height: int
    names: List[str]
    boxes: Tensor


def _int_field(node: ET.Element, tag: str, path: str) -> int:
    text = node.findtext(tag)
    if text is None:
        raise ValueError(f'{path}: <{node.tag}> has no <{tag}>')
    try:
        # some ImageNet files write coordinates as floats ("12.0")
        return int(round(float(text)))
    except ValueError as err:
        raise ValueError(
            f'{path}: <{tag}> must be a number, got {text.strip()!r}'
        ) from err


def parse_imagenet_xml(path: Union[str, os.PathLike]) -> ImageNetBoxes:
    """Read one ImageNet (PASCAL-VOC-style) bounding-box XML file.

    Args:
        path (str | PathLike): The ``.xml`` file.

    Returns:
        ImageNetBoxes: Image size, object names and edge-coordinate boxes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not well-formed XML or misses a required
            field (``size/width``, ``size/height``, ``object/name``,
            ``bndbox/xmin`` ...), or a box has ``xmax < xmin``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'annotation file not found: {path!r}')
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f'{path}: not well-formed XML ({err})') from err
    size = root.find('size')
    if size is None:
        raise ValueError(f'{path}: <annotation> has no <size>')
    width = _int_field(size, 'width', path)
    height = _int_field(size, 'height', path)
    names, boxes = [], []
    for obj in root.iter('object'):
        name = (obj.findtext('name') or '').strip()
        if not name:
            raise ValueError(f'{path}: an <object> has no <name>')
        bndbox = obj.find('bndbox')
        if bndbox is None:
            raise ValueError(f'{path}: object {name!r} has no <bndbox>')
        xmin, ymin, xmax, ymax = (
            _int_field(bndbox, tag, path) for tag in ('xmin', 'ymin', 'xmax', 'ymax')
        )
        if xmax < xmin or ymax < ymin:
            raise ValueError(
                f'{path}: object {name!r} has an empty box '
                f'(xmin={xmin}, ymin={ymin}, xmax={xmax}, ymax={ymax})'
            )
        names.append(name)
        boxes.append([xmin, ymin, xmax + 1, ymax + 1])
    box_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return ImageNetBoxes(width=width, height=height, names=names, boxes=box_tensor)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of ``(x1, y1, x2, y2)`` boxes in edge coordinates.

    :func:`torchvision.ops.box_iou` in double precision, which keeps
    hand-computable IoUs such as exactly 0.5 exact, and 0 where the union is
    empty (torchvision gives NaN there).

    Args:
        boxes1 (Tensor): ``N x 4`` boxes.
        boxes2 (Tensor): ``M x 4`` boxes.

    Returns:
        Tensor: ``N x M`` IoUs in ``[0, 1]``.
    """
    for name, boxes in (('boxes1', boxes1), ('boxes2', boxes2)):
        if boxes.dim() != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f'{name} must be an N x 4 tensor of (x1, y1, x2, y2), got shape '
                f'{tuple(boxes.shape)}'
            )
    return ops.box_iou(boxes1.double(), boxes2.double()).nan_to_num(0.0)


def localized(pred_box: Tensor, gt_boxes: Tensor, iou_thr: float = 0.5) -> bool:
    """Whether a box localizes any of the given ground-truth boxes.

    Args:
        pred_box (Tensor): One box, shape ``(4,)``.
        gt_boxes (Tensor): ``M x 4`` ground-truth boxes of the relevant class
            (``M`` may be 0, which never localizes).
        iou_thr (float): The IoU must be strictly greater. Default: 0.5.

    Returns:
        bool: ``max IoU > iou_thr``.
    """
    if gt_boxes.numel() == 0:
        return False
    return bool(
        box_iou(pred_box.reshape(1, 4), gt_boxes.reshape(-1, 4)).max() > iou_thr
    )

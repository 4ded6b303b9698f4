"""mmdrn evaluation: ImageNet localization ground truth and metrics."""

from .imagenet_loc import ImageNetBoxes, box_iou, localized, parse_imagenet_xml
from .loc_metric import ImageNetLocMetric

__all__ = [
    'ImageNetBoxes',
    'ImageNetLocMetric',
    'box_iou',
    'localized',
    'parse_imagenet_xml',
]

"""mmdrn evaluation: ImageNet localization ground truth and metrics."""

from .imagenet_loc import ImageNetBoxes, box_iou, localized, parse_imagenet_xml

__all__ = ['ImageNetBoxes', 'box_iou', 'localized', 'parse_imagenet_xml']

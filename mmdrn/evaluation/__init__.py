"""mmdrn evaluation: ImageNet localization ground truth and box matching.

The registered metric ``ImageNetLocMetric`` is in :mod:`mmdrn.openmmlab.evaluation`.
"""

from .imagenet_loc import ImageNetBoxes, box_iou, localized, parse_imagenet_xml

__all__ = ['ImageNetBoxes', 'box_iou', 'localized', 'parse_imagenet_xml']

"""mmdrn heads: dense class activation maps and the DRN box rule.

Plain PyTorch (also used for timm models). The registered heads ``CAMHead``
(mmpretrain) and ``CAMSegHead`` (MMSegmentation) are in
:mod:`mmdrn.openmmlab.heads`.
"""

from .cam import (
    DEFAULT_THRESHOLD,
    CAMBoxes,
    CAMOutput,
    cam_boxes,
    cam_label_map,
    cam_localize,
    cam_probs,
    dense_logits,
    image_classifier_keys,
    image_level_labels,
)

__all__ = [
    'DEFAULT_THRESHOLD',
    'CAMBoxes',
    'CAMOutput',
    'cam_boxes',
    'cam_label_map',
    'cam_localize',
    'cam_probs',
    'dense_logits',
    'image_classifier_keys',
    'image_level_labels',
]

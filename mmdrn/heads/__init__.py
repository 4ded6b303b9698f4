"""mmdrn heads: dense class activation maps, the DRN box rule and their heads.

``cam`` is plain PyTorch (also used for timm models); ``CAMHead``
(mmpretrain), ``CAMSegHead`` and ``ContextHead`` (MMSegmentation) are
registered adapters.
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
)
from .cam_head import CAMHead, image_classifier_keys
from .cam_seg_head import CAMSegHead, image_level_labels
from .context_head import ContextHead

__all__ = [
    'DEFAULT_THRESHOLD',
    'CAMBoxes',
    'CAMHead',
    'CAMOutput',
    'CAMSegHead',
    'ContextHead',
    'cam_boxes',
    'cam_label_map',
    'cam_localize',
    'cam_probs',
    'dense_logits',
    'image_classifier_keys',
    'image_level_labels',
]

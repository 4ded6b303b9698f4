"""mmdrn heads: dense class activation maps and the DRN box rule."""

from .cam import (
    DEFAULT_THRESHOLD,
    CAMBoxes,
    CAMOutput,
    cam_boxes,
    cam_localize,
    cam_probs,
    dense_logits,
)

__all__ = [
    'DEFAULT_THRESHOLD',
    'CAMBoxes',
    'CAMOutput',
    'cam_boxes',
    'cam_localize',
    'cam_probs',
    'dense_logits',
]

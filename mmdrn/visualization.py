"""Pictures of class activation maps: the map over the image and the box.

Core module (torch, numpy, PIL; matplotlib for its colour map).
"""

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

__all__ = ['render_cam']

Colour = Tuple[int, int, int]


def _dashed_rectangle(
    draw: ImageDraw.ImageDraw, corners: Sequence[float], colour: Colour, width: int
) -> None:
    x1, y1, x2, y2 = corners
    dash = 4 * width
    for start in np.arange(x1, x2, 2 * dash):
        end = min(start + dash, x2)
        draw.line([(start, y1), (end, y1)], fill=colour, width=width)
        draw.line([(start, y2), (end, y2)], fill=colour, width=width)
    for start in np.arange(y1, y2, 2 * dash):
        end = min(start + dash, y2)
        draw.line([(x1, start), (x1, end)], fill=colour, width=width)
        draw.line([(x2, start), (x2, end)], fill=colour, width=width)


def render_cam(
    image: Image.Image, prob_map: torch.Tensor, box: Sequence[float], valid: bool
) -> Image.Image:
    """Overlay a probability map on the image and draw the box.

    The map is resized bilinearly to the image and coloured with matplotlib's
    ``jet``, scaled to the map's own maximum so that weak maps stay visible,
    then blended 50/50 with the image. A valid box is drawn solid green; the
    whole-image fallback box (no pixel passed the threshold) dashed red. The
    line width is 1% of the shorter side, at least 2 pixels.

    Args:
        image (PIL.Image.Image): RGB image.
        prob_map (Tensor): ``h x w`` probabilities.
        box (Sequence[float]): ``(x1, y1, x2, y2)`` edge coordinates in image
            pixels (``x2``/``y2`` exclusive).
        valid (bool): Whether the box came from the rule (else the fallback).

    Returns:
        PIL.Image.Image: A new RGB image.
    """
    from matplotlib import colormaps

    width, height = image.size
    heat = F.interpolate(
        prob_map[None, None].float(),
        size=(height, width),
        mode='bilinear',
        align_corners=False,
    )[0, 0]
    heat = (heat / heat.max().clamp(min=1e-12)).clamp(0, 1).numpy()
    colours = (colormaps['jet'](heat)[..., :3] * 255).astype(np.uint8)
    blended = Image.blend(image, Image.fromarray(colours), alpha=0.5)
    draw = ImageDraw.Draw(blended)
    line = max(2, round(min(width, height) / 100))
    x1, y1, x2, y2 = box
    # PIL rectangles include their far edge; box edges are exclusive
    corners = [x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)]
    if valid:
        draw.rectangle(corners, outline=(0, 255, 0), width=line)
    else:
        _dashed_rectangle(draw, corners, (255, 0, 0), line)
    return blended

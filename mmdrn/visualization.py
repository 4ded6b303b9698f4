"""Pictures: a class activation map over its image (:func:`render_cam`), label
maps (:func:`colorize`), grids of pictures (:func:`tile`) and scores with their
spread as bars (:func:`bar_chart`).

Core module (torch, numpy, PIL; matplotlib for colour maps and figures).
"""

import textwrap
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

__all__ = ['render_cam', 'colorize', 'tile', 'bar_chart']


def _dashed_rectangle(
    draw: ImageDraw.ImageDraw,
    corners: Sequence[float],
    colour: Tuple[int, ...],
    width: int,
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


def colorize(
    label_map: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255
) -> np.ndarray:
    """RGB uint8 picture of a label map: class ``i`` in ``palette[i]``,
    ``ignore_index`` and labels without a colour black."""
    colours = np.zeros((256, 3), np.uint8)
    colours[: len(palette)] = np.asarray(palette, np.uint8)
    colours[ignore_index] = 0
    return colours[np.asarray(label_map, np.uint8)]


def tile(
    rows: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str],
    out_file: str,
    title: Optional[str] = None,
    legend: Optional[Dict[str, Sequence[int]]] = None,
) -> str:
    """Draw pictures in a grid, e.g. one row per scene, and save it as PNG.

    ``(H, W, 3)`` arrays are drawn as RGB, ``(H, W)`` ones (activation maps)
    with matplotlib's ``magma``, each scaled to its own range; nothing is
    smoothed, so a grid pattern stays visible.

    Args:
        rows (Sequence[Sequence[np.ndarray]]): The pictures, row by row.
        titles (Sequence[str]): One per column, above the first row.
        out_file (str): PNG to write.
        title (str, optional): Figure title. Default: None.
        legend (dict[str, Sequence[int]], optional): Name -> RGB colour,
            drawn below the grid. Default: None.

    Returns:
        str: ``out_file``.
    """
    from matplotlib.figure import Figure  # no pyplot: the backend stays as it was
    from matplotlib.patches import Patch

    if any(len(row) != len(titles) for row in rows):
        lengths = [len(row) for row in rows]
        raise ValueError(f'rows need {len(titles)} pictures (titles), got {lengths}')
    fig = Figure(figsize=(len(titles) * 1.6, len(rows) * 1.6 + 0.4))
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for ax, picture in zip(axes.flat, (p for row in rows for p in row)):
        ax.imshow(picture, cmap='magma', interpolation='nearest')
        ax.set_axis_off()
    for ax, text in zip(axes[0], titles):
        lines = [line for part in text.split('\n') for line in textwrap.wrap(part, 16)]
        ax.set_title('\n'.join(lines), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    if legend:
        handles = [Patch(color=np.asarray(c) / 255, label=n) for n, c in legend.items()]
        fig.legend(handles=handles, loc='lower center', ncol=len(legend), fontsize=7)
    fig.tight_layout(rect=(0, 0.05 if legend else 0, 1, 1))
    fig.savefig(out_file, dpi=120)
    return out_file


def bar_chart(
    groups: Sequence[str],
    bars: Dict[str, Tuple[Sequence[float], Sequence[Optional[float]]]],
    out_file: str,
    title: str = '',
    ylabel: str = 'IoU (%)',
) -> str:
    """Grouped bars with error bars, e.g. per-class IoU of several models.

    Args:
        groups (Sequence[str]): The groups along x, e.g. the classes.
        bars (dict): Name -> ``(means, spreads)``, one of each per group; a
            spread of None or NaN draws no error bar.
        out_file (str): PNG to write.
        title (str): Figure title. Default: ''.
        ylabel (str): Label of the y axis, from 0 to 100. Default: 'IoU (%)'.

    Returns:
        str: ``out_file``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(8, 1.3 * len(groups)), 4.2))
    ax, x, width = fig.subplots(), np.arange(len(groups)), 0.8 / len(bars)
    for index, (name, (means, spreads)) in enumerate(bars.items()):
        if len(means) != len(groups) or len(spreads) != len(groups):
            raise ValueError(f'{name!r} needs one mean and spread per group')
        errors = np.nan_to_num(np.array(spreads, dtype=float))
        offset = (index - (len(bars) - 1) / 2) * width
        yerr = errors if errors.any() else None  # no caps without a spread
        ax.bar(x + offset, means, width, yerr=yerr, capsize=2, label=name)
    ax.set_xticks(x, groups)
    ax.set(ylabel=ylabel, ylim=(0, 100))
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(bars), 3))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    return out_file

"""The comparison's figures, drawn with matplotlib's Agg backend (no display).

* :func:`plot_scores`: per-class IoU and mIoU of every model as grouped bars,
  with the spread over seeds as error bars;
* :func:`plot_predictions`: the same validation scenes, one row each: image,
  ground truth, one column per model's prediction;
* :func:`plot_activation_maps`: the same scenes, one row each: image, then
  channel-mean activation maps of each model's chosen levels.
"""

import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['plot_scores', 'plot_predictions', 'plot_activation_maps']


def _pyplot():
    import matplotlib

    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_scores(
    labels: Sequence[str],
    classes: Sequence[str],
    means: np.ndarray,
    stds: np.ndarray,
    out_file: str,
    title: str = '',
) -> str:
    """Grouped bars: for each class (and mIoU), one bar per model.

    Args:
        labels (Sequence[str]): Model names (legend).
        classes (Sequence[str]): Group names, e.g. the classes and ``'mIoU'``.
        means (np.ndarray): ``(models, groups)`` IoU in percent.
        stds (np.ndarray): Same shape; the spread over seeds (NaN: one seed,
            no error bar).
        out_file (str): PNG to write.
        title (str): Figure title. Default: ''.

    Returns:
        str: ``out_file``.
    """
    plt = _pyplot()
    means, stds = np.asarray(means, float), np.asarray(stds, float)
    expected = (len(labels), len(classes))
    if means.shape != expected or stds.shape != expected:
        raise ValueError(
            f'means and stds must have shape (models, groups) = {expected}, '
            f'got {means.shape} and {stds.shape}'
        )
    width = 0.8 / len(labels)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(classes)), 4.2))
    for index, label in enumerate(labels):
        err = np.where(np.isnan(stds[index]), 0.0, stds[index])
        ax.bar(
            x + (index - (len(labels) - 1) / 2) * width,
            means[index],
            width,
            yerr=err if np.any(err > 0) else None,
            capsize=2,
            label=label,
        )
    ax.set_xticks(x, classes)
    ax.set_ylabel('IoU (%)')
    ax.set_ylim(0, 100)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(labels), 3))
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file


def _wrap(title: str) -> str:
    """Break long column titles so that they fit their column."""
    return textwrap.fill(title, 16)


def _grid(plt, rows: int, cols: int, cell: float = 1.6):
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * cell, rows * cell + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def plot_predictions(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    predictions: Dict[str, Sequence[np.ndarray]],
    palette: Sequence[Sequence[int]],
    classes: Sequence[str],
    out_file: str,
) -> str:
    """One row per scene: image, ground truth, each model's prediction.

    Args:
        images (Sequence[np.ndarray]): ``(H, W, 3)`` RGB uint8 images.
        truths (Sequence[np.ndarray]): ``(H, W)`` label maps (255: ignored).
        predictions (dict[str, Sequence[np.ndarray]]): Model name -> label
            maps of the same scenes, in the same order.
        palette (Sequence[Sequence[int]]): RGB colour of each class.
        classes (Sequence[str]): Class names (legend).
        out_file (str): PNG to write.

    Returns:
        str: ``out_file``.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    for name, maps in predictions.items():
        if len(maps) != len(images):
            raise ValueError(
                f'{name!r} has {len(maps)} predictions for {len(images)} images'
            )
    colours = np.zeros((256, 3), np.uint8)
    colours[: len(palette)] = np.asarray(palette, np.uint8)
    colours[255] = 0  # ignored pixels: black
    titles = ['image', 'ground truth', *(_wrap(name) for name in predictions)]
    fig, axes = _grid(plt, len(images), len(titles))
    for row, (image, truth) in enumerate(zip(images, truths)):
        tiles = [image, colours[truth]]
        tiles += [colours[maps[row]] for maps in predictions.values()]
        for col, tile in enumerate(tiles):
            axes[row, col].imshow(tile, interpolation='nearest')
    for col, title in enumerate(titles):
        axes[0, col].set_title(title, fontsize=7)
    handles = [
        Patch(color=np.asarray(c) / 255.0, label=n) for n, c in zip(classes, palette)
    ]
    fig.legend(handles=handles, loc='lower center', ncol=len(classes), fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file


def plot_activation_maps(
    images: Sequence[np.ndarray],
    maps: Dict[str, Sequence[List[Tuple[str, np.ndarray]]]],
    out_file: str,
    title: Optional[str] = None,
) -> str:
    """One row per scene: the image, then every model's activation maps.

    Each map is scaled to its own range (the maps of different levels have
    different magnitudes) and drawn without smoothing, so a grid pattern
    stays visible.

    Args:
        images (Sequence[np.ndarray]): ``(H, W, 3)`` RGB uint8 images.
        maps (dict): Model name -> per image, the ``(level name, map)``
            list of :func:`~.activation_maps.activation_maps`.
        out_file (str): PNG to write.
        title (str, optional): Figure title. Default: None.

    Returns:
        str: ``out_file``.
    """
    plt = _pyplot()
    for name, per_image in maps.items():
        if len(per_image) != len(images):
            raise ValueError(
                f'{name!r} has maps for {len(per_image)} of {len(images)} images'
            )
    titles = ['image']
    for name, per_image in maps.items():
        titles += [f'{_wrap(name)}\n{level}' for level, _ in per_image[0]]
    fig, axes = _grid(plt, len(images), len(titles))
    for row, image in enumerate(images):
        axes[row, 0].imshow(image, interpolation='nearest')
        col = 1
        for per_image in maps.values():
            for _, activation in per_image[row]:
                axes[row, col].imshow(activation, cmap='magma', interpolation='nearest')
                col += 1
    for col, text in enumerate(titles):
        axes[0, col].set_title(text, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file

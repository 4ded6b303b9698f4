"""MMSegmentation dataset of the embedded demo's procedurally drawn scenes."""

from typing import Any, Optional, Union

from mmseg.datasets import BaseSegDataset

from ...datasets.demo_scenes import CLASSES, PALETTE, generate_demo_scenes
from ..registry import register_dataset

__all__ = ['DRNDemoDataset']


@register_dataset('mmseg')
class DRNDemoDataset(BaseSegDataset):
    """Street-like scenes drawn by :mod:`mmdrn.datasets.demo_scenes`.

    Seven classes: ``sky``, ``ground``, ``building``, ``vehicle``, ``pole``,
    ``wire``, ``sign``; labels are stored as class indices (no reduced zero
    label), images and labels as PNG in the usual MMSeg layout
    (``img_dir/{split}``, ``ann_dir/{split}``).

    Args:
        generate (bool | dict, optional): Write the data to ``data_root``
            first if it is not there (deterministic, takes seconds): ``True``
            for the default scenes, or a dict of arguments of
            :func:`~mmdrn.datasets.demo_scenes.generate_demo_scenes` other
            than ``root``. Default: None (the data must exist).
        **kwargs: Arguments of :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``data_prefix``, ``pipeline``...).

    Example:
        >>> dataset = DRNDemoDataset(
        ...     data_root='data/drn_demo', generate=True,
        ...     data_prefix=dict(img_path='img_dir/val',
        ...                      seg_map_path='ann_dir/val'))
        >>> len(dataset), dataset.metainfo['classes'][:3]
        (100, ('sky', 'ground', 'building'))
    """

    METAINFO = dict(classes=CLASSES, palette=[list(c) for c in PALETTE])

    def __init__(
        self, generate: Optional[Union[bool, dict]] = None, **kwargs: Any
    ) -> None:
        if generate:
            if not kwargs.get('data_root'):
                raise ValueError(f'generate={generate!r} needs a data_root to write to')
            if not isinstance(generate, dict):
                generate = {}
            generate_demo_scenes(kwargs['data_root'], **generate)
        kwargs.setdefault('img_suffix', '.png')
        kwargs.setdefault('seg_map_suffix', '.png')
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(**kwargs)

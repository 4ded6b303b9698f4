"""Data checks: a broken sample names its file and dataset index.

One unreadable file among thousands otherwise stops training deep inside a
dataloader worker with no file name; a label map of another size than its
image, or with values that are no class, trains without complaint and skews
the loss and mIoU. docs/reliability.md (section 7) has the guarantee, the
messages and the ``data_checks`` settings of :func:`add_data_checks`.
"""

import copy
import logging
import os
from typing import Any, Dict, Optional, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DATASETS

from ...utils.validation import check_int
from ..registry import register_dataset, register_transform

__all__ = [
    'BadSampleError',
    'CheckSegLabels',
    'CheckedDataset',
    'add_data_checks',
]

# Dataset wrappers of mmengine whose children are wrapped instead.
_WRAPPERS = {
    'ConcatDataset': 'datasets',
    'RepeatDataset': 'dataset',
    'ClassBalancedDataset': 'dataset',
}
_FILE_KEYS = ('img_path', 'seg_map_path')
DATA_CHECKS_KEYS = ('enabled', 'check_labels', 'skip_unreadable')


class BadSampleError(ValueError):
    """A dataset sample could not be loaded or failed a check."""


@register_transform()
class CheckSegLabels(BaseTransform):
    """Refuse a label map that does not fit its image or the classes.

    Cheap: a ``min``/``max`` over the map; the offending values are only
    listed when there are some.

    Required Keys:

    - gt_seg_map (optional: without it nothing is checked)
    - img (optional: without it the size is not checked)
    - seg_map_path, img_path (optional, named in the message)

    Args:
        num_classes (int): Valid labels are ``0 .. num_classes - 1``.
        ignore_index (int): The label of pixels without a class. Default: 255.

    Raises:
        BadSampleError: From :meth:`transform`, naming the label file.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes = check_int('num_classes', num_classes)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f'ignore_index must be an int, got {ignore_index!r}')
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        """Check ``gt_seg_map`` against ``img`` and the classes."""
        seg = results.get('gt_seg_map')
        if seg is None:
            return results
        name = results.get('seg_map_path', 'the label map')
        img = results.get('img')
        if img is not None and tuple(seg.shape[:2]) != tuple(img.shape[:2]):
            raise BadSampleError(
                f'label map {name} is {seg.shape[1]}x{seg.shape[0]} (WxH) but its '
                f'image {results.get("img_path", "")} is '
                f'{img.shape[1]}x{img.shape[0]}; a label map must have the size '
                f'of its image'
            )
        if seg.size == 0 or (seg.min() >= 0 and seg.max() < self.num_classes):
            return results
        values = seg.astype(np.int64)
        bad = (values < 0) | (values >= self.num_classes)
        bad &= values != self.ignore_index
        if bad.any():
            found = np.unique(values[bad])
            shown = ', '.join(str(v) for v in found[:10])
            shown += ', ...' if found.size > 10 else ''
            raise BadSampleError(
                f'label map {name} holds values [{shown}] in {int(bad.sum())} '
                f'pixels; labels must be 0..{self.num_classes - 1} '
                f'({self.num_classes} classes) or the ignore index '
                f'{self.ignore_index}'
            )
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_classes={self.num_classes}, '
            f'ignore_index={self.ignore_index})'
        )


def _file_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read, if a stat says so."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return f'{path} does not exist'
    except OSError as err:
        return f'{path} cannot be accessed ({err.strerror})'
    if size == 0:
        return f'{path} is empty (0 bytes)'
    return None


def _is_loading(transform: Any) -> bool:
    # mmcv's and the codebases' file-reading transforms are all Load*:
    # LoadImageFromFile, LoadAnnotations, LoadBiomedicalImageFromFile...
    return type(transform).__name__.startswith('Load')


def _describe(results: dict, transform: Any, err: Optional[Exception]) -> str:
    """The sample, its files, the cause found on disk and the failing transform."""
    files = {k: results[k] for k in _FILE_KEYS if results.get(k)}
    where = ', '.join(f'{k}={v}' for k, v in files.items())
    # The file the failing transform reads, when its name says which.
    reads = ['seg_map_path'] if 'Annotation' in type(transform).__name__ else None
    candidates = [files[k] for k in reads or files if k in files]
    problems = [p for p in map(_file_problem, candidates) if p]
    what = (
        f'{type(err).__name__}: {err}'
        if err is not None
        else 'it returned None (the file could not be read)'
    )
    if problems:
        cause = '; '.join(problems)
    elif _is_loading(transform):
        cause = f'{" and ".join(candidates)}: cannot be read or decoded'
    else:
        cause = 'a transform failed'
    return (
        f'dataset sample {results.get("sample_idx")} ({where}): {cause} '
        f'[{type(transform).__name__}: {what}]'
    )


class _Guarded:
    """A transform of a :class:`CheckedDataset`'s pipeline whose failure
    raises a :class:`BadSampleError` or, for an unreadable file that may be
    skipped, returns None (the dataset then draws another sample)."""

    def __init__(self, transform: Any, owner: 'CheckedDataset', loading: bool) -> None:
        self.transform = transform
        self.owner = owner
        self.loading = loading

    def __call__(self, results: dict) -> Optional[dict]:
        try:
            out = self.transform(results)
        except BadSampleError as err:
            index = results.get('sample_idx')
            raise BadSampleError(f'dataset sample {index}: {err}') from err
        except Exception as err:
            return self.owner._failed(results, self.transform, err, self.loading)
        if out is None and self.loading:
            return self.owner._failed(results, self.transform, None, True)
        return out

    def __repr__(self) -> str:
        return repr(self.transform)


@register_dataset()
class CheckedDataset:
    """A dataset whose broken samples name their file, index and cause.

    The wrapped dataset's pipeline runs unchanged, each transform guarded: the
    loading transforms (``Load*``, which read the files), then a
    :class:`CheckSegLabels` with the dataset's classes and ignore index (if
    ``check_labels`` and the dataset has classes), then the rest. An error
    of any of them raises :class:`BadSampleError` (docs/reliability.md,
    section 7, shows the messages).

    ``skip_unreadable=True`` replaces a training sample whose files cannot be
    read (an error, or ``None``, from a loading transform) by a random other
    one, through the wrapped dataset's own refetching, and logs a warning
    naming the file, the cause and the count skipped so far in this process.
    Evaluation datasets (``test_mode=True``) never skip: their metrics must
    cover every sample. Failed label checks and errors of later transforms
    are never skipped.

    Args:
        dataset (dict | BaseDataset): The dataset, or its config.
        check_labels (bool): Check label maps (:class:`CheckSegLabels`).
            Default: True.
        skip_unreadable (bool): Skip unreadable training samples (logged).
            Default: False.
        max_refetch (int): How many replacement samples to try in a row
            before giving up. Default: 1000 (mmengine's).
        lazy_init (bool): Defer :meth:`full_init`. Default: False.
        **dataset_options: Fields of the wrapped dataset's config, so that
            ``--cfg-options train_dataloader.dataset.data_root=...`` works as
            on an unwrapped dataset; only with ``dataset`` given as a config.

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='CheckedDataset', skip_unreadable=True,
        ...     dataset=dict(type='CityscapesDataset', ...)))
    """

    def __init__(
        self,
        dataset: Union[dict, BaseDataset],
        check_labels: bool = True,
        skip_unreadable: bool = False,
        max_refetch: int = 1000,
        lazy_init: bool = False,
        **dataset_options: Any,
    ) -> None:
        for name, value in (
            ('check_labels', check_labels),
            ('skip_unreadable', skip_unreadable),
        ):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be True or False, got {value!r}')
        self.max_refetch = check_int('max_refetch', max_refetch, minimum=0)
        if isinstance(dataset, dict):
            dataset = DATASETS.build({**dataset, **dataset_options})
        elif dataset_options:
            raise TypeError(
                f'CheckedDataset got {sorted(dataset_options)}, which only go to a '
                f'dataset given as a config, not to a built '
                f'{type(dataset).__name__}'
            )
        if not isinstance(dataset, BaseDataset):
            raise TypeError(
                f'CheckedDataset wraps an mmengine BaseDataset (an MMSeg/mmpretrain '
                f'dataset); got {type(dataset).__name__}'
            )
        self.dataset = dataset
        self.check_labels = check_labels
        self.skip_unreadable = skip_unreadable
        self.skipped = 0
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        """Initialise the wrapped dataset and guard its pipeline."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        self.dataset.max_refetch = self.max_refetch
        transforms = list(self.dataset.pipeline.transforms)
        last_load = max(
            (i for i, t in enumerate(transforms) if _is_loading(t)), default=-1
        )
        classes = self.dataset.metainfo.get('classes') or ()
        if self.check_labels and classes:
            check = CheckSegLabels(
                len(classes), getattr(self.dataset, 'ignore_index', 255)
            )
            transforms.insert(last_load + 1, check)
        self.dataset.pipeline.transforms = [
            _Guarded(t, self, loading=i <= last_load) for i, t in enumerate(transforms)
        ]
        self._fully_initialized = True

    def _failed(
        self, results: dict, transform: Any, err: Optional[Exception], loading: bool
    ) -> None:
        """Raise the error of a sample, or log its skip (then return None)."""
        message = _describe(results, transform, err)
        if not loading or not self.skip_unreadable or self.dataset.test_mode:
            raise BadSampleError(message) from err
        self.skipped += 1
        print_log(
            f'skipped unreadable {message}; {self.skipped} sample(s) skipped '
            f'so far by process {os.getpid()}',
            'current',
            logging.WARNING,
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> Any:
        if not self._fully_initialized:
            self.full_init()
        return self.dataset[idx]

    def __getattr__(self, name: str) -> Any:
        # metainfo, get_data_info, ignore_index... of the wrapped dataset. The
        # guard keeps copy/pickle (which look up dunders before __init__ ran)
        # from recursing.
        if name.startswith('_') or name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}({type(self.dataset).__name__}, '
            f'check_labels={self.check_labels}, '
            f'skip_unreadable={self.skip_unreadable})'
        )


def _wrap(dataset: Any, options: Dict[str, bool]) -> Any:
    if not isinstance(dataset, dict):
        return dataset
    kind = dataset.get('type')
    if kind in ('CheckedDataset', CheckedDataset):
        return dataset
    if kind in _WRAPPERS:
        key = _WRAPPERS[kind]
        dataset = copy.copy(dataset)
        inner = dataset[key]
        if isinstance(inner, (list, tuple)):
            dataset[key] = [_wrap(d, options) for d in inner]
        else:
            dataset[key] = _wrap(inner, options)
        return dataset
    return dict(type='CheckedDataset', dataset=dataset, **options)


def add_data_checks(cfg: Config) -> bool:
    """Wrap the datasets of ``cfg``'s dataloaders in :class:`CheckedDataset`.

    The options come from ``cfg.data_checks`` (a dict, all optional):
    ``enabled`` (default True), ``check_labels`` (default True) and
    ``skip_unreadable`` (default False); e.g.
    ``--cfg-options data_checks.skip_unreadable=True``. Datasets the config
    already wraps are left alone; mmengine's Concat/Repeat/ClassBalanced
    wrappers get their children wrapped.

    Args:
        cfg (Config): The config, changed in place.

    Returns:
        bool: Whether the datasets were wrapped (``enabled``).

    Raises:
        ValueError: ``data_checks`` has an unknown key.
        TypeError: A value is not a bool.
    """
    options = dict(cfg.get('data_checks') or {})
    unknown = sorted(set(options) - set(DATA_CHECKS_KEYS))
    if unknown:
        raise ValueError(
            f'data_checks has unknown keys {unknown}; allowed: {list(DATA_CHECKS_KEYS)}'
        )
    for key, value in options.items():
        if not isinstance(value, bool):
            raise TypeError(f'data_checks.{key} must be True or False, got {value!r}')
    if not options.pop('enabled', True):
        return False
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and loader.get('dataset') is not None:
            loader['dataset'] = _wrap(loader['dataset'], options)
    return True

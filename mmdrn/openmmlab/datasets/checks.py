"""Data checks: a broken sample names its file and dataset index.

One unreadable file among thousands otherwise stops training deep inside a
dataloader worker with a message about ``NoneType`` or a ``BytesIO`` object
and no file name; a label map of another size than its image, or with values
that are no class, trains without complaint and skews the loss and mIoU.

* :class:`CheckedDataset` wraps any MMSegmentation/mmpretrain dataset. It
  runs the dataset's own pipeline, and an error of a transform becomes a
  :class:`BadSampleError` naming the dataset index, the files and the cause
  (missing, empty, undecodable). With ``skip_unreadable=True`` a training
  sample whose files cannot be read is replaced by another one, and each skip
  is logged with the file, the cause and the number skipped so far.
* :class:`CheckSegLabels` (inserted by :class:`CheckedDataset` right after
  the loading transforms) refuses a label map whose size differs from its
  image's, or that holds values outside ``[0, num_classes)`` other than the
  ignore index.
* :func:`check_class_weights` compares each decode head's loss
  ``class_weight`` with its number of classes.
* :func:`add_data_checks` wraps the datasets of a config's dataloaders;
  ``tools/train.py`` calls it, and the config field ``data_checks`` sets it:
  ``data_checks = dict(check_labels=True, skip_unreadable=False)`` (the
  defaults), or ``dict(enabled=False)`` to leave the datasets as they are.
"""

import copy
import logging
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DATASETS

from ..registry import register_dataset, register_transform

__all__ = [
    'BadSampleError',
    'CheckSegLabels',
    'CheckedDataset',
    'add_data_checks',
    'check_class_weights',
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


def _nonnegative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an int >= 0, got {value!r}')
    if value < 0:
        raise ValueError(f'{name} must be an int >= 0, got {value}')
    return int(value)


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
        self.num_classes = _nonnegative_int('num_classes', num_classes)
        if self.num_classes == 0:
            raise ValueError('num_classes must be >= 1, got 0')
        if isinstance(ignore_index, bool) or not isinstance(
            ignore_index, (int, np.integer)
        ):
            raise TypeError(f'ignore_index must be an int, got {ignore_index!r}')
        self.ignore_index = int(ignore_index)

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


@register_dataset()
class CheckedDataset:
    """A dataset whose broken samples name their file, index and cause.

    The wrapped dataset's pipeline runs unchanged, in two stages: the
    loading transforms (``Load*``, which read the files), then a
    :class:`CheckSegLabels` with the dataset's classes and ignore index (if
    ``check_labels`` and the dataset has classes), then the rest. An error
    in either stage raises :class:`BadSampleError`, e.g.::

        BadSampleError: dataset sample 3 (img_path=data/img/a.png,
        seg_map_path=data/ann/a.png): data/ann/a.png is empty (0 bytes)
        [LoadAnnotations: UnidentifiedImageError: cannot identify image file ...]

    ``skip_unreadable=True`` replaces a training sample whose files cannot be
    read (an error, or ``None``, from a loading transform) by a random other
    one and logs a warning naming the file, the cause and the count skipped
    so far in this process. Evaluation datasets (``test_mode=True``) never
    skip: their metrics must cover every sample. Failed label checks and
    errors of later transforms are never skipped.

    Args:
        dataset (dict | Dataset): The dataset, or its config.
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
        dataset: Union[dict, Any],
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
        self.max_refetch = _nonnegative_int('max_refetch', max_refetch)
        if isinstance(dataset, dict):
            dataset = DATASETS.build({**dataset, **dataset_options})
        elif dataset_options:
            raise TypeError(
                f'CheckedDataset got {sorted(dataset_options)}, which only go to a '
                f'dataset given as a config, not to a built '
                f'{type(dataset).__name__}'
            )
        self.dataset = dataset
        if not hasattr(self.dataset, 'pipeline') or not hasattr(
            self.dataset.pipeline, 'transforms'
        ):
            raise TypeError(
                f'CheckedDataset wraps a dataset with a pipeline of transforms '
                f'(an MMSeg/mmpretrain dataset); got {type(self.dataset).__name__}'
            )
        self.check_labels = check_labels
        self.skip_unreadable = skip_unreadable
        self._metainfo = self.dataset.metainfo
        self.skipped = 0
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's meta information."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Initialise the wrapped dataset and split its pipeline."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        transforms = list(self.dataset.pipeline.transforms)
        last_load = max(
            (i for i, t in enumerate(transforms) if _is_loading(t)), default=-1
        )
        self._loading = transforms[: last_load + 1]
        self._processing = transforms[last_load + 1 :]
        classes = self._metainfo.get('classes') or ()
        if self.check_labels and classes:
            check = CheckSegLabels(
                len(classes), getattr(self.dataset, 'ignore_index', 255)
            )
            self._processing.insert(0, check)
        self._fully_initialized = True

    def get_data_info(self, idx: int) -> dict:
        """The wrapped dataset's annotation of sample ``idx``."""
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # ignore_index, label_map, test_mode... of the wrapped dataset. The
        # guard keeps copy/pickle (which look up dunders before __init__ ran)
        # from recursing.
        if name.startswith('_') or name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _describe(
        self, idx: int, info: dict, transform: Any, err: Optional[Exception]
    ) -> str:
        files = {k: info[k] for k in _FILE_KEYS if info.get(k)}
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
            f'dataset sample {idx} ({where}): {cause} '
            f'[{type(transform).__name__}: {what}]'
        )

    def _run(
        self, transforms: List[Any], results: dict, idx: int, info: dict
    ) -> Tuple[Optional[dict], Any]:
        """Apply ``transforms``; ``(None, transform)`` if one returned None."""
        for transform in transforms:
            try:
                results = transform(results)
            except BadSampleError as err:
                raise BadSampleError(f'dataset sample {idx}: {err}') from err
            except Exception as err:
                raise BadSampleError(self._describe(idx, info, transform, err)) from err
            if results is None:
                return None, transform
        return results, None

    def __getitem__(self, idx: int) -> Any:
        if not self._fully_initialized:
            self.full_init()
        test_mode = bool(getattr(self.dataset, 'test_mode', False))
        for _ in range(self.max_refetch + 1):
            info = self.dataset.get_data_info(idx)
            try:
                results, empty = self._run(self._loading, info, idx, info)
                if results is None:
                    raise BadSampleError(self._describe(idx, info, empty, None))
            except BadSampleError as err:
                if test_mode or not self.skip_unreadable:
                    raise
                self.skipped += 1
                print_log(
                    f'skipped unreadable {err}; {self.skipped} sample(s) skipped '
                    f'so far by process {os.getpid()}',
                    'current',
                    logging.WARNING,
                )
                idx = int(np.random.randint(0, len(self)))
                continue
            results, _ = self._run(self._processing, results, idx, info)
            if results is not None:
                return results
            # A random augmentation gave up on this sample, as mmengine
            # allows: draw another one (never in evaluation).
            if test_mode:
                raise BadSampleError(
                    f'dataset sample {idx}: the test pipeline returned None'
                )
            idx = int(np.random.randint(0, len(self)))
        raise BadSampleError(
            f'no loadable sample in {self.max_refetch + 1} attempts in a row; '
            f'check the dataset files and the pipeline'
        )

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


def check_class_weights(model: torch.nn.Module) -> None:
    """Compare each decode head's loss ``class_weight`` with its classes.

    A class weight list of the wrong length otherwise fails at the first
    loss with torch's "weight tensor should be defined either for all N
    classes or no classes".

    Args:
        model (nn.Module): A built segmentor (any wrapper is looked through).

    Raises:
        ValueError: Naming the head, the loss, both lengths.
    """
    for name, module in model.named_modules():
        losses = getattr(module, 'loss_decode', None)
        num_classes = getattr(module, 'num_classes', None)
        if losses is None or num_classes is None:
            continue
        if not isinstance(losses, torch.nn.ModuleList):
            losses = [losses]
        # A binary head may predict one channel for its two classes.
        expected = {num_classes, getattr(module, 'out_channels', num_classes)}
        for loss in losses:
            weight = getattr(loss, 'class_weight', None)
            if weight is None or len(weight) in expected:
                continue
            raise ValueError(
                f'{name or "model"}: class_weight of '
                f'{type(loss).__name__} has {len(weight)} entries but '
                f'num_classes is {num_classes}; give one weight per class'
            )

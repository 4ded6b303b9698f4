"""Three changes to mmengine's checkpoint handling, each applied only when asked.

``import mmdrn.openmmlab`` applies none of them. What each solves, how to
switch it on and which upstream change makes it unnecessary is in the
README, "What mmdrn changes in your process, and how to choose". A config
names them in :class:`CheckpointCompatHook` (applied in ``before_run``,
undone in ``after_run``); code without a Runner calls the ``enable_*`` /
``disable_*`` functions.
"""

import contextlib
import os
import pickle
from typing import Any, Callable, Iterator, List

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

from ..utils import PathLike, load_file
from ..utils.file_io import atomic_write
from .registry import register_hook

__all__ = [
    'AtomicLocalBackend',
    'CheckpointCompatHook',
    'disable_atomic_checkpoints',
    'disable_safe_loading',
    'enable_atomic_checkpoints',
    'enable_mmengine_checkpoints',
    'enable_safe_loading',
    'history_buffer_method',
    'load_from_local_weights_only',
    'mmengine_checkpoints_allowed',
]


# --- mmengine's own checkpoints under weights_only=True -------------------


def history_buffer_method(owner: Any, name: str) -> Any:
    """The only ``getattr`` a weights-only load may perform.

    A pickled ``HistoryBuffer`` refers to its statistic methods through
    ``getattr(HistoryBuffer, 'mean')``; this function stands in for
    ``builtins.getattr`` in the allow-list and resolves nothing else.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    # ``_statistics_methods`` is private to mmengine (checked: 0.8.3-0.10.7;
    # tests/test_openmmlab/test_compat.py pins it).
    methods = HistoryBuffer._statistics_methods
    if owner is not HistoryBuffer or not isinstance(name, str) or name not in methods:
        raise pickle.UnpicklingError(
            f'refusing getattr({owner!r}, {name!r}) in a weights-only load: only '
            f'HistoryBuffer statistic methods {sorted(methods)} are allowed'
        )
    return methods[name]


def _numpy_globals() -> List[Any]:
    # numpy 2 moved numpy.core to numpy._core; pickles name whichever wrote them.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed: List[Any] = [np.ndarray, np.dtype]
    for path in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed += [
            (multiarray._reconstruct, f'{path}._reconstruct'),
            (multiarray.scalar, f'{path}.scalar'),
        ]
    # Concrete dtype classes (numpy.dtypes.Float64DType, ...) appear in pickles
    # of arrays of those dtypes; they only describe data.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name)
            for name in dir(dtypes)
            if name.endswith('DType') and isinstance(getattr(dtypes, name), type)
        ]
    return allowed


def _allowed_globals() -> List[Any]:
    return [HistoryBuffer, (history_buffer_method, 'builtins.getattr')] + (
        _numpy_globals()
    )


def enable_mmengine_checkpoints() -> None:
    """Let ``weights_only=True`` loads read mmengine's training checkpoints.

    Adds numpy arrays/scalars/dtypes, ``HistoryBuffer`` and
    :func:`history_buffer_method` (under ``builtins.getattr``) to torch's
    allow-list. Idempotent.
    """
    HistoryBuffer()  # registers the default statistic methods on the class
    torch.serialization.add_safe_globals(_allowed_globals())


@contextlib.contextmanager
def mmengine_checkpoints_allowed() -> Iterator[None]:
    """:func:`enable_mmengine_checkpoints` for a block, then as before.

    Used by mmdrn's tools where they read a training checkpoint outside a
    Runner (``--resume`` inspection, strict loading).
    """
    before = list(torch.serialization.get_safe_globals())
    enable_mmengine_checkpoints()
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


# --- safe loading of local files -------------------------------------------


def load_from_local_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine loader for plain paths through :func:`mmdrn.utils.load_file`."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        # mmengine's own loader raises FileNotFoundError; callers rely on it
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_file(filename, map_location=map_location)


def enable_safe_loading() -> None:
    """Make mmengine read local checkpoints with :func:`mmdrn.utils.load_file`.

    Covers ``load_from``, ``resume``, ``load_checkpoint`` and
    ``init_cfg=dict(type='Pretrained')`` with a plain path. Idempotent.
    """
    CheckpointLoader.register_scheme('', load_from_local_weights_only, force=True)


def disable_safe_loading() -> None:
    """Give mmengine's plain-path scheme back to its ``load_from_local``."""
    CheckpointLoader.register_scheme('', load_from_local, force=True)


# --- atomic writes -----------------------------------------------------------


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``.

    Reading, listing and removing are inherited unchanged.
    """

    def put(self, obj: bytes, filepath: PathLike) -> None:
        """Write bytes to ``filepath`` atomically (see :func:`atomic_write`)."""
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: PathLike, encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (see :func:`atomic_write`)."""
        atomic_write(filepath, obj, encoding=encoding)


def enable_atomic_checkpoints() -> None:
    """Register :class:`AtomicLocalBackend` for local paths. Idempotent."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def disable_atomic_checkpoints() -> None:
    """Register mmengine's own ``LocalBackend`` for local paths again."""
    register_backend('local', LocalBackend, force=True, prefixes='')


# --- the hook ------------------------------------------------------------------


@contextlib.contextmanager
def _applied(enable: Callable[[], None], disable: Callable[[], None]) -> Iterator[None]:
    enable()
    try:
        yield
    finally:
        disable()


# name -> a context in which the change holds; the allow-list is restored to
# what it was (entries of others included), the others to mmengine's own.
_CHANGES = {
    'mmengine_checkpoints': mmengine_checkpoints_allowed,
    'safe_loading': lambda: _applied(enable_safe_loading, disable_safe_loading),
    'atomic_checkpoints': lambda: _applied(
        enable_atomic_checkpoints, disable_atomic_checkpoints
    ),
}


@register_hook()
class CheckpointCompatHook(Hook):
    """Apply the changes of this module for the length of a run.

    Each change is named and off unless switched on; the hook applies them
    in ``before_run`` and undoes them in ``after_run``.

    Args:
        mmengine_checkpoints (bool): :func:`enable_mmengine_checkpoints`.
            Default: False.
        safe_loading (bool): :func:`enable_safe_loading`. Default: False.
        atomic_checkpoints (bool): :func:`enable_atomic_checkpoints`.
            Default: False.

    Example:
        >>> custom_hooks = [dict(type='CheckpointCompatHook',
        ...                      mmengine_checkpoints=True, safe_loading=True,
        ...                      atomic_checkpoints=True)]
    """

    # before_run of every other hook sees the changes
    priority = 'VERY_HIGH'

    def __init__(
        self,
        mmengine_checkpoints: bool = False,
        safe_loading: bool = False,
        atomic_checkpoints: bool = False,
    ) -> None:
        chosen = dict(
            mmengine_checkpoints=mmengine_checkpoints,
            safe_loading=safe_loading,
            atomic_checkpoints=atomic_checkpoints,
        )
        for name, value in chosen.items():
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be True or False, got {value!r}')
        if not any(chosen.values()):
            raise ValueError(
                f'CheckpointCompatHook with nothing switched on; set one or more '
                f'of {list(_CHANGES)} to True'
            )
        self.changes = [name for name, value in chosen.items() if value]

    def before_run(self, runner: Any) -> None:
        """Apply the chosen changes."""
        self._applied = contextlib.ExitStack()
        for name in self.changes:
            self._applied.enter_context(_CHANGES[name]())

    def after_run(self, runner: Any) -> None:
        """Undo them: the allow-list as before the run, mmengine's own loader
        and backend for local paths."""
        self._applied.close()

"""mmengine's checkpoint loading made safe and explicit, and how to undo it.

Two process-wide changes, applied by ``import mmdrn.openmmlab`` unless
switched off (see :mod:`mmdrn.openmmlab`), each with a function to undo it:

* :func:`allow_mmengine_checkpoints` / :func:`disallow_mmengine_checkpoints`:
  the weights-only allow-list below;
* :func:`register_mmengine_loader` / :func:`unregister_mmengine_loader`:
  mmengine's loader for local paths goes through
  :func:`mmdrn.utils.load_file`.

Resuming from mmengine's own checkpoints on torch >= 2.6, safely:

torch 2.6 made ``torch.load`` default to ``weights_only=True``; mmengine 0.10.7
still calls it without the argument, and its checkpoints hold a few objects
that are not plain tensors: numpy arrays/scalars (log history, RNG-free
runtime info) and ``HistoryBuffer``, whose pickled state refers to its own
statistic methods through ``getattr(HistoryBuffer, 'mean')``.

Instead of switching safety off, :func:`allow_mmengine_checkpoints` adds
exactly these globals to torch's allow-list. ``getattr`` is *not* allowed as
such: it is replaced, under its pickled name, by a function that only returns
the named statistic methods of ``HistoryBuffer`` and refuses anything else.
"""

import os
from typing import Any, Callable, List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from ..utils.checkpoint import load_file

__all__ = [
    'allow_mmengine_checkpoints',
    'disallow_mmengine_checkpoints',
    'history_buffer_method',
    'load_from_local_weights_only',
    'register_mmengine_loader',
    'unregister_mmengine_loader',
]


def history_buffer_method(owner: Any, name: str) -> Any:
    """The only ``getattr`` a weights-only load may perform.

    Args:
        owner: Must be the ``HistoryBuffer`` class.
        name (str): A statistic method registered on ``HistoryBuffer``
            (``'min'``, ``'max'``, ``'current'``, ``'mean'`` or one added via
            ``HistoryBuffer.register_statistics``).

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    import pickle

    methods = HistoryBuffer._statistics_methods
    if owner is not HistoryBuffer or not isinstance(name, str) or name not in methods:
        raise pickle.UnpicklingError(
            f'refusing getattr({owner!r}, {name!r}) in a weights-only load: only '
            f'HistoryBuffer statistic methods {sorted(methods)} are allowed'
        )
    return methods[name]


def _numpy_globals() -> list:
    # numpy 2 moved numpy.core to numpy._core; pickles name whichever wrote them.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed = [np.ndarray, np.dtype]
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
            cls
            for name in dir(dtypes)
            if name.endswith('DType')
            for cls in [getattr(dtypes, name)]
            if isinstance(cls, type)
        ]
    return allowed


def _allowed_globals() -> List[Any]:
    return [HistoryBuffer, (history_buffer_method, 'builtins.getattr')] + (
        _numpy_globals()
    )


def allow_mmengine_checkpoints() -> None:
    """Allow-list the objects mmengine writes into its checkpoints.

    Idempotent; called by ``import mmdrn.openmmlab`` unless
    ``MMDRN_MMENGINE_ALLOWLIST=0``.
    """
    HistoryBuffer()  # registers the default statistic methods on the class
    torch.serialization.add_safe_globals(_allowed_globals())


def disallow_mmengine_checkpoints() -> None:
    """Remove what :func:`allow_mmengine_checkpoints` added to the allow-list.

    Entries added by others stay. Afterwards torch refuses mmengine's
    checkpoints in a weights-only load again.
    """
    ours = _allowed_globals()
    kept = [g for g in torch.serialization.get_safe_globals() if g not in ours]
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(kept)


def load_from_local_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine loader for plain paths (its log calls it "local_weights_only")."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        # mmengine's own loader raises FileNotFoundError; callers may rely on it
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_file(filename, map_location=map_location)


# mmengine's loader for plain paths, kept for unregister_mmengine_loader().
_original_loader: Optional[Callable] = None


def register_mmengine_loader() -> None:
    """Make mmengine load local checkpoint files with :func:`load_file`.

    Replaces mmengine's loader for plain paths (``CheckpointLoader`` scheme
    ``''``), used by ``Runner`` ``load_from`` / ``resume``,
    ``load_checkpoint`` and ``init_cfg=dict(type='Pretrained', ...)``. mmengine
    already calls ``torch.load`` with torch's default ``weights_only=True``;
    this adds :class:`~mmdrn.utils.CheckpointError`'s explanations and makes
    the safe setting independent of torch's default. Idempotent; called by
    ``import mmdrn.openmmlab`` unless ``MMDRN_SAFE_LOAD=0``.
    """
    global _original_loader
    current = CheckpointLoader._schemes.get('')
    if current is not load_from_local_weights_only:
        _original_loader = current
    CheckpointLoader.register_scheme('', load_from_local_weights_only, force=True)


def unregister_mmengine_loader() -> None:
    """Give mmengine its own loader for plain paths back."""
    if CheckpointLoader._schemes.get('') is not load_from_local_weights_only:
        return
    if _original_loader is None:
        del CheckpointLoader._schemes['']
    else:
        CheckpointLoader.register_scheme('', _original_loader, force=True)

"""Let mmengine resume from its own checkpoints on torch >= 2.6, safely.

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

from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = ['allow_mmengine_checkpoints', 'history_buffer_method']


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


def allow_mmengine_checkpoints() -> None:
    """Allow-list the objects mmengine writes into its checkpoints.

    Idempotent; called by ``import mmdrn``.
    """
    HistoryBuffer()  # registers the default statistic methods on the class
    torch.serialization.add_safe_globals(
        [HistoryBuffer, (history_buffer_method, 'builtins.getattr')] + _numpy_globals()
    )

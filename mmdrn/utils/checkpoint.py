"""Checkpoint reading that never runs pickled code.

Every mmdrn code path that opens a checkpoint goes through :func:`load_file`,
which uses ``torch.load(..., weights_only=True)``: tensors, containers and
plain Python values load; anything that would need arbitrary code to unpickle
is refused with a message naming the file.
"""

import os
import pickle
import zipfile
from typing import Any, Union

import torch

__all__ = ['CheckpointError', 'load_file']


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not safe to load."""


def load_file(path: Union[str, os.PathLike], map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with ``weights_only=True`` and explain failures.

    Args:
        path (str | PathLike): Checkpoint file.
        map_location: Passed to :func:`torch.load`. Default: ``'cpu'``.

    Returns:
        The deserialised object (usually a dict of tensors).

    Raises:
        CheckpointError: The file does not exist, is truncated/corrupt, or
            contains objects that are not plain weights.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path!r}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f'refusing to load {path!r}: it holds objects that are not plain '
            f'weights, and mmdrn never unpickles arbitrary code '
            f'(weights_only=True). Details: {err}'
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(
            f'cannot read checkpoint {path!r}: the file is truncated or '
            f'corrupt ({type(err).__name__}: {err})'
        ) from err

"""Checkpoint reading that never runs pickled code.

Every mmdrn code path that opens a checkpoint goes through :func:`load_file`,
which uses ``torch.load(..., weights_only=True)``: tensors, containers and
plain Python values load; anything that would need arbitrary code to unpickle
is refused with a message naming the file and what it tried to call.
:mod:`mmdrn.openmmlab` routes mmengine's own loading of local files
(``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained', ...)``)
through it as well.
"""

import os
import pickle
import re
import zipfile
from typing import Any, Union

import torch

__all__ = ['CheckpointError', 'CheckpointNotFoundError', 'load_file']

# torch's weights-only unpickler names a refused callable as "Unsupported
# global: GLOBAL posix.system was not an allowed global" or "Trying to load
# unsupported GLOBAL os.makedirs whose module os is blocked".
_REFUSED_GLOBAL = re.compile(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)')
# ... and an object it will not build as "Can only build Tensor, ... but got X"
# or "Trying to call reduce for unrecognized function X".
_REFUSED_OBJECT = ('Can only ', 'Trying to call reduce')
# The object that marks an mmengine checkpoint (its message hub's history);
# mmdrn.openmmlab allow-lists it.
_MMENGINE_HISTORY = 'mmengine.logging.history_buffer.HistoryBuffer'


# What torch.load raises for a damaged file: torch's zip reader gives
# OSError (EINVAL) for an archive cut short, and a corrupt pickle stream
# makes the unpickler fail on whichever opcode the damage produced.
_DAMAGED = (
    OSError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
)


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not safe to load."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path names no file (also a ``FileNotFoundError``)."""


def _unpickler_detail(text: str) -> str:
    """The unpickler's own reason, without torch's advice around it."""
    for paragraph in reversed(text.split('\n\n')):
        paragraph = ' '.join(paragraph.split())
        if paragraph and not paragraph.startswith(
            ('Check the documentation', 'Weights only load failed')
        ):
            return paragraph.split('WeightsUnpickler error: ')[-1]
    return text.strip()


def _refusal(path: str, err: Exception) -> CheckpointError:
    """The error for a file the weights-only unpickler would not read."""
    text = str(err)
    detail = _unpickler_detail(text)
    # torch's own message suggests allow-listing the global or turning
    # weights_only off; for a file from a stranger that is the one thing not
    # to do, so it is not passed on.
    found = _REFUSED_GLOBAL.search(text)
    if found is not None and found.group(1) == _MMENGINE_HISTORY:
        return CheckpointError(
            f'cannot read {path!r} yet: it is an mmengine checkpoint (it holds '
            f"{found.group(1)}); allow exactly mmengine's own objects in a "
            f'weights-only load first: mmdrn.openmmlab.compat.'
            f'enable_mmengine_checkpoints(), or in a config custom_hooks=['
            f"dict(type='CheckpointCompatHook', mmengine_checkpoints=True)]"
        )
    if found is not None:
        return CheckpointError(
            f'refusing to load {path!r}: unpickling it would call '
            f'{found.group(1)}, which is code, not weights. mmdrn only loads '
            f'tensors and plain values (torch.load with weights_only=True) and '
            f'never runs code from a checkpoint. If you trust the file, '
            f'export its state dict (tensors only) with the tool that wrote it.'
        )
    if detail.startswith(_REFUSED_OBJECT):
        return CheckpointError(
            f'refusing to load {path!r}: it holds objects that are not plain '
            f'weights ({detail}); mmdrn never runs code from a checkpoint '
            f'(torch.load with weights_only=True).'
        )
    # Unknown opcodes and the like: the bytes are not a torch.save pickle.
    return CheckpointError(
        f'cannot read checkpoint {path!r}: it is not a file written by '
        f'torch.save, or it is corrupt (weights-only unpickler: {detail})'
    )


def load_file(
    path: Union[str, os.PathLike], map_location: Any = 'cpu', mmap: bool = False
) -> Any:
    """Load a checkpoint with ``weights_only=True`` and explain failures.

    Args:
        path (str | PathLike): Checkpoint file.
        map_location: Passed to :func:`torch.load`. Default: ``'cpu'``.
        mmap (bool): Memory-map the tensors instead of reading them (zip
            format only), e.g. to look at a large checkpoint's metadata.
            Default: False.

    Returns:
        The deserialised object (usually a dict of tensors).

    Raises:
        CheckpointNotFoundError: ``path`` is not a file.
        CheckpointError: The file is empty, truncated or
            corrupt, or contains objects that are not plain weights (the
            message names the callable it would have run).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint not found (or not a file): {path!r}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(
            f'cannot read checkpoint {path!r}: the file is empty (an '
            f'interrupted write?)'
        )
    # torch.load reads a '.safetensors' path with the safetensors library
    safetensors = path.endswith('.safetensors')
    with open(path, 'rb') as f:
        head = f.read(16)
    # torch.save writes a zip archive ('PK'), or in its legacy format a
    # pickle, which starts with the PROTO opcode. Other bytes (text, HTML,
    # images) would otherwise meet the unpickler, which fails with whatever
    # its first opcode implies (KeyError, IndexError, ...).
    if not safetensors and not head.startswith((b'PK', pickle.PROTO)):
        raise CheckpointError(
            f'cannot read checkpoint {path!r}: it is not a file written by '
            f'torch.save (it begins with {head!r}; torch.save writes a zip '
            f'archive, or a pickle in its legacy format)'
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise _refusal(path, err) from err
    except Exception as err:
        # the safetensors library has its own error type (SafetensorError)
        if not (safetensors or isinstance(err, _DAMAGED)):
            raise
        raise CheckpointError(
            f'cannot read checkpoint {path!r}: the file is truncated or '
            f'corrupt ({type(err).__name__}: {err})'
        ) from err

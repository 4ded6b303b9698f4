"""Atomic checkpoint writing: a file at its final name is always complete.

mmengine saves a checkpoint by serialising it in memory and handing the bytes
to its local file backend, which opens the destination with ``'wb'`` (that
truncates whatever was there) and writes. A job that dies during the write
(pre-emption, SIGKILL, the OOM killer, a full disk) leaves a truncated
``iter_N.pth``, or an empty file in place of one that loaded before.

:class:`AtomicLocalBackend` writes with :func:`mmdrn.utils.file_io.atomic_write`:
to a temporary file in the destination's directory, flushed and ``fsync``\\ ed,
then renamed over the destination with :func:`os.replace` (atomic on POSIX and
Windows within one file system), and the directory ``fsync``\\ ed so the
rename itself survives a power loss. A crash at any moment leaves the
destination either as it was or completely written; at worst a hidden
``.<name>.<pid>.<random>.tmp`` file remains next to it, which the next
write into that directory by a later process removes
(:func:`mmdrn.utils.file_io.remove_stale_temp_files`).
:func:`enable_atomic_checkpoints` makes it mmengine's backend for local paths,
so ``save_checkpoint``, the ``CheckpointHook`` and everything else that writes
through ``mmengine.fileio`` become atomic.

mmengine's ``CheckpointHook`` writes the small ``last_checkpoint`` pointer
file with a plain ``open``; ``--resume``
(:func:`~mmdrn.openmmlab.engine.resume.find_resumable_checkpoint`) therefore
does not trust it blindly and falls back to the newest complete checkpoint.

Example:
    >>> from mmdrn.openmmlab.engine import enable_atomic_checkpoints
    >>> enable_atomic_checkpoints()  # ``import mmdrn.openmmlab`` does it
"""

import os
from typing import Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio import io as mmengine_io

from ...utils.file_io import atomic_save, atomic_write

__all__ = [
    'AtomicLocalBackend',
    'atomic_save',
    'atomic_write',
    'disable_atomic_checkpoints',
    'enable_atomic_checkpoints',
]

PathLike = Union[str, os.PathLike]


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic :meth:`put` / :meth:`put_text`.

    Reading, listing and removing are inherited unchanged.
    """

    def put(self, obj: bytes, filepath: PathLike) -> None:
        """Write bytes to ``filepath`` atomically (see :func:`atomic_write`).

        Args:
            obj (bytes): Data to be written.
            filepath (str | PathLike): Destination file.
        """
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: PathLike, encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (see :func:`atomic_write`).

        Args:
            obj (str): Text to be written.
            filepath (str | PathLike): Destination file.
            encoding (str): Encoding of the text. Default: ``'utf-8'``.
        """
        atomic_write(filepath, obj, encoding=encoding)


def enable_atomic_checkpoints() -> None:
    """Make :class:`AtomicLocalBackend` mmengine's backend for local paths.

    Registers it under mmengine's backend name ``'local'`` and the empty URI
    prefix (plain paths), replacing ``LocalBackend``, and drops the
    ``LocalBackend`` instances mmengine may have cached, so every later
    ``get_file_backend(path)`` (``save_checkpoint``, ``CheckpointHook``)
    writes atomically. Idempotent.
    """
    _use_local_backend(AtomicLocalBackend)


def disable_atomic_checkpoints() -> None:
    """Give mmengine back its own ``LocalBackend`` for local paths."""
    _use_local_backend(LocalBackend)


def _use_local_backend(backend: type) -> None:
    register_backend('local', backend, force=True, prefixes='')
    # mmengine caches backend instances; drop the local ones of the other kind
    cache = mmengine_io.backend_instances
    for key in [k for k, v in cache.items() if isinstance(v, LocalBackend)]:
        if type(cache[key]) is not backend:
            del cache[key]

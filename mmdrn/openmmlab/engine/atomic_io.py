"""Atomic checkpoint writing: a file at its final name is always complete.

mmengine saves a checkpoint by serialising it in memory and handing the bytes
to its local file backend, which opens the destination with ``'wb'`` (that
truncates whatever was there) and writes. A job that dies during the write
(pre-emption, SIGKILL, the OOM killer, a full disk) leaves a truncated
``iter_N.pth``, or an empty file in place of one that loaded before.

:class:`AtomicLocalBackend` writes to a temporary file in the destination's
directory, flushes and ``fsync``\\ s it, and only then renames it over the
destination with :func:`os.replace` (atomic on POSIX and Windows within one
file system), and ``fsync``\\ s the directory so the rename itself survives a
power loss. A crash at any moment leaves the destination either as it was or
completely written; at worst a hidden ``.<name>.<pid>.<random>.tmp`` file
remains next to it, which the next write into that directory (by any later
process) removes, see :func:`remove_stale_temp_files`.
:func:`enable_atomic_checkpoints` makes it mmengine's
backend for local paths, so ``save_checkpoint``, the ``CheckpointHook`` and
everything else that writes through ``mmengine.fileio`` become atomic.

mmengine's ``CheckpointHook`` writes the small ``last_checkpoint`` pointer
file with a plain ``open``; ``--resume``
(:func:`~mmdrn.openmmlab.engine.resume.find_resumable_checkpoint`) therefore
does not trust it blindly and falls back to the newest complete checkpoint.

Example:
    >>> from mmdrn.openmmlab.engine import enable_atomic_checkpoints
    >>> enable_atomic_checkpoints()  # ``import mmdrn.openmmlab`` does it
"""

import contextlib
import io
import logging
import os
import re
import secrets
from typing import Any, List, Set, Union

import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio import io as mmengine_io
from mmengine.logging import print_log

__all__ = [
    'AtomicLocalBackend',
    'atomic_save',
    'atomic_write',
    'disable_atomic_checkpoints',
    'enable_atomic_checkpoints',
    'remove_stale_temp_files',
]

PathLike = Union[str, os.PathLike]
# os.write may write less than asked; bounded chunks also keep each system
# call (and the memoryview slice) small for multi-GB checkpoints.
_CHUNK = 1 << 24
# atomic_write's temporary files: .<name>.<pid>.<8 hex digits>.tmp
_TEMP_NAME = re.compile(r'\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp')
# directories this process has already cleared of stale temporary files
_SWEPT: Set[str] = set()


def _write_all(fd: int, data: Union[bytes, bytearray, memoryview]) -> None:
    # Every view is released on the way out, also on an exception: a view
    # kept alive by the traceback would pin the caller's buffer.
    with memoryview(data) as raw, raw.cast('B') as view:
        offset = 0
        while offset < view.nbytes:
            with view[offset : offset + _CHUNK] as chunk:
                offset += os.write(fd, chunk)


def _fsync_directory(directory: str) -> None:
    # Makes the rename durable. Not possible on Windows (directories cannot
    # be opened) and refused by some file systems: the data itself is
    # already synced, so only the rename's durability is lost there.
    if os.name != 'posix':
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != 'posix':
        return True  # os.kill would end the process on Windows: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_temp_files(directory: PathLike) -> List[str]:
    """Remove the temporary files of interrupted :func:`atomic_write` calls.

    A process killed during a write (SIGKILL, SIGTERM without a handler, the
    OOM killer) leaves its hidden ``.<name>.<pid>.<random>.tmp`` file. Files
    of that pattern whose process no longer exists are removed; those of
    running processes (a write in progress) are kept.

    Args:
        directory (str | PathLike): Where to look (not recursive).

    Returns:
        list[str]: The removed files.
    """
    directory = os.fspath(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        found = _TEMP_NAME.fullmatch(name)
        if found is None or _process_exists(int(found.group('pid'))):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed.append(path)
    return removed


def _sweep_once(directory: str) -> None:
    """Clear ``directory`` of stale temporary files, once per process."""
    if directory in _SWEPT:
        return
    _SWEPT.add(directory)
    for path in remove_stale_temp_files(directory):
        print_log(
            f'removed {path}, left by an interrupted save', 'current', logging.WARNING
        )


def atomic_write(
    path: PathLike,
    data: Union[bytes, bytearray, memoryview, str],
    encoding: str = 'utf-8',
) -> None:
    """Write ``data`` to ``path`` so that ``path`` never holds a partial file.

    The bytes go to a temporary file in the same directory, which is synced
    and then renamed over ``path``. If anything fails (an exception, or the
    process being killed) ``path`` keeps its previous content (or stays
    absent); on an exception the temporary file is removed. A symbolic link
    at ``path`` is followed: its target is replaced, the link stays.

    Args:
        path (str | PathLike): Destination file; missing parent directories
            are created.
        data (bytes | bytearray | memoryview | str): The content; ``str`` is
            encoded with ``encoding``.
        encoding (str): Encoding of ``str`` data. Default: ``'utf-8'``.

    The first write into a directory in a process also removes what
    interrupted writes of earlier processes left there
    (:func:`remove_stale_temp_files`).

    Raises:
        TypeError: ``data`` is not bytes-like or str.
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f'data must be bytes, bytearray, memoryview or str, got '
            f'{type(data).__name__}'
        )
    path = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # Hidden, unique, and short enough for NAME_MAX even for long names.
    name = os.path.basename(path)[:200]
    tmp = os.path.join(directory, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    # 0o666 like open(): the umask applies, so permissions match a plain write.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    _sweep_once(directory)


def atomic_save(obj: Any, path: PathLike) -> None:
    """:func:`torch.save` ``obj`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        obj (Any): What to save (e.g. a state dict).
        path (str | PathLike): Destination file.
    """
    with io.BytesIO() as buffer:
        torch.save(obj, buffer)
        # A view, not a copy: checkpoints can be gigabytes.
        with buffer.getbuffer() as view:
            atomic_write(path, view)


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

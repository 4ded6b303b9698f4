"""Atomic file writing (plain Python and torch): a file at its final name is
always complete, and an existing file is replaced only when asked.

docs/reliability.md (sections 3 and 6) states the guarantees; mmengine's
checkpoint writing uses these functions through
:class:`mmdrn.openmmlab.compat.AtomicLocalBackend`.
"""

import contextlib
import io
import logging
import os
import re
import secrets
from typing import Any, List, Set, Union

import torch

__all__ = ['atomic_save', 'atomic_write', 'remove_stale_temp_files']

PathLike = Union[str, os.PathLike]
# os.write may write less than asked; bounded chunks also keep each system
# call (and the memoryview slice) small for multi-GB checkpoints.
_CHUNK = 1 << 24
# atomic_write's temporary files: .<name>.<pid>.<8 hex digits>.tmp
_TEMP_NAME = re.compile(r'\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp')
# directories this process has already cleared of stale temporary files
_SWEPT: Set[str] = set()
_logger = logging.getLogger(__name__)


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
        _logger.warning('removed %s, left by an interrupted save', path)


def _exists_error(path: str) -> FileExistsError:
    return FileExistsError(f'{path!r} exists; not replacing it')


def _commit(tmp: str, path: str, overwrite: bool) -> None:
    """Move ``tmp`` to ``path``: with :func:`os.replace` (atomic), or without
    ``overwrite`` with a hard link, which fails if the name exists, also when
    a file appeared there during the write (a check and a rename would
    replace such a file)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError:  # no hard links (FAT, some network file systems)
        if os.path.lexists(path):
            raise _exists_error(path) from None
        os.replace(tmp, path)


def _write_temp(tmp: str, data: Union[bytes, bytearray, memoryview], path: str) -> None:
    """Create ``tmp`` and write ``data`` to it, synced; errors name ``path``."""
    # 0o666 like open(): the umask applies, so permissions match a plain write.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except OSError as err:
        if err.errno is None:
            raise
        # os.write's and fsync's errors (e.g. ENOSPC) name no file: name it,
        # and say what was kept. The errno (and OSError subclass) stay.
        raise OSError(
            err.errno,
            f'{err.strerror}: writing {path} failed; the file was left as it '
            f'was and the temporary file removed',
        ) from err
    finally:
        os.close(fd)


def atomic_write(
    path: PathLike,
    data: Union[bytes, bytearray, memoryview, str],
    encoding: str = 'utf-8',
    overwrite: bool = True,
) -> None:
    """Write ``data`` to ``path`` so that ``path`` never holds a partial file.

    If anything fails (an exception, or the process being killed) ``path``
    keeps its previous content (or stays absent); on an exception the
    temporary file is removed, and the first write into a directory in a
    process removes those of killed writes (:func:`remove_stale_temp_files`).
    With ``overwrite`` a symbolic link at ``path`` is followed (its target is
    replaced, the link stays); without, anything at ``path``, a link
    included, is refused.

    Args:
        path (str | PathLike): Destination file; missing parent directories
            are created.
        data (bytes | bytearray | memoryview | str): The content; ``str`` is
            encoded with ``encoding``.
        encoding (str): Encoding of ``str`` data. Default: ``'utf-8'``.
        overwrite (bool): Replace an existing file. Default: True.

    Raises:
        TypeError: ``data`` is not bytes-like or str.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: Writing failed (e.g. ``ENOSPC``, a full disk); the message
            names ``path`` and the cause, the errno is kept.
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f'data must be bytes, bytearray, memoryview or str, got '
            f'{type(data).__name__}'
        )
    path = os.fspath(path)
    path = os.path.realpath(path) if overwrite else os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # Hidden, unique, and short enough for NAME_MAX even for long names.
    name = os.path.basename(path)[:200]
    tmp = os.path.join(directory, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        _write_temp(tmp, data, path)
        _commit(tmp, path, overwrite)
    finally:
        # after os.replace the name is gone; after a hard link it is a
        # second name of the new file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _fsync_directory(directory)
    _sweep_once(directory)


def atomic_save(obj: Any, path: PathLike, overwrite: bool = True) -> None:
    """:func:`torch.save` ``obj`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        obj (Any): What to save (e.g. a state dict).
        path (str | PathLike): Destination file.
        overwrite (bool): Replace an existing file. Default: True.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    with io.BytesIO() as buffer:
        torch.save(obj, buffer)
        # A view, not a copy: checkpoints can be gigabytes.
        with buffer.getbuffer() as view:
            atomic_write(path, view, overwrite=overwrite)

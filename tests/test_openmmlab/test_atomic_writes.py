"""Checkpoints are written atomically: a crash never leaves a partial file.

The failure the tests inject is the one a crash or a full disk causes: the
write stops after part of the bytes. With mmengine's stock backend that
leaves a truncated checkpoint under the final name (shown first, so the
other tests are known to test something); with :class:`AtomicLocalBackend`
the previous file stays intact and nothing else is left behind.
"""

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend, register_backend
from mmengine.fileio.backends import backends, local_backend, prefix_to_backends
from mmengine.fileio.io import backend_instances
from mmengine.runner.checkpoint import save_checkpoint

import mmdrn
from mmdrn.openmmlab.checkpoint import find_resumable_checkpoint
from mmdrn.openmmlab.compat import (
    AtomicLocalBackend,
    disable_atomic_checkpoints,
    enable_atomic_checkpoints,
)
from mmdrn.utils import CheckpointError, load_file
from mmdrn.utils.file_io import atomic_save, atomic_write, remove_stale_temp_files

PACKAGE_ROOT = Path(mmdrn.__file__).parents[1]


@pytest.fixture(autouse=True)
def _restore_mmengine_backends():
    """Leave mmengine's backend registry as the test found it."""
    saved = (backends['local'], prefix_to_backends[''])
    cache = dict(backend_instances)
    yield
    backends['local'], prefix_to_backends[''] = saved
    backend_instances.clear()
    backend_instances.update(cache)


@pytest.fixture
def stock_backend():
    """mmengine's own LocalBackend, as without ``enable_atomic_checkpoints``."""
    register_backend('local', LocalBackend, force=True, prefixes='')
    backend_instances.clear()


@pytest.fixture
def atomic_backend():
    enable_atomic_checkpoints()


def _checkpoint(value: float) -> dict:
    return {'state_dict': {'w': torch.full((256, 256), value)}, 'meta': {'v': value}}


def _fail_half_way(real_write, under: Path):
    """A write that stops half way with ENOSPC for files below ``under``."""

    def write(fd, data):
        target = os.readlink(f'/proc/self/fd/{fd}')
        if not target.startswith(str(under)):
            return real_write(fd, data)
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, 'No space left on device (injected)')

    return write


needs_proc = pytest.mark.skipif(
    not os.path.isdir('/proc/self/fd'), reason='needs /proc to find the file of an fd'
)


def test_stock_mmengine_backend_leaves_a_truncated_checkpoint(
    tmp_path, monkeypatch, stock_backend
):
    """Control: the problem is real without atomic writes."""
    path = tmp_path / 'iter_2.pth'
    save_checkpoint(_checkpoint(1.0), str(path))
    assert type(get_file_backend(str(path))) is LocalBackend

    real_open = open

    class HalfFile:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, 'No space left on device (injected)')

    monkeypatch.setattr(
        local_backend,
        'open',
        lambda *a, **k: HalfFile(real_open(*a, **k)),
        raising=False,
    )
    with pytest.raises(OSError, match='injected'):
        save_checkpoint(_checkpoint(2.0), str(path))
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_file(path)


@needs_proc
def test_failed_save_keeps_the_previous_checkpoint_intact(
    tmp_path, monkeypatch, atomic_backend
):
    path = tmp_path / 'iter_2.pth'
    save_checkpoint(_checkpoint(1.0), str(path))
    assert isinstance(get_file_backend(str(path)), AtomicLocalBackend)
    before = path.read_bytes()

    monkeypatch.setattr(os, 'write', _fail_half_way(os.write, tmp_path))
    with pytest.raises(OSError, match='injected'):
        save_checkpoint(_checkpoint(2.0), str(path))
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert load_file(path)['meta'] == {'v': 1.0}
    assert sorted(os.listdir(tmp_path)) == ['iter_2.pth']  # no temporary file left


@needs_proc
def test_failed_first_save_leaves_no_file_at_all(tmp_path, monkeypatch):
    monkeypatch.setattr(os, 'write', _fail_half_way(os.write, tmp_path))
    with pytest.raises(OSError, match='injected'):
        atomic_save(_checkpoint(1.0), tmp_path / 'epoch_1.pth')
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_failed_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    """All bytes written, but the data never reached the disk: not committed."""
    path = tmp_path / 'last.pth'
    atomic_save(_checkpoint(1.0), path)

    def failing_fsync(fd):
        raise OSError(errno.EIO, 'I/O error (injected)')

    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='injected'):
        atomic_save(_checkpoint(2.0), path)
    monkeypatch.undo()
    assert load_file(path)['meta'] == {'v': 1.0}
    assert os.listdir(tmp_path) == ['last.pth']


_WRITER = textwrap.dedent(
    """
    import sys, torch
    from mmengine.runner.checkpoint import save_checkpoint
    from mmdrn.openmmlab.compat import enable_atomic_checkpoints
    enable_atomic_checkpoints()
    path, step = sys.argv[1], 0
    while True:
        step += 1
        # 8 MB whose every value is the step: a mix of two saves is detectable
        save_checkpoint({'step': step, 'w': torch.full((1 << 20,), step)}, path)
        print('saved', step, flush=True)
    """
)


def test_sigkill_while_saving_leaves_a_loadable_checkpoint(tmp_path):
    """Kill a process that saves checkpoints in a loop, at an arbitrary moment:
    the file at the final name always loads and is one whole save."""
    path = tmp_path / 'iter.pth'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(PACKAGE_ROOT))
    proc = subprocess.Popen(
        [sys.executable, '-c', _WRITER, str(path)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        # wait for two complete saves, then kill during the following ones
        saves = 0
        while saves < 2:
            line = proc.stdout.readline()
            assert line, 'the writer exited early'
            saves += line.startswith(b'saved ')
        time.sleep(random.uniform(0.0, 0.3))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    saved = load_file(path)
    assert saved['step'] >= 2
    assert torch.all(saved['w'] == saved['step'])
    # a kill during a write leaves its temporary file, which is then removed
    remove_stale_temp_files(tmp_path)
    assert os.listdir(tmp_path) == ['iter.pth']


def test_atomic_write_replaces_content_follows_links_and_keeps_umask(tmp_path):
    target = tmp_path / 'data' / 'real.txt'
    atomic_write(target, 'first')  # parent directories are created
    link = tmp_path / 'link.txt'
    link.symlink_to(target)
    atomic_write(link, b'second')
    assert link.is_symlink() and target.read_text() == 'second'
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(os.listdir(target.parent)) == ['real.txt']


@pytest.mark.parametrize('data', [None, 3, ['a'], {'a': 1}])
def test_atomic_write_rejects_data_that_is_not_bytes_or_text(tmp_path, data):
    with pytest.raises(TypeError, match='data must be bytes, bytearray, memoryview'):
        atomic_write(tmp_path / 'x', data)
    assert os.listdir(tmp_path) == []


def test_enable_is_idempotent_and_disable_gives_the_stock_backend_back(stock_backend):
    assert type(get_file_backend('/some/where/x.pth')) is LocalBackend
    enable_atomic_checkpoints()
    enable_atomic_checkpoints()
    # mmengine's save_checkpoint asks for a new backend on every save (no
    # singleton), so the registration alone makes checkpoint writes atomic
    assert type(get_file_backend('/some/where/x.pth')) is AtomicLocalBackend
    assert type(get_file_backend(None, backend_args=dict(backend='local'))) is (
        AtomicLocalBackend
    )
    disable_atomic_checkpoints()
    assert type(get_file_backend('/some/where/x.pth')) is LocalBackend


def test_atomic_backend_text_and_bytes_round_trip(tmp_path):
    backend = AtomicLocalBackend()
    backend.put_text('iter_4.pth', tmp_path / 'last_checkpoint')
    backend.put(b'\x00\x01', tmp_path / 'sub' / 'b.bin')
    assert backend.get_text(tmp_path / 'last_checkpoint') == 'iter_4.pth'
    assert backend.get(tmp_path / 'sub' / 'b.bin') == b'\x00\x01'


def test_find_resumable_checkpoint_does_not_trust_a_torn_pointer(tmp_path):
    assert find_resumable_checkpoint(tmp_path) is None
    old, new = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    atomic_save(_checkpoint(2.0), old)
    atomic_save(_checkpoint(4.0), new)
    os.utime(old, (1, 1))
    pointer = tmp_path / 'last_checkpoint'

    pointer.write_text(str(old))
    assert find_resumable_checkpoint(tmp_path) == str(old)  # the pointer wins
    pointer.write_text('')  # killed between truncating and writing it
    assert find_resumable_checkpoint(tmp_path) == str(new)
    # a truncated newest file (a non-atomic writer) is skipped
    data = new.read_bytes()
    new.write_bytes(data[: len(data) // 2])
    pointer.write_text(str(new))
    assert find_resumable_checkpoint(tmp_path) == str(old)

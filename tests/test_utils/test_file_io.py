"""mmdrn.utils.file_io: atomic writes that never replace a file unless asked."""

import os
import subprocess
import sys

import pytest
import torch

from mmdrn.utils import load_file
from mmdrn.utils.file_io import atomic_save, atomic_write, remove_stale_temp_files


def test_existing_file_is_kept_without_overwrite(tmp_path):
    dst = tmp_path / 'precious.pth'
    dst.write_bytes(b'a file the user wants to keep')
    with pytest.raises(FileExistsError, match="precious.pth' exists; not replacing it"):
        atomic_save({'w': torch.ones(1)}, dst, overwrite=False)
    assert dst.read_bytes() == b'a file the user wants to keep'
    assert os.listdir(tmp_path) == ['precious.pth']  # no temporary file left
    atomic_save({'w': torch.ones(1)}, dst)  # overwrite=True replaces
    assert torch.equal(load_file(dst)['w'], torch.ones(1))
    assert os.listdir(tmp_path) == ['precious.pth']


def test_new_file_is_written_without_overwrite(tmp_path):
    dst = tmp_path / 'sub' / 'new.pth'
    atomic_save({'w': torch.arange(3)}, dst, overwrite=False)
    assert torch.equal(load_file(dst)['w'], torch.arange(3))
    assert os.listdir(tmp_path / 'sub') == ['new.pth']


def test_a_file_that_appears_during_the_write_is_not_replaced(tmp_path, monkeypatch):
    # A check before writing cannot see a file created meanwhile; the final
    # step (a hard link) still refuses to replace it.
    dst = tmp_path / 'out.pth'
    real_fsync = os.fsync

    def fsync_then_race(fd):
        real_fsync(fd)
        if not dst.exists():
            dst.write_bytes(b'written by someone else meanwhile')

    monkeypatch.setattr(os, 'fsync', fsync_then_race)
    with pytest.raises(FileExistsError, match='out.pth'):
        atomic_save({'w': torch.ones(1)}, dst, overwrite=False)
    assert dst.read_bytes() == b'written by someone else meanwhile'
    assert os.listdir(tmp_path) == ['out.pth']


def test_without_hard_links_it_still_refuses_and_writes(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, 'Operation not permitted')

    monkeypatch.setattr(os, 'link', no_links)
    dst = tmp_path / 'out.pth'
    atomic_save({'w': torch.ones(1)}, dst, overwrite=False)
    assert torch.equal(load_file(dst)['w'], torch.ones(1))
    with pytest.raises(FileExistsError, match='not replacing it'):
        atomic_save({'w': torch.zeros(1)}, dst, overwrite=False)
    assert torch.equal(load_file(dst)['w'], torch.ones(1))
    assert os.listdir(tmp_path) == ['out.pth']


def test_a_link_at_the_destination_is_refused_without_overwrite(tmp_path):
    target = tmp_path / 'target.txt'
    target.write_text('kept')
    link = tmp_path / 'link.txt'
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        atomic_write(link, 'new', overwrite=False)
    dangling = tmp_path / 'dangling.txt'
    dangling.symlink_to(tmp_path / 'missing.txt')
    with pytest.raises(FileExistsError):
        atomic_write(dangling, 'new', overwrite=False)
    assert not (tmp_path / 'missing.txt').exists()
    # with overwrite the link is followed: its target is replaced
    atomic_write(link, 'new')
    assert link.is_symlink() and target.read_text() == 'new'


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_temp_files_are_removed_by_the_next_write(tmp_path):
    """A killed save leaves .<name>.<pid>.<random>.tmp; the first write into
    that directory by a later process removes it, and only files of that
    pattern whose process is gone."""
    stale = tmp_path / f'.iter_4.pth.{_dead_pid()}.0123abcd.tmp'
    stale.write_bytes(b'PK half a checkpoint')
    live = tmp_path / f'.iter_6.pth.{os.getppid()}.0123abcd.tmp'  # being written
    live.write_bytes(b'PK')
    other = tmp_path / '.notes.1.tmp'  # not ours
    other.write_text('x')
    atomic_save({'w': torch.ones(1)}, tmp_path / 'iter_2.pth')
    assert sorted(os.listdir(tmp_path)) == sorted(['iter_2.pth', live.name, other.name])
    assert remove_stale_temp_files(tmp_path) == []

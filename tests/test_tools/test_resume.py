"""``tools/train.py --resume``: one rule, through the real tool.

A named file that cannot be resumed from is an error naming it; ``--resume``
alone skips damaged files with a warning naming each and resumes from the
newest complete checkpoint, or says it starts from scratch (and does, without
mmengine following a stale ``last_checkpoint``); a checkpoint at or past the
end of the schedule is an error; the temporary file of a save killed half way
is removed and never taken for a checkpoint.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from tool_runner import REPO, TOOLS, check, run_tool, weights, write_tiny_config

import mmdrn.openmmlab  # noqa: F401  (mmengine checkpoints load weights-only)

# Imported by the training process (custom_imports): the save of iter_4.pth
# writes half of its bytes, announces it, and hangs until killed.
SLOW_WRITER = """
import os
import time

from mmdrn.openmmlab.engine import atomic_io

_write_all = atomic_io._write_all


def _hanging_write_all(fd, data):
    target = os.readlink(f'/proc/self/fd/{fd}')
    if 'iter_4.pth' not in target:
        return _write_all(fd, data)
    with memoryview(data) as view:
        _write_all(fd, view[: view.nbytes // 2])
    os.fsync(fd)
    print('HALF WRITTEN', target, flush=True)
    time.sleep(600)


atomic_io._write_all = _hanging_write_all
"""


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_data):
    """A work dir after 4 iterations: iter_2.pth, iter_4.pth, last_checkpoint."""
    base = tmp_path_factory.mktemp('resume')
    config = write_tiny_config(base / 'tiny.py', demo_data, max_iters=4)
    check(run_tool('train.py', [config, '--work-dir', 'w'], str(base)))
    return base / 'w', config


def _work_dir(tmp_path, trained, keep):
    """A copy of the trained work dir with the checkpoints in ``keep``."""
    source, _ = trained
    work = tmp_path / 'w'
    work.mkdir()
    for name in keep:
        shutil.copy2(source / name, work / name)
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    return work


def _train(tmp_path, trained, *args, max_iters=6):
    _, config = trained
    options = ['--cfg-options', f'train_cfg.max_iters={max_iters}']
    proc = run_tool(
        'train.py', [config, '--work-dir', 'w', *args, *options], str(tmp_path)
    )
    return proc, proc.stdout + proc.stderr


def _error(proc, out) -> str:
    assert proc.returncode == 1, out[-4000:]
    assert 'Iter(train)' not in out  # nothing was trained
    return out.strip().splitlines()[-1]


def test_named_missing_file_is_an_error(tmp_path, trained):
    _work_dir(tmp_path, trained, [])
    missing = str(tmp_path / 'w' / 'iter_8.pth')
    last = _error(*_train(tmp_path, trained, '--resume', missing))
    error = 'mmdrn.utils.checkpoint.CheckpointError'
    assert last == f'{error}: checkpoint {missing!r} does not exist'


def test_named_directory_is_an_error(tmp_path, trained):
    work = _work_dir(tmp_path, trained, ['iter_2.pth'])
    last = _error(*_train(tmp_path, trained, '--resume', str(work)))
    assert f'{str(work)!r} is a directory, not a checkpoint' in last


def test_named_truncated_file_is_an_error(tmp_path, trained):
    work = _work_dir(tmp_path, trained, ['iter_4.pth'])
    data = (work / 'iter_4.pth').read_bytes()
    (work / 'iter_4.pth').write_bytes(data[: len(data) // 2])
    last = _error(*_train(tmp_path, trained, '--resume', str(work / 'iter_4.pth')))
    assert (
        f'cannot read checkpoint {str(work / "iter_4.pth")!r}: the file is truncated'
        in last
    )


def test_named_plain_state_dict_is_an_error_pointing_to_load_from(tmp_path, trained):
    work = _work_dir(tmp_path, trained, ['iter_2.pth'])
    plain = work / 'weights.pth'
    torch.save(weights(work / 'iter_2.pth'), plain)
    last = _error(*_train(tmp_path, trained, '--resume', str(plain)))
    assert f'{str(plain)!r} is not an mmengine training checkpoint' in last
    assert f'use load_from (--cfg-options load_from={plain})' in last


@pytest.mark.parametrize('max_iters', [4, 3])
def test_a_finished_checkpoint_is_an_error(tmp_path, trained, max_iters):
    work = _work_dir(tmp_path, trained, ['iter_2.pth', 'iter_4.pth'])
    for args in (['--resume', str(work / 'iter_4.pth')], ['--resume']):
        last = _error(*_train(tmp_path, trained, *args, max_iters=max_iters))
        assert (
            f'was saved after iteration 4 and the config ends at '
            f'train_cfg.max_iters={max_iters}: the training is complete'
        ) in last


def test_auto_skips_damaged_files_and_names_each(tmp_path, trained):
    work = _work_dir(tmp_path, trained, ['iter_2.pth', 'iter_4.pth'])
    newest = work / 'iter_4.pth'
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated by a non-atomic copy
    plain = work / 'pretrained.pth'
    torch.save({'conv.weight': torch.zeros(1)}, plain)  # newest, but foreign
    proc, out = _train(tmp_path, trained, '--resume')
    check(proc)
    assert f'--resume: skipping {newest}: cannot read checkpoint' in out
    assert f'--resume: skipping {plain}: {str(plain)!r} is not an mmengine' in out
    assert f'Load checkpoint from {work / "iter_2.pth"}' in out
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'from scratch' not in out
    assert (work / 'iter_6.pth').is_file()


def test_auto_without_a_complete_checkpoint_starts_from_scratch_only(tmp_path, trained):
    """last_checkpoint names a deleted file: a warning, then a plain start;
    mmengine does not follow the pointer itself."""
    work = _work_dir(tmp_path, trained, [])
    proc, out = _train(tmp_path, trained, '--resume', max_iters=2)
    check(proc)
    assert f'--resume: skipping {work / "iter_4.pth"}: checkpoint' in out
    assert (
        f'--resume: no complete checkpoint in {work}: training starts from scratch'
        in out
    )
    assert 'resumed' not in out and 'Load checkpoint' not in out
    assert re.search(r'Iter\(train\) \[1/2\]', out)
    assert (work / 'iter_2.pth').is_file()


def test_a_save_killed_half_way_leaves_a_temp_file_that_resume_removes(
    tmp_path, demo_data
):
    (tmp_path / 'slow_writer.py').write_text(SLOW_WRITER)
    config = write_tiny_config(
        tmp_path / 'slow.py', demo_data, max_iters=6, imports=['slow_writer']
    )
    env = dict(
        os.environ, OMP_NUM_THREADS='1', PYTHONPATH=f'{tmp_path}{os.pathsep}{REPO}'
    )
    proc = subprocess.Popen(
        [sys.executable, os.path.join(TOOLS, 'train.py'), config, '--work-dir', 'w'],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        for line in proc.stdout:
            if line.startswith('HALF WRITTEN') or time.monotonic() > deadline:
                break
        assert line.startswith('HALF WRITTEN'), 'the save of iter_4.pth never started'
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    work = tmp_path / 'w'
    temps = [n for n in os.listdir(work) if n.endswith('.tmp')]
    assert len(temps) == 1 and re.fullmatch(
        rf'\.iter_4\.pth\.{proc.pid}\.[0-9a-f]{{8}}\.tmp', temps[0]
    ), temps
    assert not (work / 'iter_4.pth').exists()
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')

    plain = write_tiny_config(tmp_path / 'plain.py', demo_data, max_iters=6)
    out = check(
        run_tool('train.py', [plain, '--work-dir', 'w', '--resume'], str(tmp_path))
    )
    assert (
        f'--resume: removed {work / temps[0]}, left by a save that was interrupted'
        in out
    )
    assert 'resumed epoch: 0, iter: 2' in out
    assert not [n for n in os.listdir(work) if n.endswith('.tmp')]
    assert (work / 'iter_6.pth').is_file()

"""``tools/train.py --resume``: one rule, through the real tool.

A named file that cannot be resumed from is an error naming it; ``--resume``
alone skips damaged files with a warning naming each and resumes from the
newest complete checkpoint, or says it starts from scratch (and does, without
mmengine following a stale ``last_checkpoint``); a checkpoint at or past the
end of the schedule is an error; the temporary file of a save killed half way
is removed and never taken for a checkpoint.

Every case starts from one killed run: trained with a checkpoint every 2
iterations, SIGKILLed while ``iter_4.pth`` is half written. Every case runs
the tool as a separate process, as a user does.
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

# Imported by the training process (custom_imports): the save of iter_4.pth
# writes half of its bytes, announces it, and hangs until killed.
SLOW_WRITER = """
import os
import time

from mmdrn.utils import file_io

_write_all = file_io._write_all


def _hanging_write_all(fd, data):
    target = os.readlink(f'/proc/self/fd/{fd}')
    if 'iter_4.pth' not in target:
        return _write_all(fd, data)
    with memoryview(data) as view:
        _write_all(fd, view[: view.nbytes // 2])
    os.fsync(fd)
    print('HALF WRITTEN', target, flush=True)
    time.sleep(600)


file_io._write_all = _hanging_write_all
"""


@pytest.fixture(scope='module')
def killed(tmp_path_factory, demo_data):
    """(work dir, tiny config, pid): iter_2.pth complete, iter_4.pth half
    written into its temporary file when the process was killed."""
    base = tmp_path_factory.mktemp('resume')
    (base / 'slow_writer.py').write_text(SLOW_WRITER)
    slow = write_tiny_config(
        base / 'slow.py', demo_data, max_iters=6, imports=['slow_writer']
    )
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=f'{base}{os.pathsep}{REPO}')
    proc = subprocess.Popen(
        [sys.executable, os.path.join(TOOLS, 'train.py'), slow, '--work-dir', 'w'],
        cwd=base,
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
    config = write_tiny_config(base / 'tiny.py', demo_data, max_iters=6)
    return base / 'w', config, proc.pid


def _copy(tmp_path, killed, keep=('iter_2.pth',)):
    """A copy of the killed run's work dir with the files in ``keep``."""
    source = killed[0]
    work = tmp_path / 'w'
    work.mkdir()
    for name in keep:
        shutil.copy2(source / name, work / name)
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    return work


def _train_main(tmp_path, killed, *args, max_iters=6):
    """Run tools/train.py; it must fail before training. Its error message."""
    argv = [killed[1], '--work-dir', str(tmp_path / 'w'), *args]
    argv += ['--cfg-options', f'train_cfg.max_iters={max_iters}']
    proc = run_tool('train.py', argv, str(tmp_path))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not list((tmp_path / 'w').glob('2*'))  # no run (log) directory
    last = proc.stderr.strip().splitlines()[-1]
    kind, _, message = last.partition(': ')
    assert kind.endswith(('CheckpointError', 'ValueError')), proc.stderr[-2000:]
    return message


def test_a_killed_save_leaves_a_temp_file_that_resume_removes(tmp_path, killed):
    """The temp file is no checkpoint; --resume removes it, skips a truncated
    and a foreign *.pth newer than iter_2.pth, naming each, and resumes from
    iter_2.pth."""
    source, config, pid = killed
    temps = [n for n in os.listdir(source) if n.endswith('.tmp')]
    assert len(temps) == 1, temps
    assert re.fullmatch(rf'\.iter_4\.pth\.{pid}\.[0-9a-f]{{8}}\.tmp', temps[0])
    assert not (source / 'iter_4.pth').exists()
    assert (source / 'last_checkpoint').read_text().strip() == str(
        source / 'iter_2.pth'
    )

    work = _copy(tmp_path, killed, ['iter_2.pth', temps[0]])
    half = work / 'iter_3.pth'  # e.g. copied by hand, cut short
    half.write_bytes((work / 'iter_2.pth').read_bytes()[:1000])
    plain = work / 'pretrained.pth'
    torch.save({'conv.weight': torch.zeros(1)}, plain)
    os.utime(work / 'iter_2.pth', (1, 1))  # the oldest file
    (work / 'last_checkpoint').write_text('')  # torn pointer
    out = check(
        run_tool('train.py', [config, '--work-dir', 'w', '--resume'], str(tmp_path))
    )
    assert (
        f'--resume: removed {work / temps[0]}, left by a save that was interrupted'
        in out
    )
    assert f'--resume: skipping {half}: cannot read checkpoint' in out
    assert f'--resume: skipping {plain}: {str(plain)!r} is not an mmengine' in out
    assert f'Load checkpoint from {work / "iter_2.pth"}' in out
    assert 'resumed epoch: 0, iter: 2' in out and 'from scratch' not in out
    assert not [n for n in os.listdir(work) if n.endswith('.tmp')]
    assert (work / 'iter_6.pth').is_file()


def test_auto_without_a_complete_checkpoint_starts_from_scratch_only(tmp_path, killed):
    """last_checkpoint names a deleted file: a warning, then a plain start;
    mmengine does not follow the pointer itself."""
    work = _copy(tmp_path, killed, keep=())
    args = [killed[1], '--work-dir', 'w', '--resume']
    out = check(
        run_tool(
            'train.py', args + ['--cfg-options', 'train_cfg.max_iters=2'], str(tmp_path)
        )
    )
    assert f'--resume: skipping {work / "iter_4.pth"}: checkpoint' in out
    assert (
        f'--resume: no complete checkpoint in {work}: training starts from scratch'
        in out
    )
    assert 'resumed' not in out and 'Load checkpoint' not in out
    assert re.search(r'Iter\(train\) \[1/2\]', out)
    assert (work / 'iter_2.pth').is_file()


def test_named_missing_file_ends_the_process_with_the_error(tmp_path, killed):
    _copy(tmp_path, killed)
    missing = str(tmp_path / 'w' / 'iter_8.pth')
    proc = run_tool(
        'train.py', [killed[1], '--work-dir', 'w', '--resume', missing], str(tmp_path)
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert 'Iter(train)' not in out
    last = out.strip().splitlines()[-1]
    error = 'mmdrn.utils.checkpoint.CheckpointError'
    assert last == f'{error}: checkpoint {missing!r} does not exist'


def test_named_directory_truncated_or_plain_file_is_an_error(tmp_path, killed):
    work = _copy(tmp_path, killed)
    message = _train_main(tmp_path, killed, '--resume', str(work))
    assert message.startswith(f'{str(work)!r} is a directory, not a checkpoint')

    cut = work / 'cut.pth'
    cut.write_bytes((work / 'iter_2.pth').read_bytes()[:-100])
    message = _train_main(tmp_path, killed, '--resume', str(cut))
    assert message.startswith(
        f'cannot read checkpoint {str(cut)!r}: the file is truncated'
    )

    plain = work / 'weights.pth'
    torch.save(weights(work / 'iter_2.pth'), plain)
    message = _train_main(tmp_path, killed, '--resume', str(plain))
    assert message.startswith(f'{str(plain)!r} is not an mmengine training checkpoint')
    assert f'use load_from (--cfg-options load_from={plain})' in message


@pytest.mark.parametrize('max_iters,resume', [(2, 'named'), (1, 'auto')])
def test_a_finished_checkpoint_is_an_error(tmp_path, killed, max_iters, resume):
    work = _copy(tmp_path, killed)
    args = ['--resume'] + ([str(work / 'iter_2.pth')] if resume == 'named' else [])
    message = _train_main(tmp_path, killed, *args, max_iters=max_iters)
    assert message == (
        f'--resume: {str(work / "iter_2.pth")!r} was saved after iteration 2 and '
        f'the config ends at train_cfg.max_iters={max_iters}: the training is '
        f'complete, nothing is left to resume. To train longer, raise it '
        f'(--cfg-options train_cfg.max_iters=N)'
    )

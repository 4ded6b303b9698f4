"""tools/train.py under the faults of a real cluster: pre-emption by SIGTERM
(1 and 2 processes), a full disk during a checkpoint write, broken data."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from tool_runner import REPO, TOOLS, check, run_tool, weights, write_tiny_config

from mmdrn.utils import load_file

# Makes each iteration last long enough for the test to signal mid-run.
SLOW_HOOK = """
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SlowIters(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        time.sleep(0.4)
"""

# The checkpoint writer of iteration 4 fails half way with ENOSPC, as on a
# full disk: half of the bytes reach the (temporary) file, then os.write fails.
FULL_DISK = """
import errno
import os

from mmdrn.utils import file_io

_write_all = file_io._write_all


def _filling_the_disk(fd, data):
    if 'iter_4.pth' in os.readlink(f'/proc/self/fd/{fd}'):
        with memoryview(data) as view:
            _write_all(fd, view[: view.nbytes // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _write_all(fd, data)


file_io._write_all = _filling_the_disk
"""


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _env(tmp_path, **extra):
    env = dict(os.environ)
    path = os.pathsep.join([str(tmp_path), REPO])
    # Unbuffered: the log must reach the test as it is written.
    env.update(OMP_NUM_THREADS='1', PYTHONPATH=path, PYTHON=sys.executable)
    env.update(PYTHONUNBUFFERED='1', **extra)
    return env


def _signal_after(cmd, cwd, env, sig, marker='Iter(train) [2/', timeout=300):
    """Run ``cmd``, send ``sig`` once ``marker`` appears in its output."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, ''.join(lines[-50:])
    rest, _ = proc.communicate(timeout=timeout)
    return proc.returncode, ''.join(lines) + rest


def _only_checkpoint(work_dir) -> str:
    """The one checkpoint in ``work_dir``; no temporary file next to it."""
    names = sorted(os.listdir(work_dir))
    assert not [n for n in names if n.endswith('.tmp')], names
    found = [n for n in names if n.endswith('.pth')]
    assert len(found) == 1, names
    return os.path.realpath(work_dir / found[0])


def _assert_equal_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# covered on the real demo configs by test_exact_resume.py (default suite)
@pytest.mark.slow
def test_sigterm_saves_and_resume_gives_the_uninterrupted_weights(tmp_path, demo_data):
    """No periodic checkpoint before iteration 8: without the hook a SIGTERM
    would lose everything. With it, the run stops after the iteration in
    progress with one checkpoint and status 75, and ``--resume`` ends with
    the weights of a run that was never interrupted."""
    (tmp_path / 'slow_hook.py').write_text(SLOW_HOOK)
    kwargs = dict(max_iters=8, checkpoint_interval=1000)
    config = write_tiny_config(tmp_path / 'tiny.py', demo_data, **kwargs)
    slow = write_tiny_config(
        tmp_path / 'slow.py',
        demo_data,
        imports=['slow_hook'],
        custom_hooks=[dict(type='SlowIters')],
        **kwargs,
    )
    cwd = str(tmp_path)
    check(run_tool('train.py', [config, '--work-dir', 'a'], cwd))

    cmd = [sys.executable, os.path.join(TOOLS, 'train.py'), slow, '--work-dir', 'b']
    status, out = _signal_after(cmd, cwd, _env(tmp_path), signal.SIGTERM)
    assert status == 75, out[-4000:]
    ckpt = _only_checkpoint(tmp_path / 'b')
    step = int(ckpt.rsplit('_', 1)[1][: -len('.pth')])
    assert 2 <= step < 8
    assert f'SIGTERM received: saving the checkpoint of iteration {step}' in out
    assert f'training pre-empted by SIGTERM after iteration {step}; resume' in out
    assert f'Iter(train) [{step + 1}/8]' not in out
    assert os.path.realpath((tmp_path / 'b' / 'last_checkpoint').read_text()) == ckpt
    assert load_file(ckpt)['meta']['iter'] == step

    out = check(run_tool('train.py', [config, '--work-dir', 'b', '--resume'], cwd))
    assert f'resumed epoch: 0, iter: {step}' in out
    _assert_equal_weights(
        weights(tmp_path / 'b' / 'iter_8.pth'), weights(tmp_path / 'a' / 'iter_8.pth')
    )
    assert not torch.equal(
        weights(ckpt)['decode_head.conv_seg.weight'],
        weights(tmp_path / 'a' / 'iter_8.pth')['decode_head.conv_seg.weight'],
    )


def test_sigterm_to_dist_train_two_processes_one_checkpoint_same_weights(
    tmp_path, demo_data
):
    """dist_train.sh forwards SIGTERM to torchrun, which forwards it to both
    gloo processes; they agree on the iteration, rank 0 writes the one
    checkpoint, and the script exits with 75 although torchrun reports 1;
    ``--resume`` through dist_train.sh ends with the uninterrupted 2-process
    weights."""
    (tmp_path / 'slow_hook.py').write_text(SLOW_HOOK)
    kwargs = dict(max_iters=6, checkpoint_interval=1000, batch_size=2)
    config = write_tiny_config(tmp_path / 'tiny.py', demo_data, **kwargs)
    slow = write_tiny_config(
        tmp_path / 'slow.py',
        demo_data,
        imports=['slow_hook'],
        custom_hooks=[dict(type='SlowIters')],
        **kwargs,
    )
    cwd = str(tmp_path)
    dist = os.path.join(TOOLS, 'dist_train.sh')
    check(
        run_tool(
            'dist_train.sh',
            [config, '2', '--work-dir', 'a'],
            cwd,
            env=dict(PORT=_free_port()),
        )
    )
    cmd = ['bash', dist, slow, '2', '--work-dir', 'b']
    env = _env(tmp_path, PORT=_free_port())
    status, out = _signal_after(cmd, cwd, env, signal.SIGTERM)
    assert status == 75, out[-4000:]
    assert 'got signal: 15' in out  # torchrun's own report
    # Both workers ended by themselves within torchrun's grace period.
    assert out.count('closing signal SIGTERM') == 2
    assert 'SIGKILL' not in out
    ckpt = _only_checkpoint(tmp_path / 'b')
    step = load_file(ckpt)['meta']['iter']
    assert 2 <= step < 6 and ckpt.endswith(f'iter_{step}.pth')
    assert f'training pre-empted by SIGTERM after iteration {step}' in out
    assert f'{ckpt} with tools/train.py CONFIG --resume (exit status 75)' in out
    assert f'dist_train.sh: pre-empted; checkpoint {ckpt}; exit status 75' in out
    assert os.path.realpath((tmp_path / 'b' / 'last_checkpoint').read_text()) == ckpt

    out = check(
        run_tool(
            'dist_train.sh',
            [config, '2', '--work-dir', 'b', '--resume'],
            cwd,
            env=dict(PORT=_free_port()),
        )
    )
    assert f'resumed epoch: 0, iter: {step}' in out
    _assert_equal_weights(
        weights(tmp_path / 'b' / 'iter_6.pth'), weights(tmp_path / 'a' / 'iter_6.pth')
    )


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc')
def test_full_disk_stops_the_run_and_keeps_the_previous_checkpoint(tmp_path, demo_data):
    (tmp_path / 'full_disk.py').write_text(FULL_DISK)
    config = write_tiny_config(
        tmp_path / 'full.py', demo_data, imports=['full_disk'], max_iters=6
    )
    env = dict(PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
    proc = run_tool('train.py', [config, '--work-dir', 'w'], str(tmp_path), env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    target = os.path.realpath(tmp_path / 'w' / 'iter_4.pth')
    assert (
        f'OSError: [Errno 28] No space left on device: writing {target} failed; '
        f'the file was left as it was and the temporary file removed'
    ) in out
    assert 'Iter(train) [5/6]' not in out  # stopped, not training on
    assert _only_checkpoint(tmp_path / 'w').endswith('iter_2.pth')
    pointer = (tmp_path / 'w' / 'last_checkpoint').read_text()
    assert os.path.realpath(pointer) == os.path.realpath(tmp_path / 'w' / 'iter_2.pth')
    assert load_file(pointer)['meta']['iter'] == 2


def test_broken_label_file_names_itself_or_is_skipped_on_request(tmp_path, demo_data):
    data = shutil.copytree(demo_data, tmp_path / 'data')
    labels = sorted(glob.glob(str(data / 'ann_dir' / 'train' / '*.png')))
    open(labels[5], 'wb').close()  # e.g. a copy that ran out of space
    config = write_tiny_config(tmp_path / 'bad.py', data, max_iters=3, batch_size=8)
    cwd = str(tmp_path)
    proc = run_tool('train.py', [config, '--work-dir', 'w'], cwd)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert 'BadSampleError: dataset sample 5 (img_path=' in out
    assert f'{labels[5]} is empty (0 bytes) [LoadAnnotations: ' in out

    args = [config, '--work-dir', 'w', '--cfg-options']
    out = check(run_tool('train.py', args + ['data_checks.skip_unreadable=True'], cwd))
    skips = [line for line in out.splitlines() if 'skipped unreadable' in line]
    # 3 iterations of the whole 8-image dataset: sample 5 each time (and
    # again whenever it is drawn as the replacement), each skip counted.
    assert len(skips) >= 3, out[-3000:]
    for count, line in enumerate(skips, 1):
        assert f'{labels[5]} is empty (0 bytes)' in line
        assert f'; {count} sample(s) skipped so far by process' in line


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--preempt-signal', 'KILL'], 'argument --preempt-signal: SIGKILL cannot be'),
        (['--preempt-signal', 'USR1', '--no-preempt'], 'exclude each other'),
    ],
)
def test_preempt_options_are_checked(tmp_path, argv, message):
    proc = run_tool('train.py', ['x.py', *argv], str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr

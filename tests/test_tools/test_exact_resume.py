"""Bit-exact resume through ``tools/train.py`` and ``tools/dist_train.sh`` on
the demo configs, whose runtime base lists the ``RNGStateHook``.

Each case trains the real config (batch 2, 4 iterations, 64x64 demo data,
validation every 2 iterations) uninterrupted, with checkpoints at 2 and 4;
alongside, the same config is stopped by a SIGTERM that a test-only hook
sends at the end of iteration 2, and the pre-emption checkpoint is resumed;
the periodic checkpoint of iteration 2 is resumed too. Both resumed runs must
end with the uninterrupted run's weights, ``torch.equal`` for every tensor.
DeepLabV3 draws dropout from torch's generator, which mmengine alone does not
restore (a checkpoint without the state diverges, as one case shows); both
configs draw their random flips from numpy's.

The runs of a round are independent processes and run side by side.
"""

import os
import subprocess
import sys
import tempfile
import time
from typing import List, Tuple

import pytest
import torch
from tool_runner import REPO, TOOLS, check, weights

from mmdrn.datasets import generate_demo_scenes
from mmdrn.utils import load_file

DEEPLABV3 = os.path.join(
    REPO, 'configs/demo/deeplabv3_r18-d8_1xb8-1k_drn-demo-64x64.py'
)
DRN_C_26 = os.path.join(REPO, 'configs/demo/fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py')
MAX_ITERS = 4
STOP_AT = 2

# Imported by the pre-empted run (custom_imports): the SIGTERM arrives at the
# end of iteration STOP_AT, on rank 0 only, every time.
SIGTERM_HOOK = """
import os
import signal

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SigtermAt(Hook):
    priority = 'HIGHEST'

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration and get_rank() == 0:
            os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
    """The working directory of every run: the demo data where the configs
    look for it (``data/drn_demo``), and the SIGTERM hook."""
    base = tmp_path_factory.mktemp('exact_resume')
    generate_demo_scenes(str(base / 'data' / 'drn_demo'))
    (base / 'sigterm_at.py').write_text(SIGTERM_HOOK)
    return base


def _options(workers: int, checkpoint_interval: int = STOP_AT) -> List[str]:
    return [
        '--cfg-options',
        f'train_cfg.max_iters={MAX_ITERS}',
        'train_cfg.val_interval=2',
        'train_dataloader.batch_size=2',
        f'train_dataloader.num_workers={workers}',
        'val_dataloader.dataset.indices=2',
        f'default_hooks.checkpoint.interval={checkpoint_interval}',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
    ]


def _preempted_config(demo_dir, config: str) -> str:
    """``config`` plus the hook that sends the SIGTERM."""
    path = demo_dir / f'sigterm_{os.path.basename(config)}'
    path.write_text(
        f'_base_ = [{config!r}]\n'
        "custom_imports = dict(imports=['mmdrn.openmmlab', 'sigterm_at'], "
        'allow_failed_imports=False)\n'
        f"default_hooks = dict(sigterm=dict(type='SigtermAt', iteration={STOP_AT}))\n"
    )
    return str(path)


def _start(cwd, args: List[str], procs: int = 1, port: int = 0) -> subprocess.Popen:
    """Start tools/train.py (or tools/dist_train.sh with ``procs`` > 1)."""
    if procs > 1:
        cmd = ['bash', os.path.join(TOOLS, 'dist_train.sh'), args[0], str(procs)]
        cmd += args[1:]
    else:
        cmd = [sys.executable, os.path.join(TOOLS, 'train.py'), *args]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.update(PYTHONPATH=os.pathsep.join([str(cwd), REPO]), PORT=str(port or 29500))
    # Into a file, not a pipe: a full pipe would stall a run while the test
    # waits for another.
    log = tempfile.TemporaryFile('w+')
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    proc.log = log
    return proc


def _wait(*procs: subprocess.Popen, timeout: int = 600) -> List[Tuple[int, str]]:
    """Each process's exit status and output, once all have ended."""
    deadline = time.monotonic() + timeout
    done = []
    for proc in procs:
        proc.wait(timeout=max(1, deadline - time.monotonic()))
        proc.log.seek(0)
        done.append((proc.returncode, proc.log.read()))
        proc.log.close()
    return done


def _ok(result: Tuple[int, str]) -> str:
    return check(subprocess.CompletedProcess([], result[0], result[1], ''))


def _hook_warnings(out: str) -> List[str]:
    return [line for line in out.splitlines() if 'RNGStateHook: ' in line]


def _assert_same(path, reference) -> None:
    a, b = weights(path), weights(reference)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'{len(different)}/{len(a)} tensors differ: {different[:5]}'


def _stateless_copy(source, work_dir) -> str:
    """``source`` without its random state, as mmdrn saved before the hook."""
    checkpoint = load_file(source)
    del checkpoint['rng_state']
    work_dir.mkdir()
    path = work_dir / 'iter_2.pth'
    torch.save(checkpoint, path)
    return str(path)


def _check_exact_resume(demo_dir, tmp_path, config: str, workers: int, procs: int = 1):
    """Uninterrupted vs pre-empted + resumed vs periodic + resumed; returns
    the uninterrupted run's work dir."""
    port = 29500 + os.getpid() % 1000 * 4
    full, stop, periodic = tmp_path / 'full', tmp_path / 'stop', tmp_path / 'periodic'
    uninterrupted = _start(
        demo_dir, [config, '--work-dir', str(full), *_options(workers)], procs, port
    )
    preempted = _start(
        demo_dir,
        [_preempted_config(demo_dir, config), '--work-dir', str(stop)]
        + _options(workers, checkpoint_interval=1000),
        procs,
        port + 1,
    )
    (code, out), stopped = _wait(uninterrupted, preempted)
    _ok((code, out))
    assert stopped[0] == 75, stopped[1][-4000:]
    assert f'saving the checkpoint of iteration {STOP_AT} and stopping' in stopped[1]
    assert sorted(p.name for p in stop.glob('*.pth')) == [f'iter_{STOP_AT}.pth']
    record = load_file(stop / f'iter_{STOP_AT}.pth')['rng_state']
    assert (record['iter'], record['world_size']) == (STOP_AT, procs)
    assert len(record['ranks']) == procs
    assert record['loader']['num_workers'] == workers

    resumed = _start(
        demo_dir,
        [config, '--work-dir', str(stop), '--resume']
        + _options(workers, checkpoint_interval=1000),
        procs,
        port + 2,
    )
    periodic_resumed = _start(
        demo_dir,
        [config, '--work-dir', str(periodic), '--resume', str(full / 'iter_2.pth')]
        + _options(workers),
        procs,
        port + 3,
    )
    for result in _wait(resumed, periodic_resumed):
        out = _ok(result)
        assert f'resumed epoch: 0, iter: {STOP_AT}' in out
        assert _hook_warnings(out) == []
    final = full / f'iter_{MAX_ITERS}.pth'
    _assert_same(stop / f'iter_{MAX_ITERS}.pth', final)
    _assert_same(periodic / f'iter_{MAX_ITERS}.pth', final)
    return full


# worker processes: the slow suite (and the DRN-C-26 cases below)
@pytest.mark.parametrize('workers', [0, pytest.param(2, marks=pytest.mark.slow)])
def test_deeplabv3_resumes_bit_exact(demo_dir, tmp_path, workers):
    full = _check_exact_resume(demo_dir, tmp_path, DEEPLABV3, workers)
    if workers == 0:
        _check_stateless_resume(demo_dir, tmp_path, full)


def _check_stateless_resume(demo_dir, tmp_path, full) -> None:
    """A checkpoint saved before the hook existed: mmengine's resume with
    fresh seeding, one warning, and DeepLabV3's dropout draws other numbers."""
    old = _stateless_copy(full / 'iter_2.pth', tmp_path / 'old')
    args = [DEEPLABV3, '--work-dir', str(tmp_path / 'old'), '--resume', old]
    out = _ok(_wait(_start(demo_dir, args + _options(0)))[0])
    assert 'resumed epoch: 0, iter: 2' in out
    warnings = _hook_warnings(out)
    assert len(warnings) == 1, warnings
    assert 'the checkpoint carries no random state' in warnings[0]
    assert 'the continuation is not bit-exact' in warnings[0]
    with pytest.raises(AssertionError, match='tensors differ'):
        _assert_same(tmp_path / 'old' / 'iter_4.pth', full / 'iter_4.pth')


@pytest.mark.slow
@pytest.mark.parametrize('workers', [0, 2])
def test_drn_c_26_resumes_bit_exact(demo_dir, tmp_path, workers):
    _check_exact_resume(demo_dir, tmp_path, DRN_C_26, workers)


@pytest.mark.slow
@pytest.mark.parametrize('config', [DEEPLABV3, DRN_C_26], ids=['deeplabv3', 'drn-c-26'])
def test_two_gloo_processes_resume_bit_exact(demo_dir, tmp_path, config):
    full = _check_exact_resume(demo_dir, tmp_path, config, workers=2, procs=2)
    if config == DEEPLABV3:
        _check_one_process_resume(demo_dir, tmp_path, full)


def _check_one_process_resume(demo_dir, tmp_path, full) -> None:
    """Two processes' checkpoint, one process resuming: trained on with
    fresh seeding (not with one rank's state) and one warning."""
    args = [DEEPLABV3, '--work-dir', str(tmp_path / 'one')]
    args += ['--resume', str(full / 'iter_2.pth'), *_options(2)]
    out = _ok(_wait(_start(demo_dir, args))[0])
    assert 'resumed epoch: 0, iter: 2' in out
    warnings = _hook_warnings(out)
    assert len(warnings) == 1, warnings
    assert 'the checkpoint was saved by 2 processes, this run has 1' in warnings[0]
    assert 'the random state is not restored (fresh seeding)' in warnings[0]
    assert (tmp_path / 'one' / 'iter_4.pth').is_file()

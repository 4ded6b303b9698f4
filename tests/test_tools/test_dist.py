"""tools/dist_train.sh and tools/dist_test.sh on CPU: gloo, 2 processes."""

import re
import socket

import pytest
import torch
from tool_runner import check, run_tool, weights, write_tiny_config


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _miou(output: str) -> float:
    found = re.findall(r'mIoU: ([0-9.]+)', output)
    assert found, output[-3000:]
    return float(found[-1])


# Slow: two full tool runs; the default suite keeps 2-process training
# through test_sync_bn_config_trains_distributed_on_cpu and the pre-emption
# test of tools/dist_train.sh (weights equal to an uninterrupted 2-process run).
@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_total_batch(tmp_path, demo_data):
    """1 process x batch 4 and 2 processes x batch 2 see the same 4 images per
    iteration (InfiniteSampler deals one shuffled sequence round-robin); with
    GroupNorm (no batch statistics) and no random augmentation, DDP's
    averaged gradient is the single-process gradient, so the weights agree
    up to float rounding. The test pass through 2 processes gives the same
    mIoU as through one."""
    kwargs = dict(flip=False, max_iters=3, checkpoint_interval=1)
    single = write_tiny_config(
        tmp_path / 'single.py', demo_data, batch_size=4, **kwargs
    )
    double = write_tiny_config(
        tmp_path / 'double.py', demo_data, batch_size=2, **kwargs
    )
    cwd = str(tmp_path)
    check(run_tool('train.py', [single, '--work-dir', 'one'], cwd))
    out = check(
        run_tool(
            'dist_train.sh',
            [double, '2', '--work-dir', 'two'],
            cwd,
            env=dict(PORT=_free_port()),
        )
    )
    assert 'Distributed training: True' in out
    # the logged runtime environment names the backend in use
    assert "dist_cfg: {'backend': 'gloo'}" in out
    assert 'nccl' not in out
    one, two = (
        weights(tmp_path / 'one' / 'iter_3.pth'),
        weights(tmp_path / 'two' / 'iter_3.pth'),
    )
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    # Not trivially equal: training moved the weights far more than that.
    early = weights(tmp_path / 'one' / 'iter_1.pth')
    moved = max(
        (one[k] - early[k]).abs().max().item()
        for k in one
        if one[k].is_floating_point()
    )
    assert moved > 1e-3

    ckpt = str(tmp_path / 'two' / 'iter_3.pth')
    alone = check(run_tool('test.py', [single, ckpt, '--work-dir', 'test1'], cwd))
    pair = check(
        run_tool(
            'dist_test.sh',
            [single, ckpt, '2', '--work-dir', 'test2'],
            cwd,
            env=dict(PORT=_free_port()),
        )
    )
    assert _miou(pair) == _miou(alone)


# SyncBN -> BN is unit-tested (test_runtime); two gloo processes run in test_faults
@pytest.mark.slow
def test_sync_bn_config_trains_distributed_on_cpu(tmp_path, demo_data):
    """torch's SyncBatchNorm only syncs CUDA tensors: on CPU the tools turn
    SyncBN into BN and the 2-process gloo run trains."""
    config = write_tiny_config(
        tmp_path / 'sbn.py', demo_data, norm='SyncBN', max_iters=2, batch_size=2
    )
    out = check(
        run_tool(
            'dist_train.sh',
            [config, '2', '--work-dir', 'w'],
            str(tmp_path),
            env=dict(PORT=_free_port()),
        )
    )
    assert 'SyncBN -> BN in model.backbone.norm_cfg' in out
    state = weights(tmp_path / 'w' / 'iter_2.pth')
    assert any(k.endswith('running_mean') for k in state)

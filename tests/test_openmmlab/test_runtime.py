import logging
import os
import os.path as osp
import sys

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from mmdrn.openmmlab.hooks import PreemptionHook
from mmdrn.openmmlab.runtime import (
    RELIABILITY_HOOKS,
    init_cpu_dist,
    load_tool_config,
    register_scope,
    revert_sync_bn,
    setup_amp,
    setup_device,
    setup_hooks,
    teardown_distributed,
)


def _cfg(**extra):
    norm = dict(type='SyncBN', requires_grad=True)
    return Config(
        dict(
            model=dict(
                type='EncoderDecoder',
                backbone=dict(type='DRN_C', norm_cfg=norm),
                decode_head=dict(type='FCNHead', norm_cfg=dict(type='MMSyncBN')),
                auxiliary_head=[dict(norm_cfg=dict(type='GN', num_groups=2))],
            ),
            optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
            **extra,
        )
    )


def test_revert_sync_bn_changes_only_sync_norms_and_names_them():
    cfg = _cfg()
    changed = revert_sync_bn(cfg.model)
    assert changed == ['model.backbone.norm_cfg', 'model.decode_head.norm_cfg']
    assert cfg.model.backbone.norm_cfg == dict(type='BN', requires_grad=True)
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.model.auxiliary_head[0].norm_cfg.type == 'GN'
    assert revert_sync_bn(cfg.model) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_setup_device_on_cpu_without_launcher_reverts_sync_bn_only():
    cfg = _cfg()
    assert setup_device(cfg, 'none') == 'cpu'
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert 'model_wrapper_cfg' not in cfg


def test_setup_device_rejects_unknown_launcher():
    with pytest.raises(
        ValueError, match=r"launcher must be one of .*'pytorch'.*got 'k8s'"
    ):
        setup_device(_cfg(), 'k8s')


@pytest.mark.parametrize('launcher', ['none', 'slurm', 'mpi'])
def test_init_cpu_dist_takes_only_the_pytorch_launcher(launcher):
    with pytest.raises(ValueError, match=rf"'pytorch' launcher .* got {launcher!r}"):
        init_cpu_dist(launcher)


def test_register_scope_picks_the_codebase():
    assert register_scope(Config(dict(default_scope='mmpretrain'))) == 'mmpretrain'
    assert register_scope(Config(dict())) == 'mmseg'
    with pytest.raises(ValueError, match=r"default_scope must be one of .*got 'mmdet'"):
        register_scope(Config(dict(default_scope='mmdet')))


def test_setup_amp_per_device():
    cfg = _cfg()
    assert setup_amp(cfg, 'cuda') == 'float16'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = _cfg()
    assert setup_amp(cfg, 'cuda', 'bf16') == 'bfloat16'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    cfg = _cfg()
    assert setup_amp(cfg, 'cpu', 'bf16') == 'bfloat16'
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.lr == 0.1
    with pytest.raises(
        ValueError, match=r"device must be one of \('cuda', 'cpu'\), got 'tpu'"
    ):
        setup_amp(cfg, 'tpu')


def _logged(monkeypatch):
    lines = []
    module = sys.modules[setup_amp.__module__]
    monkeypatch.setattr(
        module,
        'print_log',
        lambda msg, logger=None, level=20: lines.append((msg, level)),
    )
    return lines


def test_setup_amp_auto_on_cpu_follows_the_measurement(
    fake_precision_probe, monkeypatch
):
    logged = _logged(monkeypatch)
    fake_precision_probe(float32=10.0, bfloat16=5.0)
    cfg = _cfg()
    assert setup_amp(cfg, 'cpu', 'auto') == 'bfloat16'
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    ((msg, level),) = logged
    assert level == logging.INFO
    assert msg.startswith('--amp: training in bfloat16 autocast, measured 2.00x')

    logged.clear()
    fake_precision_probe(float32=10.0, bfloat16=20.0)
    cfg = _cfg()
    assert setup_amp(cfg, 'cpu') is None
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    ((msg, level),) = logged
    assert level == logging.WARNING
    assert msg.startswith(
        '--amp: training in float32: bfloat16 autocast measured 0.50x float32 on '
        'this CPU, below the 1.15x it takes (--amp bf16 forces it).'
    )


def test_setup_amp_forced_or_off_ignores_the_measurement(
    fake_precision_probe, monkeypatch
):
    logged = _logged(monkeypatch)
    fake_precision_probe(float32=10.0, bfloat16=20.0)
    cfg = _cfg()
    assert setup_amp(cfg, 'cpu', 'bf16') == 'bfloat16'
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    ((msg, level),) = logged
    assert level == logging.WARNING
    assert (
        '0.50x float32 on this CPU (slower; --amp auto would train in float32)' in msg
    )
    fake_precision_probe(float32=10.0, bfloat16=5.0)
    cfg = _cfg()
    assert setup_amp(cfg, 'cpu', 'off') is None
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    with pytest.raises(ValueError, match="amp 'fp16' needs a CUDA device"):
        setup_amp(cfg, 'cpu', 'fp16')
    with pytest.raises(ValueError, match=r"amp must be one of \('auto', 'bf16', "):
        setup_amp(cfg, 'cpu', 'on')


@pytest.fixture
def torchrun_env(monkeypatch):
    """The variables torchrun sets for a one-process group, and no group yet."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip('a process group already exists in this process')
    for key, value in dict(
        RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1'
    ).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv('MASTER_PORT', str(29600 + os.getpid() % 300))


def test_init_cpu_dist_single_process_gloo(torchrun_env):
    """A one-process gloo group from torchrun-style variables."""
    import torch.distributed as dist

    try:
        init_cpu_dist('pytorch', backend='nccl', timeout=60)
        assert dist.get_backend() == 'gloo'
        assert dist.get_world_size() == 1
        init_cpu_dist('pytorch')  # a second call keeps the existing group
        assert dist.get_world_size() == 1
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
def test_setup_device_distributed_on_cpu_records_the_backend_in_use(torchrun_env):
    """The Runner logs env_cfg: it must say gloo, not the config's nccl."""
    import torch.distributed as dist

    cfg = _cfg(env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60)))
    try:
        assert setup_device(cfg, 'pytorch') == 'cpu'
        assert dist.get_backend() == 'gloo'
        assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=60)
        assert cfg.model_wrapper_cfg.device_ids is None
    finally:
        dist.destroy_process_group()


def _amp_in_rank(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from mmdrn.inference import precision

    # each rank would decide differently, from its own cache file
    times = dict(float32=10.0, bfloat16=5.0 if rank == 0 else 20.0)
    precision.probe_precision = lambda device_type='cpu', **kwargs: dict(times)
    os.environ['MMDRN_PRECISION_CACHE'] = os.path.join(out_dir, f'cache{rank}.json')
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2
    )
    try:
        cfg = _cfg()
        chosen = setup_amp(cfg, 'cpu', 'auto')
        with open(os.path.join(out_dir, f'rank{rank}.txt'), 'w') as f:
            f.write(f'{chosen} {cfg.optim_wrapper.type}')
    finally:
        dist.destroy_process_group()


def test_setup_amp_follows_rank_0_in_a_distributed_run(tmp_path):
    import torch.multiprocessing as mp

    port = 29900 + os.getpid() % 90
    # fork: the children start with this process's imports
    mp.start_processes(
        _amp_in_rank, args=(port, str(tmp_path)), nprocs=2, start_method='fork'
    )
    for rank in (0, 1):
        text = (tmp_path / f'rank{rank}.txt').read_text()
        assert text == 'bfloat16 CPUAmpOptimWrapper'
    assert (tmp_path / 'cache0.json').exists()
    assert not (tmp_path / 'cache1.json').exists()  # rank 1 did not measure


def test_load_tool_config_merges_options_and_picks_the_work_dir(tmp_path):
    config = tmp_path / 'my_config.py'
    config.write_text("model = dict(type='M', depth=1)\n")
    cfg = load_tool_config(str(config), {'model.depth': 3}, 'pytorch')
    assert cfg.model.depth == 3 and cfg.launcher == 'pytorch'
    assert cfg.work_dir == osp.join('work_dirs', 'my_config')
    cfg = load_tool_config(str(config), work_dir=str(tmp_path / 'out'))
    assert cfg.work_dir == str(tmp_path / 'out') and cfg.launcher == 'none'
    config.write_text("work_dir = 'from_config'\n")
    assert load_tool_config(str(config)).work_dir == 'from_config'
    with pytest.raises(ValueError, match='launcher must be one of'):
        load_tool_config(str(config), launcher='torchrun')


def test_teardown_distributed_destroys_the_group_also_on_errors(tmp_path):
    init = f'file://{tmp_path / "store"}'
    dist.init_process_group('gloo', init_method=init, rank=0, world_size=1)
    with pytest.raises(RuntimeError, match='boom'):
        with teardown_distributed():
            assert dist.is_initialized()
            raise RuntimeError('boom')
    assert not dist.is_initialized()
    with teardown_distributed():  # nothing to tear down: no error
        pass


def test_setup_hooks_adds_what_the_runtime_base_lists_once():
    cfg = Config(dict(custom_hooks=[dict(type='EMAHook')]))
    added = setup_hooks(cfg)
    assert added == [hook['type'] for hook in RELIABILITY_HOOKS]
    assert cfg.custom_hooks == [dict(type='EMAHook'), *RELIABILITY_HOOKS]
    assert setup_hooks(cfg) == []  # present: kept as the config has them
    assert len(cfg.custom_hooks) == 1 + len(RELIABILITY_HOOKS)


def test_setup_hooks_flags_edit_the_config_entries():
    cfg = Config(dict(custom_hooks=[dict(type='PreemptionHook', signals=['SIGTERM'])]))
    setup_hooks(cfg, signals=['USR1', 'SIGTERM'])
    preempt = [h for h in cfg.custom_hooks if h['type'] == 'PreemptionHook']
    assert preempt == [dict(type='PreemptionHook', signals=['SIGTERM', 'SIGUSR1'])]
    setup_hooks(cfg, preempt=False)
    assert 'PreemptionHook' not in [h['type'] for h in cfg.custom_hooks]
    only = Config(dict())
    assert setup_hooks(only, only=['CheckpointCompatHook']) == ['CheckpointCompatHook']
    built = Config(dict(custom_hooks=[PreemptionHook()]))
    with pytest.raises(TypeError, match='holds a built PreemptionHook'):
        setup_hooks(built, signals=['USR1'])
    built.custom_hooks[0].after_run(None)  # its signal handlers back


def test_runtime_base_config_lists_the_same_hooks():
    here = osp.dirname(osp.abspath(__file__))
    base = osp.join(here, '..', '..', 'configs', '_base_', 'mmdrn_runtime.py')
    assert Config.fromfile(base).custom_hooks == list(RELIABILITY_HOOKS)

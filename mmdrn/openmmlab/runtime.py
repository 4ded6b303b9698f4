"""What mmdrn's tools do to a config before ``Runner.from_cfg``.

Each function turns a flag of ``tools/train.py`` or ``tools/test.py`` into
config fields, so the config alone (also under MMSegmentation's or
mmpretrain's own tools) says how a run behaves. :func:`setup_device` makes
any config run on CPU, also distributed.
"""

import contextlib
import copy
import datetime
import logging
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log

from mmdrn.inference.precision import (
    MIN_SPEEDUP,
    PrecisionDecision,
    precision_decision,
)
from mmdrn.utils.validation import check_choice

from .hooks.preemption import parse_signal
from .registry import KNOWN_SCOPES

__all__ = [
    'AMP_MODES',
    'LAUNCHERS',
    'RELIABILITY_HOOKS',
    'init_cpu_dist',
    'load_tool_config',
    'register_scope',
    'revert_sync_bn',
    'setup_amp',
    'setup_device',
    'setup_hooks',
    'teardown_distributed',
]

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: ``--amp`` choices: measured choice, forced bfloat16 / float16, float32.
AMP_MODES = ('auto', 'bf16', 'fp16', 'off')
_SYNC_NORMS = ('SyncBN', 'MMSyncBN')
#: The ``custom_hooks`` of ``configs/_base_/mmdrn_runtime.py``, in its order
#: (a test checks that they agree).
RELIABILITY_HOOKS = (
    dict(
        type='CheckpointCompatHook',
        mmengine_checkpoints=True,
        safe_loading=True,
        atomic_checkpoints=True,
    ),
    dict(type='NaNGuardHook'),
    dict(type='PreemptionHook', signals=['SIGTERM']),
    dict(type='RNGStateHook'),
)


def _hook_index(hooks: List[Any], kind: str) -> Optional[int]:
    for index, hook in enumerate(hooks):
        name = hook.get('type') if isinstance(hook, dict) else type(hook).__name__
        if getattr(name, '__name__', name) == kind:
            return index
    return None


def setup_hooks(
    cfg: Config,
    preempt: bool = True,
    signals: Sequence[str] = (),
    only: Sequence[str] = (),
) -> List[str]:
    """Add the reliability hooks a config lacks; apply the pre-emption flags.

    Args:
        cfg (Config): The config, changed in place.
        preempt (bool): False (``--no-preempt``) removes the
            ``PreemptionHook``: SIGTERM then ends training at once, unsaved.
            Default: True.
        signals (Sequence[str]): Signals besides the hook's own that request a
            checkpoint (``--preempt-signal``). Default: ().
        only (Sequence[str]): Add only these hook types (``tools/test.py``
            needs the checkpoint compatibility alone). Default: all of
            :data:`RELIABILITY_HOOKS`.

    Returns:
        list[str]: The hook types added, for the log.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    added = []
    for hook in RELIABILITY_HOOKS:
        kind = hook['type']
        if (only and kind not in only) or _hook_index(hooks, kind) is not None:
            continue
        if kind == 'PreemptionHook' and not preempt:
            continue
        hooks.append(copy.deepcopy(hook))
        added.append(kind)
    index = _hook_index(hooks, 'PreemptionHook')
    if index is not None and not preempt:
        hooks.pop(index)
    elif index is not None and signals:
        hook = hooks[index]
        if not isinstance(hook, dict):
            raise TypeError(
                f'--preempt-signal edits the PreemptionHook entry of custom_hooks, '
                f'but the config holds a built {type(hook).__name__}; name the '
                f'signals in its constructor instead'
            )
        wanted = list(hook.get('signals', ['SIGTERM'])) + list(signals)
        hook['signals'] = list(dict.fromkeys(parse_signal(s).name for s in wanted))
    cfg.custom_hooks = hooks
    if added:
        print_log(f'added to custom_hooks: {", ".join(added)}', 'current')
    return added


def load_tool_config(
    config: str,
    cfg_options: Optional[Dict[str, Any]] = None,
    launcher: str = 'none',
    work_dir: Optional[str] = None,
) -> Config:
    """Read a config the way ``tools/train.py`` and ``tools/test.py`` do.

    Args:
        config (str): The config file.
        cfg_options (dict, optional): ``--cfg-options``, merged in.
            Default: None.
        launcher (str): One of :data:`LAUNCHERS`. Default: ``'none'``.
        work_dir (str, optional): ``--work-dir``; without it the config's own
            ``work_dir``, else ``work_dirs/<config file name>`` (MMSeg's
            rule). Default: None.

    Returns:
        Config: The config with ``launcher`` and ``work_dir`` set.

    Raises:
        ValueError: ``launcher`` is not one of :data:`LAUNCHERS`.
    """
    check_choice('launcher', launcher, LAUNCHERS)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


@contextlib.contextmanager
def teardown_distributed() -> Iterator[None]:
    """Destroy the process group when the block ends, however it ends.

    Left to the interpreter's exit, gloo's threads can abort a process that
    finished successfully ('terminate called without an active exception').
    """
    try:
        yield
    finally:
        if torch_dist.is_available() and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def register_scope(cfg: Config) -> str:
    """Register every module of the codebase named by ``cfg.default_scope``.

    Args:
        cfg (Config): The config; ``default_scope`` defaults to ``'mmseg'``.

    Returns:
        str: The scope, ``'mmseg'`` or ``'mmpretrain'``.

    Raises:
        ValueError: ``default_scope`` is another codebase.
    """
    scope = check_choice(
        'default_scope', cfg.get('default_scope', 'mmseg'), KNOWN_SCOPES
    )
    if scope == 'mmseg':
        from mmseg.utils import register_all_modules
    else:
        from mmpretrain.utils import register_all_modules
    # The Runner sets the default scope itself, from the same field.
    register_all_modules(init_default_scope=False)
    return scope


def revert_sync_bn(node: Any, path: str = 'model') -> List[str]:
    """Turn every SyncBN norm config below ``node`` into BN, in place.

    Args:
        node (Any): A config (sub)tree: dicts, lists and values.
        path (str): Name of ``node``, used in the returned paths.
            Default: ``'model'``.

    Returns:
        list[str]: Dotted paths of the norm configs that were changed.
    """
    changed = []
    if isinstance(node, dict):
        if node.get('type') in _SYNC_NORMS:
            node['type'] = 'BN'
            changed.append(path)
        for key, value in node.items():
            changed += revert_sync_bn(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            changed += revert_sync_bn(value, f'{path}[{index}]')
    return changed


def _shared_decision() -> PrecisionDecision:
    """The CPU precision decision; rank 0's in a distributed run.

    Processes measuring at once would slow each other down and could decide
    differently; rank 0 measures (or reads its cache) and the others take
    its decision.
    """
    if not (torch_dist.is_initialized() and torch_dist.get_world_size() > 1):
        return precision_decision('cpu')
    box = [precision_decision('cpu') if torch_dist.get_rank() == 0 else None]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def _setup_cuda_amp(wrapper: Dict[str, Any], amp: str) -> str:
    # mmengine's AmpOptimWrapper, as MMSegmentation's --amp sets it
    if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        print_log('AMP is already on in the config', 'current', logging.WARNING)
        return wrapper.get('dtype') or 'float16'
    wrapper.type = 'AmpOptimWrapper'
    wrapper.loss_scale = 'dynamic'
    if amp == 'bf16':
        wrapper.dtype = 'bfloat16'
    return wrapper.get('dtype') or 'float16'


def _setup_cpu_amp(wrapper: Dict[str, Any], amp: str) -> Optional[str]:
    # mmengine refuses AmpOptimWrapper without a GPU; bfloat16 needs no loss
    # scaling (it has float32's range).
    if amp == 'fp16':
        raise ValueError(
            "amp 'fp16' needs a CUDA device; on CPU use 'bf16', 'auto' or 'off'"
        )
    decision = _shared_decision()
    speed = decision.speedup(torch.bfloat16)
    if amp == 'auto' and decision.dtype != torch.bfloat16:
        print_log(
            f'--amp: training in float32: bfloat16 autocast measured '
            f'{speed:.2f}x float32 on this CPU, below the {MIN_SPEEDUP}x '
            f'it takes (--amp bf16 forces it). {decision.reason}',
            'current',
            logging.WARNING,
        )
        return None
    wrapper.type = 'CPUAmpOptimWrapper'
    # Options of the CUDA wrapper mean nothing to the CPU one.
    wrapper.pop('loss_scale', None)
    wrapper.pop('dtype', None)
    slower = speed < 1
    print_log(
        f'--amp: training in bfloat16 autocast, measured {speed:.2f}x float32 '
        f'on this CPU{" (slower; --amp auto would train in float32)" * slower}. '
        f'{decision.reason}',
        'current',
        logging.WARNING if slower else logging.INFO,
    )
    return 'bfloat16'


def setup_amp(cfg: Config, device: str, amp: str = 'auto') -> Optional[str]:
    """Turn on automatic mixed precision for training (``--amp``).

    On CUDA: mmengine's ``AmpOptimWrapper``, float16 with dynamic loss
    scaling for ``'auto'`` and ``'fp16'`` (what MMSegmentation's ``--amp``
    does), bfloat16 for ``'bf16'``. On CPU: bfloat16 autocast in
    :class:`~mmdrn.openmmlab.optim_wrapper.CPUAmpOptimWrapper`, for
    ``'auto'`` only where
    :func:`~mmdrn.inference.precision.precision_decision` measured it faster
    than float32 (every process follows rank 0's measurement); the log says
    which and why.

    Args:
        cfg (Config): The config, changed in place.
        device (str): ``'cuda'`` or ``'cpu'``.
        amp (str): One of :data:`AMP_MODES`. Default: ``'auto'``.

    Returns:
        str | None: The training precision set, ``'float16'`` or
        ``'bfloat16'``; None when training stays in float32.

    Raises:
        ValueError: ``device`` or ``amp`` is unknown, or ``'fp16'`` on CPU.
    """
    check_choice('amp', amp, AMP_MODES)
    check_choice('device', device, ('cuda', 'cpu'))
    if amp == 'off':
        return None
    if device == 'cuda':
        return _setup_cuda_amp(cfg.optim_wrapper, amp)
    return _setup_cpu_amp(cfg.optim_wrapper, amp)


def setup_device(cfg: Config, launcher: str) -> str:
    """Adapt a config to the machine it runs on.

    With CUDA the config is left as it is. Without, SyncBN layers become BN
    (torch's SyncBatchNorm only synchronises CUDA tensors), and for a
    distributed run the process group is initialised with gloo before the
    Runner is built (:func:`init_cpu_dist`; mmengine then uses that group and
    ``env_cfg.dist_cfg.backend`` says so) and DDP is told not to expect GPU
    ``device_ids``.

    Args:
        cfg (Config): The config, changed in place.
        launcher (str): One of :data:`LAUNCHERS`.

    Returns:
        str: ``'cuda'`` or ``'cpu'``.
    """
    check_choice('launcher', launcher, LAUNCHERS)
    if torch.cuda.is_available():
        return 'cuda'
    changed = revert_sync_bn(cfg.model)
    if changed:
        print_log(
            f'No CUDA device: SyncBN -> BN in {", ".join(changed)}',
            'current',
            logging.WARNING,
        )
    if launcher != 'none':
        cfg.pop('sync_bn', None)
        env_cfg = cfg.setdefault('env_cfg', {})
        dist_cfg = env_cfg.setdefault('dist_cfg', {})
        init_cpu_dist(launcher, **dist_cfg)
        # The Runner logs env_cfg: it must name the backend in use, not the
        # config's 'nccl' that CPU processes cannot use.
        dist_cfg['backend'] = torch_dist.get_backend()
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )
        # mmengine passes device_ids=[LOCAL_RANK] unless the config says
        # otherwise, and DDP rejects device ids for a CPU module.
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    return 'cpu'


def init_cpu_dist(launcher: str, backend: str = 'gloo', **kwargs: Any) -> None:
    """Initialise the default process group for CPU processes (gloo).

    The workaround for mmengine's ``init_dist``, which calls
    ``torch.cuda.set_device`` and so fails without CUDA. Only the ``pytorch``
    launcher (torchrun, ``tools/dist_train.sh``) is supported on CPU; it puts
    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the
    environment. Does nothing when a process group already exists.

    Args:
        launcher (str): ``'pytorch'``.
        backend (str): Ignored unless ``'gloo'`` or ``'mpi'``: configs name
            ``'nccl'`` for GPUs, which cannot carry CPU tensors. Default:
            ``'gloo'``.
        **kwargs: Other ``dist_cfg`` fields; ``timeout`` (seconds) is used.

    Raises:
        ValueError: Another launcher.
    """
    check_choice('launcher', launcher, LAUNCHERS)
    if launcher != 'pytorch':
        raise ValueError(
            f"without CUDA, distributed runs use the 'pytorch' launcher "
            f'(torchrun, tools/dist_train.sh; under slurm: srun ... torchrun), got '
            f"{launcher!r}: mmengine's {launcher} setup needs a GPU"
        )
    if torch_dist.is_initialized():
        return
    options = {}
    if kwargs.get('timeout') is not None:
        options['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch_dist.init_process_group(
        backend=backend if backend in ('gloo', 'mpi') else 'gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **options,
    )

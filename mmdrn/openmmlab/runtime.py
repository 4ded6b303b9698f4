"""What mmdrn's tools do to a config before ``Runner.from_cfg``.

``tools/train.py`` and ``tools/test.py`` are argument parsing plus these
calls; each turns a flag into config fields, so a config alone (also under
MMSegmentation's or mmpretrain's own tools) says how a run behaves:

* the config is read as both tools read it (:func:`load_tool_config`) and the
  process group is torn down when they end (:func:`teardown_distributed`);
* the codebase is chosen from ``default_scope`` (:func:`register_scope`);
* the reliability hooks of ``configs/_base_/mmdrn_runtime.py`` are added to a
  config that lacks them, and ``--no-preempt`` / ``--preempt-signal`` edit
  them (:func:`setup_hooks`);
* ``--amp``, ``--show-dir`` and ``--out`` become config fields as in
  MMSegmentation's and mmpretrain's tools, ``--amp`` on CPU by a measurement
  of whether bfloat16 is faster there;
* any config runs on CPU, also distributed. mmengine's ``init_dist`` calls
  ``torch.cuda.set_device`` for every launcher, which fails without CUDA; so
  on CPU the process group is initialised with gloo before the Runner is
  built (mmengine then uses it), SyncBN becomes BN (torch's SyncBatchNorm only
  synchronises CUDA tensors) and DDP is built without ``device_ids``. On a
  GPU nothing changes.
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
    'setup_out',
    'setup_show_dir',
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


def _check_launcher(launcher: str) -> None:
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')


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
    _check_launcher(launcher)
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
    scope = cfg.get('default_scope', 'mmseg')
    if scope == 'mmseg':
        from mmseg.utils import register_all_modules
    elif scope == 'mmpretrain':
        from mmpretrain.utils import register_all_modules
    else:
        raise ValueError(f'default_scope must be one of {KNOWN_SCOPES}, got {scope!r}')
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


def setup_amp(cfg: Config, device: str, amp: str = 'auto') -> Optional[str]:
    """Turn on automatic mixed precision for training (``--amp``).

    On CUDA this is mmengine's ``AmpOptimWrapper``: float16 with dynamic
    loss scaling for ``'auto'`` and ``'fp16'`` (what MMSegmentation's
    ``--amp`` does), bfloat16 for ``'bf16'``. mmengine refuses that wrapper
    without a GPU, so on CPU bfloat16 runs in
    :class:`~mmdrn.openmmlab.optim_wrapper.CPUAmpOptimWrapper` (bfloat16
    autocast; no loss scaling, bfloat16 has float32's range). bfloat16 is
    several times faster than float32 on some CPUs and slower on others, so
    on CPU ``'auto'`` trains in bfloat16 only where
    :func:`~mmdrn.inference.precision.precision_decision` measured it faster,
    and says so in the log either way. In a distributed run every process
    follows rank 0's measurement.

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
    if amp not in AMP_MODES:
        raise ValueError(f'amp must be one of {AMP_MODES}, got {amp!r}')
    if device not in ('cuda', 'cpu'):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    if amp == 'off':
        return None
    wrapper = cfg.optim_wrapper
    if device == 'cuda':
        return _setup_cuda_amp(wrapper, amp)
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


def setup_device(cfg: Config, launcher: str) -> str:
    """Adapt a config to the machine it runs on.

    With CUDA the config is left as it is. Without, SyncBN layers become BN,
    and for a distributed run the process group is initialised with gloo
    (``env_cfg.dist_cfg.backend`` then says so) and DDP is told not to
    expect GPU ``device_ids``.

    Args:
        cfg (Config): The config, changed in place.
        launcher (str): One of :data:`LAUNCHERS`.

    Returns:
        str: ``'cuda'`` or ``'cpu'``.
    """
    _check_launcher(launcher)
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
    _check_launcher(launcher)
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


def setup_show_dir(
    cfg: Config,
    scope: str,
    show_dir: Optional[str],
    show: bool = False,
    wait_time: float = 2.0,
) -> None:
    """Make testing draw (and save, or show) its predictions.

    MMSeg: the ``SegVisualizationHook`` draws every ``interval``-th test
    image (as configured), and the ``SegLocalVisualizer`` saves the pictures
    under ``show_dir/vis_data/vis_image``.
    mmpretrain: its ``VisualizationHook`` writes to ``show_dir``.

    Args:
        cfg (Config): The config, changed in place.
        scope (str): ``'mmseg'`` or ``'mmpretrain'``.
        show_dir (str, optional): Where pictures go. ``None`` with
            ``show=False`` leaves the config alone.
        show (bool): Show pictures in a window. Default: False.
        wait_time (float): Seconds each shown picture stays. Default: 2.

    Raises:
        ValueError: ``scope`` is unknown.
        KeyError: The config has no ``default_hooks.visualization``.
    """
    if show_dir is None and not show:
        return
    if scope not in KNOWN_SCOPES:
        raise ValueError(f'scope must be one of {KNOWN_SCOPES}, got {scope!r}')
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise KeyError('the config has no default_hooks.visualization to draw with')
    if scope == 'mmseg':
        hook.draw = True
        if show_dir is not None:
            cfg.visualizer.save_dir = show_dir
    else:
        hook.enable = True
        if show_dir is not None:
            hook.out_dir = show_dir
    if show:
        hook.show = True
        hook.wait_time = wait_time


def setup_out(cfg: Config, scope: str, out: Optional[str]) -> None:
    """Keep the test predictions.

    MMSeg: ``IoUMetric`` writes each prediction as a PNG into ``out``
    (a directory). mmpretrain: a ``DumpResults`` metric pickles them to
    ``out`` (a file).

    Args:
        cfg (Config): The config, changed in place.
        scope (str): ``'mmseg'`` or ``'mmpretrain'``.
        out (str, optional): Output directory (MMSeg) or file (mmpretrain).

    Raises:
        ValueError: ``scope`` is unknown.
    """
    if out is None:
        return
    if scope == 'mmseg':
        evaluators = cfg.test_evaluator
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            evaluator['output_dir'] = out
            evaluator['keep_results'] = True
    elif scope == 'mmpretrain':
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, list) else [evaluators]
        evaluators.append(dict(type='DumpResults', out_file_path=out))
        cfg.test_evaluator = evaluators
    else:
        raise ValueError(f'scope must be one of {KNOWN_SCOPES}, got {scope!r}')

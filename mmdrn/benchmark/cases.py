"""What the benchmark measures: models, cases, and running them.

A *case* is a plain dict (JSON-serialisable, so a worker process can run it)
naming one measurement: ``spec`` (the model), ``role`` (``'model'``,
``'plain'``, ``'backbone'`` or ``'baseline'``), ``task`` (``'infer'`` or
``'train'``), ``variant`` (``'eager'``, ``'fast'``, ``'compile'``),
``dtype``, ``memory_format``, ``with_cp``, ``shape``, ``batch``, ``device``,
``warmup``, ``repeat``, ``max_seconds``, ``count_flops`` and ``threads``.

Model specs: an mmdrn config file (MMSeg or mmpretrain; ``'tensor'`` mode,
i.e. logits at the output stride), ``backbone:CONFIG`` (its backbone alone),
``plain:MODEL`` (:func:`plain_reference` of the DRN inside MODEL), MMSeg's
dilated ResNet baselines ``resnet18-d8`` / ``resnet50-d8`` (``ResNetV1c``
with strides 1,2,1,1 and dilations 1,1,2,4, as in MMSeg's ``*-d8`` configs),
or a timm model name (``timm.create_model(name, num_classes=0,
global_pool='')``: the dense feature map).

A training step is forward, loss, backward and an SGD step through an
mmengine optimizer wrapper (``OptimWrapper``; with bf16/fp16:
``AmpOptimWrapper`` on GPU, :class:`mmdrn.openmmlab.engine.CPUAmpOptimWrapper` on CPU).
Configs run their own ``train_step`` on random images and labels; other
models get a 1x1 convolution classifier with a cross-entropy loss.

Only torch is imported here at module level; timm, mmengine and the
OpenMMLab codebases are imported by the functions that need them.
"""

import contextlib
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from itertools import product
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .measure import MMAP_THRESHOLD_BYTES, measure_memory, time_and_measure, time_call

__all__ = [
    'D8_BASELINES',
    'DTYPES',
    'MEMORY_FORMATS',
    'TASKS',
    'VARIANTS',
    'build_model',
    'count_flops',
    'find_drn',
    'is_config',
    'make_cases',
    'plain_reference',
    'prepare_case',
    'run_case',
    'run_interleaved',
    'run_isolated',
]

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MEMORY_FORMATS = ('contiguous', 'channels_last')
VARIANTS = ('eager', 'fast', 'compile')
TASKS = ('infer', 'train')
D8_BASELINES = {'resnet18-d8': 18, 'resnet50-d8': 50}
NUM_CLASSES = 19
RESULT_TAG = 'BENCHMARK_RESULT '
Case = Dict[str, Any]


# --------------------------------------------------------------------------
# the plain reference
# --------------------------------------------------------------------------
class Residual(nn.Module):
    """``relu(body(x) + shortcut(x))``: the only non-Sequential piece."""

    def __init__(self, body: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.body(x) + self.shortcut(x))


def _plain_module(m: nn.Module) -> Optional[nn.Module]:
    if isinstance(m, nn.Conv2d):
        new: nn.Module = nn.Conv2d(
            m.in_channels,
            m.out_channels,
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            m.groups,
            m.bias is not None,
        )
    elif isinstance(m, nn.modules.batchnorm._BatchNorm):
        new = nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine)
    elif isinstance(m, nn.ReLU):
        return nn.ReLU(inplace=True)
    elif isinstance(m, nn.MaxPool2d):
        return nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation)
    elif isinstance(m, nn.Identity):
        return None
    else:
        raise ValueError(
            f'the plain reference knows Conv2d, BatchNorm2d, ReLU and '
            f'MaxPool2d layers, got {type(m).__name__}'
        )
    new.load_state_dict(m.state_dict())
    return new


def _plain_seq(modules: Sequence[nn.Module]) -> List[nn.Module]:
    layers = [_plain_module(m) for m in modules]
    return [m for m in layers if m is not None]


def plain_reference(drn: nn.Module) -> nn.Sequential:
    """The DRN's feature extractor as bare ``nn.Sequential`` layers.

    Built from copies of the same weights as a flat sequence of stem layers
    and blocks; a residual block becomes ``Residual(Sequential(...),
    shortcut)``. Its output equals ``drn.forward_features(x)``. It reads only
    the DRN's public structure: :meth:`~mmdrn.backbones.drn.DRN.stem`,
    :meth:`~mmdrn.backbones.drn.DRN.levels` and the blocks' fyu/drn-named
    layers (``conv1``, ``bn1``, ``act1`` ..., ``downsample``, ``residual``).

    Args:
        drn (nn.Module): A :class:`mmdrn.backbones.drn.DRN` (or subclass)
            with ReLU activations.

    Returns:
        nn.Sequential: The reference, in the mode of ``drn``.
    """
    from ..backbones.drn import DRN, BasicBlock, Bottleneck, ConvLevel

    if not isinstance(drn, DRN):
        raise TypeError(f'drn must be a mmdrn DRN, got {type(drn).__name__}')
    layers: List[nn.Module] = []
    for stem in drn.stem():
        layers += _plain_seq(list(stem) if isinstance(stem, ConvLevel) else [stem])
    for level in drn.levels():
        if isinstance(level, ConvLevel):
            layers += _plain_seq(list(level))
            continue
        for block in level:
            if isinstance(block, Bottleneck):
                body = [block.conv1, block.bn1, block.act1, block.conv2, block.bn2]
                body += [block.act2, block.conv3, block.bn3]
            elif isinstance(block, BasicBlock):
                body = [block.conv1, block.bn1, block.act1, block.conv2, block.bn2]
            else:
                raise TypeError(f'unknown DRN block {type(block).__name__}')
            if isinstance(block, BasicBlock) and not block.residual:
                layers += _plain_seq(body + [block.act2])
                continue
            shortcut = (
                nn.Sequential(*_plain_seq(list(block.downsample)))
                if block.downsample is not None
                else nn.Identity()
            )
            layers.append(Residual(nn.Sequential(*_plain_seq(body)), shortcut))
    return nn.Sequential(*layers).train(drn.training)


def find_drn(model: nn.Module) -> nn.Module:
    """The first :class:`mmdrn.backbones.drn.DRN` inside ``model``."""
    from ..backbones.drn import DRN

    for m in model.modules():
        if isinstance(m, DRN):
            return m
    raise ValueError(
        f'plain: needs a model with a mmdrn DRN inside, {type(model).__name__} has none'
    )


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def is_config(spec: str) -> bool:
    """Whether a model spec names a config file."""
    return spec.endswith('.py')


def load_config(path: str, with_cp: bool, shape: Tuple[int, int]) -> Any:
    """A config for benchmarking: no checkpoint loading, no padding."""
    from mmengine.config import Config

    if not osp.isfile(path):
        raise ValueError(f'config file not found: {path!r}')
    cfg = Config.fromfile(path)
    if with_cp:
        cfg.model.backbone.with_cp = True
    # Weights do not change the timing; never download or read checkpoints.
    cfg.model.backbone.pop('init_cfg', None)
    preprocessor = cfg.model.get('data_preprocessor')
    if preprocessor is not None and preprocessor.get('size') is not None:
        preprocessor['size'] = tuple(shape)  # no padding up to the crop size
    return cfg


def build_config_model(cfg: Any) -> Tuple[nn.Module, str]:
    """Build a config's model (SyncBN reverted to BN); return it and its scope."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    from ..openmmlab.engine import register_scope

    scope = register_scope(cfg)
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    # one process: SyncBN needs a process group, BN computes the same
    return revert_sync_batchnorm(MODELS.build(cfg.model)), scope


def _build_d8(depth: int, with_cp: bool) -> nn.Module:
    import mmseg.models  # noqa: F401  (registers ResNetV1c)
    from mmseg.registry import MODELS

    return MODELS.build(
        dict(
            type='ResNetV1c',
            depth=depth,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            contract_dilation=True,
            with_cp=with_cp,
        )
    )


def build_model(spec: str, with_cp: bool, shape: Tuple[int, int]) -> Dict[str, Any]:
    """Build the network named by ``spec`` (see the module docstring).

    Args:
        spec (str): A config path (``*.py``), ``backbone:CONFIG``,
            ``plain:MODEL``, a baseline (``resnet18-d8``, ``resnet50-d8``) or a
            timm model name.
        with_cp (bool): Gradient checkpointing.
        shape (tuple[int, int]): Input height and width.

    Returns:
        dict: ``model`` and ``kind`` (``'tensor'``: called as ``model(x)``,
        trained with a 1x1 classifier; ``'mmseg'``/``'mmpretrain'``: a
        config model, trained with its own ``train_step``).
    """
    import timm

    import mmdrn  # noqa: F401  (drn_* timm models)

    if spec.startswith('plain:'):
        if with_cp:
            raise ValueError('plain: references have no with_cp')
        inner = build_model(spec[len('plain:') :], False, shape)['model']
        return dict(model=plain_reference(find_drn(inner)), kind='tensor')
    if spec.startswith('backbone:'):
        cfg = load_config(spec[len('backbone:') :], with_cp, shape)
        return dict(model=build_config_model(cfg)[0].backbone, kind='tensor')
    if is_config(spec):
        model, scope = build_config_model(load_config(spec, with_cp, shape))
        return dict(model=model, kind=scope)
    if spec in D8_BASELINES:
        return dict(model=_build_d8(D8_BASELINES[spec], with_cp), kind='tensor')
    try:
        model = timm.create_model(spec, num_classes=0, global_pool='')
    except RuntimeError as err:
        raise ValueError(
            f'model must be a config file (*.py), backbone:CONFIG, plain:MODEL, '
            f'one of {sorted(D8_BASELINES)} or a timm model name, got {spec!r} '
            f'({err})'
        ) from err
    if with_cp:
        model.set_grad_checkpointing(True)
    return dict(model=model, kind='tensor')


def has_drn(spec: str) -> bool:
    """Whether the model named by ``spec`` is (or contains) an mmdrn DRN."""
    if is_config(spec):
        with contextlib.suppress(Exception):
            cfg = load_config(spec, False, (64, 64))
            return 'DRN' in str(cfg.model.backbone.type)
        return False
    return spec.startswith('drn_')


def _last_map(out: Any) -> torch.Tensor:
    while isinstance(out, (list, tuple)):
        out = out[-1]
    return out


def count_flops(model: nn.Module, x: torch.Tensor) -> Dict[str, float]:
    """mmengine's complexity analysis of ``model(x)``: ``macs`` and ``params``."""
    from mmengine.analysis import get_model_complexity_info

    # MMSeg's ResNet.train() returns None: no chaining of eval()
    model = copy.deepcopy(model)
    model.eval()
    # mmengine's analyzer walks _modules and fails on None entries (MMSeg's
    # ResNet has some); as plain attributes they read the same in forward
    for module in list(model.modules()):
        for name in [k for k, v in module._modules.items() if v is None]:
            del module._modules[name]
            object.__setattr__(module, name, None)
    with torch.no_grad():
        info = get_model_complexity_info(
            model, inputs=(x,), show_table=False, show_arch=False
        )
    return dict(macs=float(info['flops']), params=float(info['params']))


# --------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------
def _optim_wrapper(model: nn.Module, dtype: torch.dtype, device: str) -> Any:
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if dtype == torch.float32:
        return OptimWrapper(optimizer)
    if device == 'cuda':
        return AmpOptimWrapper(optimizer=optimizer, dtype=dtype)
    from ..openmmlab.engine import CPUAmpOptimWrapper

    return CPUAmpOptimWrapper(optimizer=optimizer)


def _random_images(batch: int, shape: Tuple[int, int], device: str) -> List[Any]:
    return [
        torch.randint(0, 256, (3, *shape), dtype=torch.uint8, device=device)
        for _ in range(batch)
    ]


def _seg_batch(
    batch: int, shape: Tuple[int, int], num_classes: int, device: str
) -> Dict[str, Any]:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for _ in range(batch):
        sample = SegDataSample(
            metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape)
        )
        labels = torch.randint(0, num_classes, (1, *shape), device=device)
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return dict(inputs=_random_images(batch, shape, device), data_samples=samples)


def _cls_batch(
    batch: int, shape: Tuple[int, int], num_classes: int, device: str
) -> Dict[str, Any]:
    from mmpretrain.structures import DataSample

    samples = [
        DataSample().set_gt_label(int(torch.randint(0, num_classes, ())))
        for _ in range(batch)
    ]
    return dict(inputs=_random_images(batch, shape, device), data_samples=samples)


def _num_classes(model: nn.Module) -> int:
    head = getattr(model, 'decode_head', None) or getattr(model, 'head', None)
    return int(getattr(head, 'num_classes', NUM_CLASSES))


def _train_step_fn(
    built: Dict[str, Any], case: Case, x: torch.Tensor, dtype: torch.dtype
) -> Callable[[], None]:
    model, kind, device = built['model'], built['kind'], case['device']
    if kind == 'tensor':
        with torch.no_grad():
            probe = copy.deepcopy(model)
            probe.eval()
            out = _last_map(probe(x[:1, :, :64, :64]))
        model = nn.Sequential(model, nn.Conv2d(out.shape[1], NUM_CLASSES, 1).to(device))
    if case['memory_format'] == 'channels_last':
        model.to(memory_format=torch.channels_last)
    model.train()
    wrapper = _optim_wrapper(model, dtype, device)
    if kind in ('mmseg', 'mmpretrain'):
        make_batch = _seg_batch if kind == 'mmseg' else _cls_batch
        data = make_batch(
            case['batch'], tuple(case['shape']), _num_classes(model), device
        )
        return lambda: model.train_step(data, wrapper)

    def step() -> None:
        with wrapper.optim_context(model):
            logits = model[1](_last_map(model[0](x)))
            labels = torch.randint(
                0, NUM_CLASSES, (logits.shape[0], *logits.shape[2:]), device=device
            )
            loss = F.cross_entropy(logits.float(), labels)
        wrapper.update_params(loss)

    return step


def _infer_fn(
    built: Dict[str, Any], case: Case, x: torch.Tensor, dtype: torch.dtype
) -> Callable[[], Any]:
    model = built['model']
    model.eval()
    channels_last = case['memory_format'] == 'channels_last'
    if case['variant'] == 'eager':
        if channels_last:
            model.to(memory_format=torch.channels_last)
        autocast = (
            contextlib.nullcontext()
            if dtype == torch.float32
            else torch.autocast(case['device'], dtype=dtype)
        )

        def run() -> None:
            with torch.no_grad(), autocast:
                model(x)

        return run
    from ..inference import optimize_for_inference

    fast = optimize_for_inference(
        model,
        dtype=dtype,
        channels_last=channels_last,
        fold_bn=True,
        compile=case['variant'] == 'compile',
        inplace=True,
    )
    return lambda: fast(x)


def prepare_case(case: Case) -> Tuple[Dict[str, Any], Callable[[], Any]]:
    """Build the model of a case and the function one timed run calls.

    Args:
        case (dict): See the module docstring.

    Returns:
        tuple: The result so far (the case, ``compute_dtype`` and, when
        counted, ``macs``/``params``) and the function.
    """
    from ..inference import resolve_dtype

    device = case['device']
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if case['dtype'] == 'auto':
        dtype = resolve_dtype('auto', device)
    else:
        dtype = DTYPES[case['dtype']]
        resolve_dtype(dtype, device)  # fp16 on CPU etc. fail here, clearly
    torch.manual_seed(0)
    shape = tuple(case['shape'])
    built = build_model(case['spec'], case['with_cp'], shape)
    built['model'].to(device)
    x = torch.randn(case['batch'], 3, *shape, device=device)
    result = dict(case, compute_dtype=str(dtype).replace('torch.', ''))
    if case.get('count_flops'):
        result.update(count_flops(built['model'], x))
    if case['memory_format'] == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    make_fn = _train_step_fn if case['task'] == 'train' else _infer_fn
    return result, make_fn(built, case, x, dtype)


def _finish(
    result: Dict[str, Any], warm: List[float], times: List[float], memory: Dict
) -> Dict[str, Any]:
    median = statistics.median(times)
    result.update(
        status='ok',
        warmup_s=warm,
        times_s=times,
        latency_ms=median * 1e3,
        best_ms=min(times) * 1e3,
        img_s=result['batch'] / median,
        **memory,
    )
    return result


def _error(case: Case, err: Exception) -> Dict[str, Any]:
    return dict(case, status='error', error=f'{type(err).__name__}: {err}')


def run_case(case: Case) -> Dict[str, Any]:
    """Build, time and measure one case in this process.

    Returns:
        dict: The case and its results: ``times_s``, ``latency_ms``
        (median), ``best_ms``, ``img_s``, ``peak_mb``, ``step_mb``,
        ``macs``/``params`` when counted.
    """
    result, fn = prepare_case(case)
    warm, times, memory = time_and_measure(
        fn, case['device'], case['warmup'], case['repeat'], case['max_seconds']
    )
    return _finish(result, warm, times, memory)


def run_interleaved(cases: List[Case]) -> List[Dict[str, Any]]:
    """Build every case in this process and time them in turns.

    All models are built and warmed up first; then each case's memory is
    measured in one run (one case after the other); then the timed runs go
    round-robin (A B C A B C ...), so that a change of the machine's load
    hits every case alike. The number of turns is the smallest ``repeat``,
    reduced so that a turn times the cases' ``max_seconds`` on average.
    ``peak_mb`` then includes the other cases' models; ``step_mb`` does not.
    A case that fails to build is reported as an error row.

    Returns:
        list[dict]: One result per case, in order.
    """
    prepared: List[Any] = []
    for case in cases:
        try:
            result, fn = prepare_case(case)
            warm = [time_call(fn, case['device']) for _ in range(case['warmup'])]
            prepared.append((result, fn, warm))
        except Exception as err:  # noqa: BLE001  (reported in the table)
            prepared.append((_error(case, err), None, None))
    ready = [p for p in prepared if p[1] is not None]
    memory = {}
    for result, fn, _ in ready:
        memory[id(result)] = measure_memory(fn, result['device'])
        memory[id(result)].pop('elapsed_s')
        memory[id(result)]['memory_method'] += ' (interleaved run)'
    turns = min((p[0]['repeat'] for p in ready), default=0)
    warm_total = sum(p[2][-1] for p in ready if p[2])
    budget = sum(p[0]['max_seconds'] for p in ready)
    if warm_total and turns > 1:
        turns = max(1, min(turns, int(budget // warm_total)))
    times: Dict[int, List[float]] = {id(p[0]): [] for p in ready}
    for _ in range(turns):
        for result, fn, _ in ready:
            times[id(result)].append(time_call(fn, result['device']))
    return [
        result
        if fn is None
        else _finish(result, warm, times[id(result)], memory[id(result)])
        for result, fn, warm in prepared
    ]


def run_here(cases: List[Case]) -> List[Dict[str, Any]]:
    """Run cases in this process (interleaved if more than one); errors as rows."""
    if len(cases) > 1:
        return run_interleaved(cases)
    try:
        return [run_case(cases[0])]
    except Exception as err:  # noqa: BLE001  (reported in the table)
        return [_error(cases[0], err)]


def run_isolated(cases: List[Case], timeout: float) -> List[Dict[str, Any]]:
    """Run cases in a fresh worker process (:mod:`mmdrn.benchmark.worker`).

    The worker's glibc ``malloc`` maps every block above 64 KiB on its own
    (``MALLOC_MMAP_THRESHOLD_``), so its resident set follows live tensors.
    A worker that fails or runs past ``timeout`` seconds gives error rows.
    """
    package_root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    path = os.pathsep.join(p for p in (package_root, os.environ.get('PYTHONPATH')) if p)
    env = dict(
        os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD_BYTES), PYTHONPATH=path
    )
    cmd = [sys.executable, '-m', 'mmdrn.benchmark.worker', json.dumps(cases)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return [
            dict(c, status='timeout', error=f'exceeded {timeout:.0f} s') for c in cases
        ]
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = ' | '.join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    return [dict(c, status='error', error=tail) for c in cases]


# --------------------------------------------------------------------------
# the cases of a run
# --------------------------------------------------------------------------
def make_cases(
    models: Sequence[str],
    *,
    tasks: Sequence[str] = ('infer',),
    variants: Sequence[str] = ('eager', 'fast'),
    dtypes: Sequence[str] = ('fp32', 'auto'),
    memory_formats: Sequence[str] = MEMORY_FORMATS,
    with_cp: str = 'off',
    baselines: Sequence[str] = ('resnet18-d8',),
    plain: bool = True,
    flops: bool = True,
    **common: Any,
) -> List[Case]:
    """The cases of a run, in order: per model, its reference case first.

    The reference of a model is eager, float32, contiguous, without
    ``with_cp``, for each task; training steps are eager only. After the
    models' own cases come the plain reference (and for configs the backbone
    alone) of DRN models, then the baselines (eager float32 contiguous).
    FLOPs are counted once per model. Repeated cases are dropped.

    Args:
        models (Sequence[str]): Model specs (see the module docstring).
        tasks, variants, memory_formats (Sequence[str]): What to measure.
        dtypes (Sequence[str]): ``'fp32'``, ``'bf16'``, ``'fp16'`` or
            ``'auto'`` (what the fast path picks on ``common['device']``).
        with_cp (str): ``'off'``, ``'on'`` or ``'both'`` (training steps).
        baselines (Sequence[str]): Models measured as baselines.
        plain (bool): Add the plain references of DRN models.
        flops (bool): Count FLOPs.
        **common: ``shape``, ``batch``, ``device``, ``warmup``, ``repeat``,
            ``max_seconds``, ``threads``: copied into every case.

    Returns:
        list[dict]: The cases.
    """
    from ..inference import resolve_dtype

    cps = {'off': [False], 'on': [True], 'both': [False, True]}.get(with_cp)
    if cps is None:
        raise ValueError(f"with_cp must be 'off', 'on' or 'both', got {with_cp!r}")
    resolved: List[str] = []  # 'auto' becomes what the fast path picks here
    for name in dtypes:
        if name == 'auto':
            name = DTYPE_NAMES[resolve_dtype('auto', common['device'])]
        if name not in resolved:
            resolved.append(name)
    reference = dict(
        variant='eager', dtype='fp32', memory_format='contiguous', with_cp=False
    )
    cases: List[Case] = []
    seen = set()

    def add(spec: str, role: str, task: str, **kw: Any) -> None:
        key = (
            spec,
            task,
            kw['variant'],
            kw['dtype'],
            kw['memory_format'],
            kw['with_cp'],
        )
        if key in seen:
            return
        seen.add(key)
        counted = any(c['spec'] == spec and c['count_flops'] for c in cases)
        cases.append(
            dict(
                common,
                spec=spec,
                role=role,
                task=task,
                count_flops=flops and not counted,
                **kw,
            )
        )

    for spec in models:
        for task in tasks:
            add(spec, 'model', task, **reference)
            for variant, dtype, fmt, cp in product(
                variants if task == 'infer' else ['eager'],
                resolved,
                memory_formats,
                cps,
            ):
                if not (task == 'infer' and cp):
                    add(spec, 'model', task, variant=variant, dtype=dtype,
                        memory_format=fmt, with_cp=cp)  # fmt: skip
        if plain and has_drn(spec):
            add(f'plain:{spec}', 'plain', 'infer', **reference)
            if is_config(spec):
                add(f'backbone:{spec}', 'backbone', 'infer', **reference)
    for spec in baselines:
        for task in tasks:
            add(spec, 'baseline', task, **reference)
    return cases

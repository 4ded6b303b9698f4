"""Benchmark mmdrn models: latency, throughput, peak memory and FLOPs.

Measures any mmdrn config file (MMSeg or mmpretrain), any timm model name
(``drn_c_26``, ``resnet18`` ...) and MMSeg's dilated ResNet baselines
(``resnet18-d8``, ``resnet50-d8``: ``ResNetV1c`` with strides 1,2,1,1 and
dilations 1,1,2,4, as in MMSeg's ``*-d8`` configs), for inference and for a
training step, in float32 / bfloat16 (float16 on GPU), contiguous /
channels_last, eager / fast path (:func:`mmdrn.inference.optimize_for_inference`)
/ ``torch.compile``, with or without gradient checkpointing (``with_cp``).

In the same run it measures the machine's matmul (GEMM) rate in float32 and
in bfloat16 (float16 too on GPU), a baseline, and, for DRN models, a plain
reference: the same network rebuilt from the same weights as a bare
``nn.Sequential`` of ``nn.Conv2d``/``nn.BatchNorm2d``/``nn.ReLU`` (plus a
two-line residual sum), which shows what mmdrn's abstractions cost. It prints
a table, the ratios against the eager float32 model, the plain reference and
the baseline, and the fraction of the GEMM rate each case reaches.

What is timed:
    * timm names: ``model(x)`` of ``timm.create_model(name, num_classes=0,
      global_pool='')``, the dense feature map (no classifier);
    * MMSeg configs: ``model(x)`` in ``'tensor'`` mode, i.e. backbone and
      decode head, logits at the output stride (no final resize / argmax);
      mmpretrain configs: the classifier's logits;
    * ``backbone:CONFIG``: the config's backbone alone; ``plain:MODEL``: the
      plain reference of the DRN inside MODEL;
    * a training step: forward, loss, backward and an SGD step through an
      mmengine optimizer wrapper (``OptimWrapper``; with ``bf16``/``fp16``:
      ``AmpOptimWrapper`` on GPU, :class:`mmdrn.engine.CPUAmpOptimWrapper`
      on CPU). Configs run their own ``train_step`` on random images and
      labels; timm models and baselines get a 1x1 convolution classifier
      with a cross-entropy loss on random labels.

How:
    * latency: ``--warmup`` untimed runs, then ``--repeat`` timed runs (fewer
      if they would exceed ``--max-seconds``, at least one); the median is
      reported (and used for every ratio), and the throughput is
      ``batch / median``; the fastest run is shown too (``best ms``): on a
      shared machine it is the least disturbed one. On a shared machine use
      ``--interleave`` (all cases in one process, timed in turns A B C A B C,
      so a change of load hits all of them) and/or ``--rounds``;
    * FLOPs: mmengine's ``get_model_complexity_info`` at the benchmark input
      (its count is in multiply-accumulates, reported as GMAC); the rate is
      ``2 x MAC / latency`` (``3 x`` the forward for a training step, the
      usual backward = 2 x forward estimate);
    * peak memory on CPU: every case runs in a fresh subprocess whose glibc
      ``malloc`` is told (``mallopt``) to serve every block above 64 KiB
      with its own ``mmap``, so freed tensors really leave the process and
      the resident set (RSS) follows the live tensors. After the timed runs
      the kernel's RSS high-water mark is reset (``/proc/self/clear_refs``)
      and one more run is made (for runs over 2 s: the last timed run
      itself). *peak* is the process's peak RSS during that run (weights,
      libraries and all); *step* is the part above the RSS just before it:
      what the run itself allocates (activations, workspace and, for a
      training step, the gradients, which ``zero_grad`` frees every step).
      ``tracemalloc`` would miss tensors (it sees only Python's allocator).
      On CUDA: the allocator's peak (``torch.cuda.max_memory_allocated``).

Examples::

    python tools/benchmark.py drn_c_26 --shape 512 1024
    python tools/benchmark.py drn_c_26 drn_d_22 --baselines resnet18-d8 \\
        --dtypes fp32 bf16 --variants eager fast --markdown out.md --json out.json
    python tools/benchmark.py drn_d_105 --tasks train --shape 512 512 \\
        --with-cp both --variants eager --memory-formats contiguous
    python tools/benchmark.py configs/demo/CONFIG.py --agreement CHECKPOINT
"""

import argparse
import contextlib
import copy
import ctypes
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from itertools import product
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MEMORY_FORMATS = ('contiguous', 'channels_last')
VARIANTS = ('eager', 'fast', 'compile')
TASKS = ('infer', 'train')
D8_BASELINES = {'resnet18-d8': 18, 'resnet50-d8': 50}
NUM_CLASSES = 19
# glibc mallopt parameter: blocks above this size get their own mmap, and
# setting it turns off glibc's dynamic threshold (which would keep freed
# tensors in the heap).
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 64 * 1024
_RESULT_TAG = 'BENCHMARK_RESULT '
# runs at least this long (seconds) measure memory while being timed
_LONG_RUN_S = 2.0


# --------------------------------------------------------------------------
# machine
# --------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def gemm_rate(
    dtype: torch.dtype,
    device: str = 'cpu',
    min_seconds: float = 0.05,
    max_size: int = 2048,
    repeat: int = 5,
) -> Dict[str, float]:
    """Matmul rate of square ``n x n`` matrices, in GFLOP/s (2 n^3 per matmul).

    ``n`` doubles from 256 until one matmul takes ``min_seconds`` (or
    ``max_size`` is reached); the median of ``repeat`` runs is used.

    Args:
        dtype (torch.dtype): float32, bfloat16 or float16.
        device (str): ``'cpu'`` or ``'cuda'``. Default: ``'cpu'``.
        min_seconds (float): Duration one matmul should reach. Default: 0.05.
        max_size (int): Largest ``n``. Default: 2048.
        repeat (int): Timed runs. Default: 5.

    Returns:
        dict: ``gflops`` and the matrix size ``n``.
    """
    size = 256
    while True:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        torch.mm(a, b)
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or size >= max_size:
            break
        size *= 2
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        times.append(time.perf_counter() - start)
    return dict(gflops=2 * size**3 / statistics.median(times) / 1e9, n=size)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    return platform.processor() or 'unknown'


def machine_info(device: str) -> Dict[str, Any]:
    """Description of the machine and software the run used."""
    from mmdrn.inference import amx_cpu, native_bf16_cpu

    info = dict(
        cpu=_cpu_model(),
        logical_cpus=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        native_bf16_cpu=native_bf16_cpu(),
        amx=amx_cpu(),
        device=device,
    )
    if device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name()
    with contextlib.suppress(OSError):
        info['load_average'] = list(os.getloadavg())
    return info


def _proc_status_kib(key: str) -> Optional[int]:
    with contextlib.suppress(OSError):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    return None


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # 5: reset the peak RSS (VmHWM), Linux >= 4.0
        return True
    except OSError:
        return False


def _set_malloc_mmap_threshold() -> bool:
    try:
        libc = ctypes.CDLL('libc.so.6')
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
class _Residual(nn.Module):
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

    Built from the same weights (copied) as a flat sequence of stem layers
    and blocks; a residual block is ``_Residual(Sequential(...), shortcut)``.
    Its output equals ``drn.forward_features(x)``.

    Args:
        drn (nn.Module): A :class:`mmdrn.backbones.drn.DRN` (or subclass)
            with ReLU activations.

    Returns:
        nn.Sequential: The reference, in the mode of ``drn``.
    """
    from mmdrn.backbones.drn import DRN, BasicBlock, Bottleneck, ConvLevel

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
            layers.append(_Residual(nn.Sequential(*_plain_seq(body)), shortcut))
    return nn.Sequential(*layers).train(drn.training)


def _find_drn(model: nn.Module) -> nn.Module:
    from mmdrn.backbones.drn import DRN

    for m in model.modules():
        if isinstance(m, DRN):
            return m
    raise ValueError(
        f'plain: needs a model with a mmdrn DRN inside, {type(model).__name__} has none'
    )


def _is_config(spec: str) -> bool:
    return spec.endswith('.py')


def _load_config(path: str, with_cp: bool, shape: Tuple[int, int]) -> Any:
    from mmengine.config import Config

    if not osp.isfile(path):
        raise ValueError(f'config file not found: {path!r}')
    cfg = Config.fromfile(path)
    model_cfg = cfg.model
    if with_cp:
        model_cfg.backbone.with_cp = True
    # Weights do not change the timing; never download or read checkpoints.
    model_cfg.backbone.pop('init_cfg', None)
    preprocessor = model_cfg.get('data_preprocessor')
    if preprocessor is not None and preprocessor.get('size') is not None:
        preprocessor['size'] = tuple(shape)  # no padding up to the crop size
    return cfg


def _build_config_model(path: str, with_cp: bool, shape: Tuple[int, int]) -> Any:
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    from mmdrn.openmmlab.engine import register_scope

    cfg = _load_config(path, with_cp, shape)
    scope = register_scope(cfg)
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    # one process: SyncBN needs a process group, BN computes the same
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    return model, scope


def _build_d8(depth: int, with_cp: bool) -> nn.Module:
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
    """Build the network named by ``spec``.

    Args:
        spec (str): A config path (``*.py``), ``backbone:CONFIG``,
            ``plain:MODEL`` (MODEL: a config or a timm name), a baseline
            (``resnet18-d8``, ``resnet50-d8``) or a timm model name.
        with_cp (bool): Gradient checkpointing.
        shape (tuple[int, int]): Input height and width.

    Returns:
        dict: ``model`` and ``kind`` (``'tensor'``: called as ``model(x)``,
        trained with a 1x1 classifier; ``'mmseg'``/``'mmpretrain'``: a
        config model, trained with its own ``train_step``).
    """
    import mmdrn.openmmlab  # noqa: F401  (drn_* timm models, registries)

    if spec.startswith('plain:'):
        if with_cp:
            raise ValueError('plain: references have no with_cp')
        inner = build_model(spec[len('plain:') :], False, shape)['model']
        return dict(model=plain_reference(_find_drn(inner)), kind='tensor')
    if spec.startswith('backbone:'):
        model, _ = _build_config_model(spec[len('backbone:') :], with_cp, shape)
        return dict(model=model.backbone, kind='tensor')
    if _is_config(spec):
        model, scope = _build_config_model(spec, with_cp, shape)
        return dict(model=model, kind=scope)
    if spec in D8_BASELINES:
        import mmseg.models  # noqa: F401  (registers ResNetV1c)

        return dict(model=_build_d8(D8_BASELINES[spec], with_cp), kind='tensor')
    import timm

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


def _last_map(out: Any) -> torch.Tensor:
    while isinstance(out, (list, tuple)):
        out = out[-1]
    return out


def count_flops(model: nn.Module, x: torch.Tensor) -> Dict[str, float]:
    """mmengine's complexity analysis of ``model(x)`` (MACs and parameters)."""
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
def _autocast(device: str, dtype: torch.dtype) -> Any:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=dtype)


def _optim_wrapper(model: nn.Module, dtype: torch.dtype, device: str) -> Any:
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if dtype == torch.float32:
        return OptimWrapper(optimizer)
    if device == 'cuda':
        return AmpOptimWrapper(optimizer=optimizer, dtype=dtype)
    from mmdrn.openmmlab.engine import CPUAmpOptimWrapper

    return CPUAmpOptimWrapper(optimizer=optimizer)


def _seg_batch(
    batch: int, shape: Tuple[int, int], num_classes: int, device: str
) -> Dict[str, Any]:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    height, width = shape
    samples = []
    for _ in range(batch):
        labels = torch.randint(0, num_classes, (1, height, width), device=device)
        sample = SegDataSample(
            metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape)
        )
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    images = [
        torch.randint(0, 256, (3, height, width), dtype=torch.uint8, device=device)
        for _ in range(batch)
    ]
    return dict(inputs=images, data_samples=samples)


def _cls_batch(
    batch: int, shape: Tuple[int, int], num_classes: int, device: str
) -> Dict[str, Any]:
    from mmpretrain.structures import DataSample

    images = [
        torch.randint(0, 256, (3, *shape), dtype=torch.uint8, device=device)
        for _ in range(batch)
    ]
    samples = [
        DataSample().set_gt_label(int(torch.randint(0, num_classes, ())))
        for _ in range(batch)
    ]
    return dict(inputs=images, data_samples=samples)


def _num_classes(model: nn.Module) -> int:
    head = getattr(model, 'decode_head', None) or getattr(model, 'head', None)
    return int(getattr(head, 'num_classes', NUM_CLASSES))


def _train_step_fn(
    built: Dict[str, Any],
    case: Dict[str, Any],
    x: torch.Tensor,
    dtype: torch.dtype,
    channels_last: bool,
) -> Callable[[], None]:
    model, kind, device = built['model'], built['kind'], case['device']
    batch, shape = case['batch'], tuple(case['shape'])
    if kind == 'tensor':
        with torch.no_grad():
            probe = copy.deepcopy(model)
            probe.eval()
            out = _last_map(probe(x[:1, :, :64, :64]))
        head = nn.Conv2d(out.shape[1], NUM_CLASSES, 1).to(device)
        model = nn.Sequential(model, head)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    wrapper = _optim_wrapper(model, dtype, device)
    if kind in ('mmseg', 'mmpretrain'):
        make_batch = _seg_batch if kind == 'mmseg' else _cls_batch
        data = make_batch(batch, shape, _num_classes(model), device)

        def train_step() -> None:
            model.train_step(data, wrapper)

        return train_step

    def step() -> None:
        with wrapper.optim_context(model):
            logits = _last_map(model[0](x))
            logits = model[1](logits)
            labels = torch.randint(
                0, NUM_CLASSES, (logits.shape[0], *logits.shape[2:]), device=device
            )
            loss = F.cross_entropy(logits.float(), labels)
        wrapper.update_params(loss)

    return step


def _infer_fn(
    built: Dict[str, Any], case: Dict[str, Any], x: torch.Tensor, dtype: torch.dtype
) -> Callable[[], None]:
    model = built['model']
    model.eval()
    channels_last = case['memory_format'] == 'channels_last'
    if case['variant'] == 'eager':
        if channels_last:
            model.to(memory_format=torch.channels_last)
        autocast = _autocast(case['device'], dtype)

        def run() -> None:
            with torch.no_grad(), autocast:
                model(x)

        return run
    from mmdrn.inference import optimize_for_inference

    fast = optimize_for_inference(
        model,
        dtype=dtype,
        channels_last=channels_last,
        fold_bn=True,
        compile=case['variant'] == 'compile',
        inplace=True,
    )

    def run_fast() -> None:
        fast(x)

    return run_fast


def _timed(fn: Callable[[], None], device: str) -> float:
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _measure_memory(fn: Callable[[], None], device: str) -> Dict[str, Any]:
    """Run ``fn`` once; its peak memory and duration (``elapsed_s``)."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        elapsed = _timed(fn, device)
        peak = torch.cuda.max_memory_allocated()
        return dict(
            peak_mb=peak / 2**20,
            step_mb=(peak - before) / 2**20,
            memory_method='torch.cuda.max_memory_allocated',
            elapsed_s=elapsed,
        )
    if not _reset_peak_rss():
        return dict(
            peak_mb=None,
            step_mb=None,
            memory_method='unavailable',
            elapsed_s=_timed(fn, device),
        )
    before = _proc_status_kib('VmRSS')
    elapsed = _timed(fn, device)
    peak = _proc_status_kib('VmHWM')
    return dict(
        peak_mb=peak / 1024,
        step_mb=(peak - before) / 1024,
        memory_method='peak RSS (VmHWM after clear_refs)',
        elapsed_s=elapsed,
    )


def time_and_measure(
    fn: Callable[[], None], device: str, warmup: int, repeat: int, max_seconds: float
) -> Tuple[List[float], List[float], Dict[str, Any]]:
    """Warm-up runs, timed runs and a memory measurement.

    The number of timed runs shrinks so that they fit in ``max_seconds``
    (judged from the last warm-up run; at least one). Runs longer than
    ``_LONG_RUN_S`` measure memory during the last timed run (resetting the
    peak costs microseconds there), shorter ones in one extra run.

    Returns:
        tuple: Warm-up durations, timed durations (seconds), memory dict.
    """
    warm = [_timed(fn, device) for _ in range(warmup)]
    if warm and repeat > 1:
        repeat = max(1, min(repeat, int(max_seconds // warm[-1])))
    times = [_timed(fn, device) for _ in range(repeat - 1)]
    last = times[-1] if times else (warm[-1] if warm else 0.0)
    if last > _LONG_RUN_S:
        memory = _measure_memory(fn, device)
        times.append(memory.pop('elapsed_s'))
    else:
        times.append(_timed(fn, device))
        memory = _measure_memory(fn, device)
        memory.pop('elapsed_s')
    return warm, times, memory


def prepare_case(case: Dict[str, Any]) -> Tuple[Dict[str, Any], Callable[[], None]]:
    """Build the model of a case and the function one timed run calls.

    Args:
        case (dict): ``spec``, ``task``, ``variant``, ``dtype``,
            ``memory_format``, ``with_cp``, ``shape``, ``batch``, ``device``,
            ``warmup``, ``repeat``, ``max_seconds`` and ``count_flops``.

    Returns:
        tuple: The result so far (the case, ``compute_dtype`` and, when
        counted, ``macs``/``params``) and the function.
    """
    from mmdrn.inference import resolve_dtype

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
    channels_last = case['memory_format'] == 'channels_last'
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if case['task'] == 'train':
        fn = _train_step_fn(built, case, x, dtype, channels_last)
    else:
        fn = _infer_fn(built, case, x, dtype)
    return result, fn


def _finish(
    result: Dict[str, Any],
    warm: List[float],
    times: List[float],
    memory: Dict[str, Any],
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


def run_case(case: Dict[str, Any]) -> Dict[str, Any]:
    """Build, time and measure one case in this process.

    Args:
        case (dict): See :func:`prepare_case`.

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


def _error(case: Dict[str, Any], err: Exception) -> Dict[str, Any]:
    return dict(case, status='error', error=f'{type(err).__name__}: {err}')


def run_interleaved(cases: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Build every case in this process and time them in turns.

    All models are built and warmed up first; then each case's memory is
    measured in one run (one case after the other); then the timed runs go
    round-robin (A B C A B C ...), so that a change of the machine's load
    hits every case alike. The number of turns is the smallest ``repeat``,
    reduced so that a turn times the cases' ``max_seconds`` on average.
    ``peak_mb`` then includes the other cases' models; ``step_mb`` does not.

    Args:
        cases (list[dict]): See :func:`prepare_case`.

    Returns:
        list[dict]: One result per case, in order.
    """
    prepared: List[Any] = []
    for case in cases:
        try:
            result, fn = prepare_case(case)
            warm = [_timed(fn, case['device']) for _ in range(case['warmup'])]
            prepared.append((result, fn, warm))
        except Exception as err:  # noqa: BLE001  (reported in the table)
            prepared.append((_error(case, err), None, None))
    ready = [p for p in prepared if p[1] is not None]
    memory = {}
    for result, fn, _ in ready:
        memory[id(result)] = _measure_memory(fn, result['device'])
        memory[id(result)].pop('elapsed_s')
        memory[id(result)]['memory_method'] += ' (interleaved run)'
    turns = min((r['repeat'] for r, _, _ in ready), default=0)
    warm_total = sum(w[-1] for _, _, w in ready if w)
    budget = sum(r['max_seconds'] for r, _, _ in ready)
    if warm_total and turns > 1:
        turns = max(1, min(turns, int(budget // warm_total)))
    times: Dict[int, List[float]] = {id(r): [] for r, _, _ in ready}
    for _ in range(turns):
        for result, fn, _ in ready:
            times[id(result)].append(_timed(fn, result['device']))
    return [
        result
        if fn is None
        else _finish(result, warm, times[id(result)], memory[id(result)])
        for result, fn, warm in prepared
    ]


def _run_isolated(cases: List[Dict[str, Any]], timeout: float) -> List[Dict[str, Any]]:
    """Run cases in a fresh worker process (interleaved if more than one)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(_MMAP_THRESHOLD_BYTES))
    cmd = [sys.executable, osp.abspath(__file__), '--worker', json.dumps(cases)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return [
            dict(c, status='timeout', error=f'exceeded {timeout:.0f} s') for c in cases
        ]
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_TAG):
            return json.loads(line[len(_RESULT_TAG) :])
    tail = ' | '.join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    return [dict(c, status='error', error=tail) for c in cases]


def _run_here(cases: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    if len(cases) > 1:
        return run_interleaved(cases)
    try:
        return [run_case(cases[0])]
    except Exception as err:  # noqa: BLE001  (reported in the table)
        return [_error(cases[0], err)]


def _worker(cases_json: str) -> None:
    cases = json.loads(cases_json)
    if cases[0].get('threads'):
        torch.set_num_threads(cases[0]['threads'])
    _set_malloc_mmap_threshold()
    print(_RESULT_TAG + json.dumps(_run_here(cases)), flush=True)


# --------------------------------------------------------------------------
# a whole run
# --------------------------------------------------------------------------
def make_cases(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The cases of a run, in order: per model, the reference case first.

    The reference of a model is eager, float32, contiguous, without
    ``with_cp``, for each task. Then baselines and plain references follow
    (eager float32 contiguous).
    """
    from mmdrn.inference import resolve_dtype

    common = dict(
        shape=list(args.shape),
        batch=args.batch,
        device=args.device,
        warmup=args.warmup,
        repeat=args.repeat,
        max_seconds=args.max_seconds,
        threads=args.threads,
    )
    reference = dict(
        variant='eager', dtype='fp32', memory_format='contiguous', with_cp=False
    )
    cps = {'off': [False], 'on': [True], 'both': [False, True]}[args.with_cp]
    dtypes = []  # 'auto' resolved to what the fast path picks on this device
    for name in args.dtypes:
        if name == 'auto':
            name = _DTYPE_NAMES[resolve_dtype('auto', args.device)]
        if name not in dtypes:
            dtypes.append(name)
    cases: List[Dict[str, Any]] = []

    def add(spec: str, role: str, task: str, **kw: Any) -> None:
        key = (spec, task, kw['variant'], kw['dtype'], kw['memory_format'])
        key += (kw['with_cp'],)
        if any(c['_key'] == list(key) for c in cases):
            return
        counted = any(c['spec'] == spec and c.get('count_flops') for c in cases)
        cases.append(
            dict(
                common,
                spec=spec,
                role=role,
                task=task,
                count_flops=not args.no_flops and not counted,
                _key=list(key),
                **kw,
            )
        )

    for spec in args.models:
        for task in args.tasks:
            add(spec, 'model', task, **reference)
            variants = args.variants if task == 'infer' else ['eager']
            for variant, dtype, fmt, cp in product(
                variants, dtypes, args.memory_formats, cps
            ):
                if task == 'infer' and cp:
                    continue
                add(
                    spec,
                    'model',
                    task,
                    variant=variant,
                    dtype=dtype,
                    memory_format=fmt,
                    with_cp=cp,
                )
        if args.plain_reference and _has_drn(spec):
            add(f'plain:{spec}', 'plain', 'infer', **reference)
            if _is_config(spec):
                add(f'backbone:{spec}', 'backbone', 'infer', **reference)
    for spec in args.baselines:
        for task in args.tasks:
            add(spec, 'baseline', task, **reference)
    for case in cases:
        case.pop('_key')
    return cases


def _has_drn(spec: str) -> bool:
    if _is_config(spec):
        with contextlib.suppress(Exception):
            return 'DRN' in str(_load_config(spec, False, (64, 64)).model.backbone.type)
        return False
    return spec.startswith('drn_')


def _rate(result: Dict[str, Any], macs: Optional[float]) -> Optional[float]:
    if not macs or result.get('status') != 'ok':
        return None
    factor = 3 if result['task'] == 'train' else 1
    return 2 * factor * macs / (result['latency_ms'] / 1e3) / 1e9


def summarize(
    results: List[Dict[str, Any]], gemm: Dict[str, Dict[str, float]]
) -> List[Dict[str, Any]]:
    """Add FLOP rates, GEMM fractions and ratios to the results (in place).

    * ``gflops``: ``2 x MAC / latency`` (x3 for a training step);
    * ``gemm_fraction``: ``gflops`` over the same-run GEMM rate of the
      compute dtype;
    * ``speedup``: latency of the model's reference case (eager float32
      contiguous, same task, same ``with_cp``... for ``with_cp`` cases the
      reference without it) over this latency;
    * ``vs_baseline``: the first baseline's latency (same task) over this
      latency; ``memory_ratio``: ``step_mb`` over the reference's.
    """
    macs = {r['spec']: r['macs'] for r in results if r.get('macs')}
    refs = {}
    for r in results:
        if (
            r.get('status') == 'ok'
            and r['variant'] == 'eager'
            and r['dtype'] == 'fp32'
            and r['memory_format'] == 'contiguous'
            and not r['with_cp']
        ):
            refs[(r['spec'], r['task'])] = r
    baselines = [r for r in results if r['role'] == 'baseline']
    for r in results:
        r['macs'] = macs.get(r['spec'])
        r['gflops'] = _rate(r, r['macs'])
        rate = gemm.get(r.get('compute_dtype', ''), {}).get('gflops')
        r['gemm_fraction'] = r['gflops'] / rate if r['gflops'] and rate else None
        ref = refs.get((r['spec'], r['task']))
        ok = r.get('status') == 'ok'
        r['speedup'] = ref['latency_ms'] / r['latency_ms'] if ok and ref else None
        r['memory_ratio'] = (
            r['step_mb'] / ref['step_mb']
            if ok and ref and r.get('step_mb') and ref.get('step_mb')
            else None
        )
        base = next(
            (b for b in baselines if b['task'] == r['task'] and b['status'] == 'ok'),
            None,
        )
        r['vs_baseline'] = base['latency_ms'] / r['latency_ms'] if ok and base else None
    return results


def _fmt(value: Any, spec: str = '.1f') -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _percent(fraction: Optional[float]) -> str:
    return _fmt(100 * fraction if fraction else None, '.0f')


COLUMNS = (
    ('model', lambda r: r['spec']),
    ('task', lambda r: r['task']),
    ('variant', lambda r: r['variant']),
    ('dtype', lambda r: r.get('compute_dtype', r['dtype'])),
    ('format', lambda r: 'cl' if r['memory_format'] == 'channels_last' else 'nchw'),
    ('cp', lambda r: 'on' if r['with_cp'] else 'off'),
    ('latency ms', lambda r: _fmt(r.get('latency_ms'))),
    ('best ms', lambda r: _fmt(r.get('best_ms'))),
    ('img/s', lambda r: _fmt(r.get('img_s'), '.3f')),
    ('GMAC', lambda r: _fmt(r['macs'] / 1e9 if r.get('macs') else None)),
    ('GFLOP/s', lambda r: _fmt(r.get('gflops'))),
    ('% GEMM', lambda r: _percent(r.get('gemm_fraction'))),
    ('peak MB', lambda r: _fmt(r.get('peak_mb'), '.0f')),
    ('step MB', lambda r: _fmt(r.get('step_mb'), '.0f')),
    ('x ref', lambda r: _fmt(r.get('speedup'), '.2f')),
    ('mem/ref', lambda r: _fmt(r.get('memory_ratio'), '.2f')),
    ('x base', lambda r: _fmt(r.get('vs_baseline'), '.2f')),
)


def table_rows(results: List[Dict[str, Any]]) -> List[List[str]]:
    """The table cells, one list per result (errors in the latency column)."""
    rows = []
    for r in results:
        row = [str(fn(r)) for _, fn in COLUMNS]
        if r.get('status') != 'ok':
            row[6] = f'{r.get("status")}: {r.get("error", "")}'[:80]
        rows.append(row)
    return rows


def format_text(rows: List[List[str]]) -> str:
    """A fixed-width text table."""
    header = [name for name, _ in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append('  '.join('-' * w for w in widths))
    lines += ['  '.join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return '\n'.join(lines)


def format_markdown(rows: List[List[str]]) -> str:
    """A GitHub markdown table."""
    header = [name for name, _ in COLUMNS]
    lines = ['| ' + ' | '.join(header) + ' |']
    lines.append('|' + '|'.join('---' for _ in header) + '|')
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def headline(
    results: List[Dict[str, Any]], gemm: Dict[str, Dict[str, float]]
) -> List[str]:
    """Sentences with the run's key ratios (the issue's targets)."""
    lines = [
        'GEMM rate (same run): '
        + ', '.join(f'{k} {v["gflops"]:.1f} GFLOP/s' for k, v in gemm.items())
    ]
    ok = [r for r in results if r.get('status') == 'ok']

    def find(**kw: Any) -> List[Dict[str, Any]]:
        return [r for r in ok if all(r.get(k) == v for k, v in kw.items())]

    for plain in find(role='plain'):
        inner = plain['spec'][len('plain:') :]
        target = inner if not _is_config(inner) else f'backbone:{inner}'
        for model in find(spec=target, task='infer', variant='eager', dtype='fp32'):
            if model['memory_format'] == 'contiguous' and not model['with_cp']:
                lines.append(
                    f'{target} eager fp32 speed / plain reference: '
                    f'{plain["latency_ms"] / model["latency_ms"]:.3f} (target >= 0.97)'
                )
    refs = {
        r['spec']: r
        for r in find(role='model', task='infer', variant='eager', dtype='fp32')
        if r['memory_format'] == 'contiguous'
    }
    for r in find(role='model', task='infer'):
        if r['variant'] != 'eager' and r.get('speedup'):
            frac = r.get('gemm_fraction')
            best = refs[r['spec']].get('best_ms', 0) / r.get('best_ms', 1)
            lines.append(
                f'{r["spec"]} {r["variant"]} ({r["compute_dtype"]}, '
                f'{r["memory_format"]}): {r["speedup"]:.2f}x eager fp32 '
                f'(best runs: {best:.2f}x; target >= 4x), {_percent(frac)}% of '
                f'the {r["compute_dtype"]} GEMM rate'
            )
    for r in find(role='model', task='train', with_cp=True):
        ref = [
            c
            for c in find(spec=r['spec'], task='train', with_cp=False)
            if c['dtype'] == r['dtype'] and c['memory_format'] == r['memory_format']
        ]
        if ref and ref[0].get('step_mb') and r.get('step_mb'):
            lines.append(
                f'{r["spec"]} train {r["compute_dtype"]} with_cp: step memory '
                f'{r["step_mb"]:.0f} MB vs {ref[0]["step_mb"]:.0f} MB = '
                f'{r["step_mb"] / ref[0]["step_mb"]:.2f}x (process peak '
                f'{_fmt(r.get("peak_mb"), ".0f")} vs '
                f'{_fmt(ref[0].get("peak_mb"), ".0f")} MB; target <= 0.6)'
            )
    return lines


def plot(results: List[Dict[str, Any]], path: str) -> None:
    """Throughput vs GMAC and vs parameters, one point per model.

    Filled circles: DRN models, eager fp32 NCHW; open circles: the same
    models on their fastest fast-path case (``fast`` or ``compile``);
    squares: baselines. Every model is labelled with its name.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    ok = [
        r
        for r in results
        if r.get('status') == 'ok'
        and r['task'] == 'infer'
        and r['role'] in ('model', 'baseline')
    ]
    eager = [
        r
        for r in ok
        if r['variant'] == 'eager'
        and r['dtype'] == 'fp32'
        and r['memory_format'] == 'contiguous'
        and r.get('macs')
    ]
    if not eager:
        raise ValueError('nothing to plot: no eager fp32 inference results with FLOPs')
    fast: Dict[str, Dict[str, Any]] = {}
    for r in ok:
        if r['variant'] != 'eager' and (
            r['spec'] not in fast or r['img_s'] > fast[r['spec']]['img_s']
        ):
            fast[r['spec']] = r
    params = {r['spec']: r.get('params') for r in results if r.get('params')}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, label in (
        (axes[0], 'macs', 'GMAC per image'),
        (axes[1], 'params', 'parameters (M)'),
    ):
        for r in eager:
            if key == 'macs':
                value = r['macs'] / r['batch'] / 1e9
            elif params.get(r['spec']):
                value = params[r['spec']] / 1e6
            else:
                continue
            is_base = r['role'] == 'baseline'
            ax.scatter(
                value,
                r['img_s'],
                marker='s' if is_base else 'o',
                color='tab:gray' if is_base else 'tab:blue',
                label='ResNet-D8 baseline, eager fp32' if is_base else 'eager fp32',
            )
            if r['spec'] in fast:
                ax.scatter(
                    value,
                    fast[r['spec']]['img_s'],
                    marker='o',
                    facecolors='none',
                    edgecolors='tab:orange',
                    label='fast path (best variant)',
                )
            ax.annotate(
                r['spec'].split('/')[-1].replace('.py', ''),
                (value, r['img_s']),
                fontsize=7,
                xytext=(3, -9),
                textcoords='offset points',
            )
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel('images / s')
        ax.grid(alpha=0.3)
    shape = 'x'.join(str(s) for s in eager[0]['shape'])
    fig.suptitle(
        f'DRN family vs ResNet-D8 baselines, {shape}, batch {eager[0]["batch"]}'
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------
# fast-path agreement on a trained model
# --------------------------------------------------------------------------
def _iter_batches(cfg: Any, limit: Optional[int]) -> Iterator[Dict[str, Any]]:
    from mmengine.runner import Runner

    loader = Runner.build_dataloader(cfg.test_dataloader)
    for index, data in enumerate(loader):
        if limit is not None and index >= limit:
            return
        yield data


def agreement(
    config: str,
    checkpoint: str,
    dtype: str = 'auto',
    channels_last: bool = True,
    limit: Optional[int] = None,
) -> Dict[str, Any]:
    """Argmax agreement of the fast path with the float32 eager model.

    Runs the config's test set through the eager float32 model and through
    :func:`mmdrn.inference.optimize_for_inference` (BN folding,
    ``channels_last``, ``dtype``) and compares the predicted labels.

    Args:
        config (str): An MMSeg config (the demo config, for example).
        checkpoint (str): Its trained weights (read with
            :func:`mmdrn.utils.load_file`).
        dtype (str): Fast-path dtype. Default: ``'auto'``.
        channels_last (bool): Default: True.
        limit (int, optional): Use at most this many test batches.

    Returns:
        dict: ``pixels``, ``agree`` (fraction of equal labels), ``images``,
        ``dtype``.
    """
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    from mmdrn.inference import optimize_for_inference
    from mmdrn.openmmlab.engine import register_scope
    from mmdrn.utils import load_file

    cfg = Config.fromfile(config)
    scope = register_scope(cfg)
    if scope != 'mmseg':
        raise ValueError(f'agreement needs an MMSeg config, got scope {scope!r}')
    init_default_scope(scope)
    from mmseg.registry import MODELS

    cfg.model.backbone.pop('init_cfg', None)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    state = load_file(checkpoint)
    model.load_state_dict(state.get('state_dict', state))
    model.eval()
    fast = optimize_for_inference(model, dtype=dtype, channels_last=channels_last)
    agree = pixels = images = 0
    for data in _iter_batches(cfg, limit):
        with torch.no_grad():
            ref = model.test_step(data)
        out = fast.test_step(data)
        for a, b in zip(ref, out):
            a, b = a.pred_sem_seg.data, b.pred_sem_seg.data
            agree += int((a == b).sum())
            pixels += a.numel()
            images += 1
    return dict(
        pixels=pixels,
        images=images,
        agree=agree / max(pixels, 1),
        dtype=str(fast.dtype).replace('torch.', ''),
        folded=len(fast.folded_bn_pairs),
    )


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark mmdrn models (see the module docstring)',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        'models',
        nargs='*',
        help='config files, timm names, backbone:CONFIG, plain:MODEL, '
        f'{"/".join(D8_BASELINES)}',
    )
    parser.add_argument('--shape', nargs=2, type=int, default=[512, 1024])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu',
    )
    parser.add_argument('--tasks', nargs='+', choices=TASKS, default=['infer'])
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=VARIANTS,
        default=['eager', 'fast'],
        help='inference variants: eager model, fast path '
        '(optimize_for_inference), fast path + torch.compile',
    )
    parser.add_argument(
        '--dtypes',
        nargs='+',
        choices=sorted(DTYPES) + ['auto'],
        default=['fp32', 'auto'],
        help='compute dtypes (autocast); auto: what the fast path picks here',
    )
    parser.add_argument(
        '--memory-formats',
        nargs='+',
        choices=MEMORY_FORMATS,
        default=['contiguous', 'channels_last'],
    )
    parser.add_argument(
        '--with-cp',
        choices=['off', 'on', 'both'],
        default='off',
        help='gradient checkpointing of training steps',
    )
    parser.add_argument(
        '--baselines',
        nargs='*',
        default=['resnet18-d8'],
        help='models measured as baselines (eager fp32)',
    )
    parser.add_argument(
        '--no-plain-reference',
        dest='plain_reference',
        action='store_false',
        help='skip the plain nn.Sequential reference of DRN models',
    )
    parser.add_argument('--no-flops', action='store_true', help='skip FLOP counting')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument(
        '--max-seconds',
        type=float,
        default=120.0,
        help='fewer timed runs when they would exceed this (at least one)',
    )
    parser.add_argument(
        '--case-timeout', type=float, default=3600.0, help='seconds per case'
    )
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='run the whole list of cases this many times, one case after '
        'the other, and pool the timed runs: slow drifts of the machine load '
        'then hit every case alike',
    )
    parser.add_argument(
        '--interleave',
        action='store_true',
        help='build all cases in one process and time them in turns (A B C A '
        'B C ...): robust ratios on a shared machine; peak MB then includes '
        'the other models',
    )
    parser.add_argument('--threads', type=int, default=None, help='torch threads')
    parser.add_argument(
        '--no-isolate',
        dest='isolate',
        action='store_false',
        help='run the cases in this process (memory numbers then include '
        'what earlier cases left in the allocator)',
    )
    parser.add_argument('--json', help='write the results as JSON here')
    parser.add_argument('--markdown', help='write the table as markdown here')
    parser.add_argument('--plot', help='write the speed vs GMAC/params plot here')
    parser.add_argument(
        '--agreement',
        metavar='CHECKPOINT',
        help='with one MMSeg config: argmax agreement of the fast path '
        '(first of --dtypes that is not fp32, else auto) with eager fp32 on '
        "the config's test set, instead of timing",
    )
    parser.add_argument(
        '--from-json',
        metavar='JSON',
        help='no measuring: print (and write with --markdown/--plot) the '
        'results of an earlier --json run',
    )
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and args.from_json is None and not args.models:
        parser.error('give at least one model')
    if args.batch < 1 or min(args.shape) < 1:
        parser.error(
            f'--batch and --shape must be positive, got {args.batch}, {args.shape}'
        )
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.repeat < 1:
        parser.error(f'--repeat must be >= 1, got {args.repeat}')
    if args.rounds < 1:
        parser.error(f'--rounds must be >= 1, got {args.rounds}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available on this machine')
    if args.device == 'cpu' and 'fp16' in args.dtypes:
        parser.error("--dtypes fp16 needs --device cuda; on CPU use 'bf16'")
    return args


def _run_agreement(args: argparse.Namespace) -> Dict[str, Any]:
    if len(args.models) != 1 or not _is_config(args.models[0]):
        raise ValueError('--agreement needs exactly one MMSeg config file')
    low = [d for d in args.dtypes if d != 'fp32']
    dtype = DTYPES.get(low[0], 'auto') if low else 'auto'
    result = agreement(
        args.models[0],
        args.agreement,
        dtype=dtype,
        channels_last='channels_last' in args.memory_formats,
    )
    print(
        f'fast path ({result["dtype"]}, {result["folded"]} BN folded) vs eager '
        f'fp32: {100 * result["agree"]:.3f}% of {result["pixels"]} pixels agree '
        f'({result["images"]} images; guard >= 99.5%)'
    )
    return result


def _label(case: Dict[str, Any]) -> str:
    return (
        f'{case["spec"]} {case["task"]} {case["variant"]} {case["dtype"]} '
        f'{case["memory_format"]} cp={case["with_cp"]}'
    )


def _run_group(
    cases: List[Dict[str, Any]], args: argparse.Namespace
) -> List[Dict[str, Any]]:
    if args.isolate:
        return _run_isolated(cases, args.case_timeout * len(cases))
    return _run_here(cases)


def merge_rounds(first: Dict[str, Any], later: Dict[str, Any]) -> Dict[str, Any]:
    """Pool the timed runs of a later round into the first round's result.

    The latency becomes the median of all timed runs; memory and FLOPs stay
    those of the first round. A failed round leaves the result unchanged
    (and is counted in ``failed_rounds``).
    """
    if first.get('status') != 'ok' or later.get('status') != 'ok':
        first['failed_rounds'] = first.get('failed_rounds', 0) + 1
        return first
    first['times_s'] = first['times_s'] + later['times_s']
    first['warmup_s'] = first['warmup_s'] + later['warmup_s']
    median = statistics.median(first['times_s'])
    first['latency_ms'] = median * 1e3
    first['best_ms'] = min(first['times_s']) * 1e3
    first['img_s'] = first['batch'] / median
    first['rounds'] = first.get('rounds', 1) + 1
    return first


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.worker is not None:
        _worker(args.worker)
        return {}
    if args.from_json:
        with open(args.from_json) as f:
            report = json.load(f)
        summarize(report['results'], report['gemm'])
        report_outputs(report, argparse.Namespace(**dict(vars(args), json=None)))
        return report
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.agreement:
        result = _run_agreement(args)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=2)
        return result
    from mmdrn.inference import native_bf16_cpu

    info = machine_info(args.device)
    print(f'# machine: {json.dumps(info)}')
    if args.device == 'cpu' and not native_bf16_cpu() and 'bf16' in args.dtypes:
        print(
            '# warning: this CPU has no native bfloat16 (AMX / AVX512-BF16); '
            'bf16 cases are emulated and can be very slow'
        )
    gemm_dtypes = ['fp32', 'bf16'] + (['fp16'] if args.device == 'cuda' else [])
    gemm = {
        str(DTYPES[d]).replace('torch.', ''): gemm_rate(DTYPES[d], args.device)
        for d in gemm_dtypes
    }
    print('# ' + ', '.join(f'{k}: {v["gflops"]:.1f} GFLOP/s' for k, v in gemm.items()))
    cases = make_cases(args)
    results: List[Dict[str, Any]] = []
    for index in range(args.rounds):
        if index:
            cases = [dict(c, count_flops=False) for c in cases]
        groups = [cases] if args.interleave else [[c] for c in cases]
        round_results = []
        for group in groups:
            for case in group:
                print(f'# round {index + 1}/{args.rounds}: {_label(case)}', flush=True)
            round_results += _run_group(group, args)
        if index == 0:
            results = round_results
        else:
            for first, later in zip(results, round_results):
                merge_rounds(first, later)
        # the rate after every round: the fractions use the best one
        for d in gemm_dtypes:
            key = str(DTYPES[d]).replace('torch.', '')
            rate = gemm_rate(DTYPES[d], args.device)['gflops']
            gemm[key].setdefault('later', []).append(rate)
            gemm[key]['gflops'] = max(gemm[key]['gflops'], rate)
    with contextlib.suppress(OSError):
        info['load_average_end'] = list(os.getloadavg())
    summarize(results, gemm)
    report = dict(
        machine=info,
        gemm=gemm,
        results=results,
        argv=list(sys.argv[1:] if argv is None else argv),
    )
    report_outputs(report, args)
    return report


def report_outputs(report: Dict[str, Any], args: argparse.Namespace) -> None:
    """Print the table and the ratios; write what ``--json``, ``--markdown``
    and ``--plot`` ask for."""
    results, gemm = report['results'], report['gemm']
    rows = table_rows(results)
    print(format_text(rows))
    lines = headline(results, gemm)
    print('\n'.join(lines))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(format_markdown(rows) + '\n\n')
            f.write('\n'.join(f'- {line}' for line in lines) + '\n')
    if args.plot:
        plot(results, args.plot)


if __name__ == '__main__':
    main()

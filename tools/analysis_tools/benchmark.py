"""Benchmark mmdrn models: latency, throughput, peak memory and FLOPs.

Configs (MMSeg, mmpretrain; ``backbone:CONFIG``: its backbone), timm names and
MMSeg's dilated ResNet baselines, for inference (the :data:`VARIANTS`) and a
training step, in fp32/bf16/fp16, contiguous or channels_last, with or without
``with_cp``; for DRN models also a plain-PyTorch reference (``plain:MODEL``);
and the machine's GEMM rate. ``--engines`` compares inference engines instead
(torch eager and fast path, ONNX Runtime, OpenVINO; :mod:`mmdrn.deploy`) in
one process. What is measured and how: docs/benchmarks.md.

    python tools/analysis_tools/benchmark.py drn_c_26 --shape 512 1024 --interleave
    python tools/analysis_tools/benchmark.py CONFIG --engines torch onnxruntime
"""

import argparse
import copy
import functools
import json
import os
import statistics
import subprocess
import sys
from itertools import product
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.benchmark import Timer

from mmdrn.deploy import build_engine, compare, export_onnx
from mmdrn.inference import (
    DTYPES,
    SHORT_NAMES,
    dtype_name,
    optimize_for_inference,
    precision_decision,
    resolve_dtype,
)
from mmdrn.utils import CheckpointError

#: MMSeg's ``*-d8`` backbones: ResNetV1c, strides 1,2,1,1, dilations 1,1,2,4.
D8_BASELINES = {'resnet18-d8': 18, 'resnet50-d8': 50}
D8_ARGS = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True)
MEMORY_FORMATS = ('contiguous', 'channels_last')
NUM_CLASSES = 19  # of the 1x1 classifier that trains models without a head
TURN_SECONDS = 0.2  # min_run_time of one timing turn (blocked_autorange)
RESULT_TAG = 'BENCHMARK_RESULT '
CASE_KEYS = ('spec', 'task', 'variant', 'dtype', 'memory_format', 'with_cp')
Case = Dict[str, Any]


def plain_reference(model: nn.Module) -> nn.Module:
    """A copy of the DRN in ``model`` traced by ``torch.fx`` into one flat graph
    of torch layers and ops, checked to compute its ``forward_features``."""
    from mmdrn.backbones.drn import DRN

    drn = next((m for m in model.modules() if isinstance(m, DRN)), None)
    if drn is None:
        name = type(model).__name__
        raise ValueError(f'plain: needs a model with a mmdrn DRN inside, got {name}')
    drn.eval()
    plain = torch.fx.symbolic_trace(
        copy.deepcopy(nn.Sequential(*drn.stem(), *drn.levels()))
    )
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        if not torch.allclose(plain(x), drn.forward_features(x), atol=1e-5):
            raise RuntimeError('plain: the reference does not compute the DRN')
    return plain


def build_config_model(path: str, with_cp: bool = False, size=None) -> Tuple:
    """A config's model (no checkpoint, SyncBN as BN, inputs not padded to a
    crop ``size``), its scope and the config."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    from mmdrn.openmmlab.runtime import register_scope

    cfg = Config.fromfile(path)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.with_cp = with_cp or cfg.model.backbone.get('with_cp', False)
    if size and cfg.model.get('data_preprocessor', {}).get('size'):
        cfg.model.data_preprocessor.size = tuple(size)
    scope = register_scope(cfg)
    init_default_scope(scope)
    models = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    return revert_sync_batchnorm(models.build(cfg.model)), scope, cfg


def build_model(spec: str, with_cp: bool, size: Tuple[int, int]) -> Tuple:
    """The model named by ``spec`` and how it trains: ``'tensor'`` (a 1x1
    classifier on its last output) or its scope (its own ``train_step``)."""
    import timm

    import mmdrn  # noqa: F401  (the drn_* timm models)

    kind, _, inner = spec.partition(':')
    if kind == 'plain':
        if with_cp:
            raise ValueError('plain: references have no with_cp')
        return plain_reference(build_model(inner, False, size)[0]), 'tensor'
    if kind == 'backbone' or spec.endswith('.py'):
        model, scope, _ = build_config_model(inner or spec, with_cp, size)
        return (model.backbone, 'tensor') if kind == 'backbone' else (model, scope)
    if spec in D8_BASELINES:
        from mmseg.models import ResNetV1c

        return ResNetV1c(depth=D8_BASELINES[spec], with_cp=with_cp, **D8_ARGS), 'tensor'
    try:
        model = timm.create_model(spec, num_classes=0, global_pool='')
    except RuntimeError as err:
        raise ValueError(
            f'model must be a config file (*.py), backbone:CONFIG, plain:MODEL, one '
            f'of {sorted(D8_BASELINES)} or a timm model name, got {spec!r} ({err})'
        ) from err
    model.set_grad_checkpointing(with_cp)
    return model, 'tensor'


def count_flops(model: nn.Module, x: torch.Tensor) -> Dict[str, float]:
    """mmengine's complexity counter on ``model(x)``: ``macs`` and ``params``."""
    from mmengine.analysis import get_model_complexity_info

    training = model.training
    model.eval()  # MMSeg's ResNet.train() returns None: no chaining
    with torch.no_grad():
        info = get_model_complexity_info(model, inputs=(x,), show_table=False)
    model.train(training)
    return dict(macs=float(info['flops']), params=float(info['params']))


def fast_path(model: nn.Module, x: torch.Tensor, dtype, cl: bool, **kw) -> Callable:
    """The model run by :func:`mmdrn.inference.optimize_for_inference`."""
    model = optimize_for_inference(model, dtype, cl, inplace=True, **kw)
    return lambda: model(x)


#: Inference variants (``--variants``): name -> builder of the timed call from
#: ``(model, input, dtype, channels_last)``. ``eager`` is the model as it is
#: (no folding), under autocast and no_grad as the others.
VARIANTS = dict(
    eager=functools.partial(fast_path, fold_bn=False),
    fast=fast_path,
    compile=functools.partial(fast_path, compile=True),
)


def deploy_engine(model: nn.Module, x: torch.Tensor, *_: Any, engine: str) -> Callable:
    """``model(x)`` exported to ONNX and run by an :mod:`mmdrn.deploy` engine
    with this process's torch thread count (its precision is the engine's)."""
    import tempfile

    if x.device.type != 'cpu':
        raise ValueError(f'engine {engine} runs on CPU here: use --device cpu')
    data = x.contiguous().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'model.onnx')
        export_onnx(model.eval(), torch.from_numpy(data), path)
        run = build_engine(engine, path=path, threads=torch.get_num_threads())
    return lambda: run(data)


#: ``--engines``: each engine's case (variant, dtype, memory format); the
#: exported ones are variants of their own (:data:`DEPLOYED`).
ENGINE_CASES = {
    'torch': ('eager', 'fp32', 'contiguous'),
    'torch-fast': ('fast', 'fp32', 'channels_last'),
    'torch-fast-bf16': ('fast', 'bf16', 'channels_last'),
    'onnxruntime': ('onnxruntime', 'fp32', 'contiguous'),
    'openvino-f32': ('openvino-f32', 'fp32', 'contiguous'),
    'openvino-bf16': ('openvino-bf16', 'bf16', 'contiguous'),
}
DEPLOYED = {
    name: functools.partial(deploy_engine, engine=name)
    for name in ('onnxruntime', 'openvino-f32', 'openvino-bf16')
}


def random_batch(kind: str, model: nn.Module, x: torch.Tensor) -> Dict[str, Any]:
    """Random uint8 images and labels: the data of a ``kind`` model."""
    from mmengine.structures import PixelData

    head = getattr(model, 'decode_head', None) or getattr(model, 'head', None)
    classes, size = int(getattr(head, 'num_classes', NUM_CLASSES)), x.shape[2:]
    images = [torch.randint(256, (3, *size), dtype=torch.uint8) for _ in x]
    if kind == 'mmpretrain':
        from mmpretrain.structures import DataSample as Sample

        samples = [Sample().set_gt_label(int(torch.randint(classes, ()))) for _ in x]
    else:
        from mmseg.structures import SegDataSample as Sample

        meta = dict(img_shape=size, ori_shape=size, pad_shape=size)
        labels = [PixelData(data=torch.randint(classes, (1, *size))) for _ in x]
        samples = [Sample(metainfo=meta, gt_sem_seg=label) for label in labels]
    return dict(inputs=[image.to(x.device) for image in images], data_samples=samples)


def train_step(model: nn.Module, kind: str, x, dtype, cl: bool) -> Callable:
    """Forward, loss, backward and an SGD step through an mmengine optimizer
    wrapper (AMP: ``AmpOptimWrapper`` on GPU, ``CPUAmpOptimWrapper`` on CPU)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    from mmdrn.openmmlab.optim_wrapper import CPUAmpOptimWrapper

    if kind == 'tensor':
        model.eval()
        with torch.no_grad():
            out = model(x[:1, :, :64, :64])
        head = nn.Conv2d(last(out).shape[1], NUM_CLASSES, 1)
        model = nn.Sequential(model, head.to(x.device))
    if cl:
        model.to(memory_format=torch.channels_last)
    model.train()
    sgd = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if dtype == torch.float32:
        wrapper = OptimWrapper(sgd)
    elif x.device.type == 'cuda':
        wrapper = AmpOptimWrapper(optimizer=sgd, dtype=dtype)
    else:
        wrapper = CPUAmpOptimWrapper(optimizer=sgd)
    if kind != 'tensor':
        data = random_batch(kind, model, x)
        return lambda: model.train_step(data, wrapper)

    def step() -> None:
        with wrapper.optim_context(model):
            logits = model[1](last(model[0](x))).float()
            labels = torch.randint(NUM_CLASSES, logits[:, 0].shape, device=x.device)
        wrapper.update_params(F.cross_entropy(logits, labels))

    return step


def last(out: Any) -> torch.Tensor:
    """The last feature map of a model's output (a tensor, list or tuple)."""
    return last(out[-1]) if isinstance(out, (list, tuple)) else out


def prepare(case: Case) -> Tuple[Case, Callable[[], Any]]:
    """Build a case: its result so far, and the call to time."""
    device, size = case['device'], tuple(case['shape'])
    dtype = resolve_dtype(case['dtype'], device)
    torch.manual_seed(0)
    model, kind = build_model(case['spec'], case['with_cp'], size)
    x = torch.randn(case['batch'], 3, *size, device=device)
    result = dict(case, compute_dtype=dtype_name(dtype))
    if case['count_flops']:
        result.update(count_flops(model.to(device), x))
    cl = case['memory_format'] == 'channels_last'
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    if case['task'] == 'train':
        return result, train_step(model.to(device), kind, x, dtype, cl)
    build = {**VARIANTS, **DEPLOYED}[case['variant']]
    return result, build(model.to(device), x, dtype, cl)


def _status_mb(key: str) -> float:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024


def measure_memory(fn: Callable[[], Any], device: str) -> Dict[str, Any]:
    """One call's peak memory (MB) and ``step_mb``, the peak above the use
    before the call: CUDA's allocator, on CPU the resident set (peak reset)."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
        fn()
        peak, method = torch.cuda.max_memory_allocated() / 2**20, 'cuda allocator'
        return dict(peak_mb=peak, step_mb=peak - before, memory_method=method)
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets the peak resident set (VmHWM), Linux >= 4.0
    except OSError:
        return dict(peak_mb=None, step_mb=None, memory_method='unavailable')
    before = _status_mb('VmRSS:')
    fn()
    peak, method = _status_mb('VmHWM:'), 'peak RSS (VmHWM after clear_refs)'
    return dict(peak_mb=peak, step_mb=peak - before, memory_method=method)


def run_group(cases: List[Case]) -> List[Case]:
    """Build and warm up the cases, time them in turns (A B C A B C ...), then
    measure each one's memory. A turn is one ``blocked_autorange`` per case;
    turns stop at the smallest ``repeat``, or once the timed seconds exceed
    the summed ``max_seconds``. A case that fails to build is an error row."""
    results, ready, outputs = [], [], []
    for case in cases:
        try:
            result, fn = prepare(case)
            if case['task'] == 'infer':  # an untimed call, its output kept
                outputs.append((result, output_array(fn())))
            for _ in range(case['warmup']):
                fn()
            threads = torch.get_num_threads()  # the Timer's default is one
            ready.append(
                (result, fn, Timer('fn()', globals=dict(fn=fn), num_threads=threads))
            )
        except Exception as err:  # noqa: BLE001  (an error row of the table)
            result = dict(case, status='error', error=f'{type(err).__name__}: {err}')
        results.append(result)
    budget, turns = sum(case['max_seconds'] for case, _, _ in ready), 0
    while ready and turns < min(case['repeat'] for case, _, _ in ready):
        for result, _, timer in ready:
            measured = timer.blocked_autorange(min_run_time=TURN_SECONDS)
            result['times_s'] = result.get('times_s', []) + measured.times
            result['timed_s'] = result.get('timed_s', 0) + sum(measured.raw_times)
        turns += 1
        if sum(case['timed_s'] for case, _, _ in ready) > budget:
            break
    for result, fn, _ in ready:
        median, times = statistics.median(result['times_s']), result['times_s']
        result.update(measure_memory(fn, result['device']), status='ok', turns=turns)
        result.update(latency_ms=1e3 * median, best_ms=1e3 * min(times))
        result['img_s'] = result['batch'] / median
    add_agreement(outputs)
    return results


def output_array(out: Any) -> Any:
    """The last output of an inference call as float32 numpy, else None."""
    out = last(out)
    if isinstance(out, torch.Tensor):
        return out.detach().float().cpu().numpy()
    return out if hasattr(out, 'shape') else None


def add_agreement(outputs: List[Tuple[Case, Any]]) -> None:
    """``agreement``: the argmax agreement of each inference case's output with
    its model's eager fp32 reference case of the same run."""
    refs = {r['spec']: out for r, out in outputs if is_reference(r) and out is not None}
    for r, out in outputs:
        ref = refs.get(r['spec'])
        comparable = ref is not None and out is not None and ref.shape == out.shape
        if comparable and out.ndim > 1:  # N x classes x ...
            r['agreement'] = compare(ref, out)['agreement']


def run_isolated(cases: List[Case]) -> List[Case]:
    """:func:`run_group` in a fresh process of this tool whose glibc ``malloc``
    maps every block above 64 KiB on its own: freed tensors leave the process,
    so its resident set follows the live tensors. At most an hour a case."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024))
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', json.dumps(cases)]
    try:
        run = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=3600 * len(cases)
        )
    except subprocess.TimeoutExpired:
        return [dict(c, status='timeout', error='over an hour a case') for c in cases]
    for line in reversed(run.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = ' | '.join((run.stderr or run.stdout).strip().splitlines()[-3:])
    return [dict(c, status='error', error=tail) for c in cases]


def has_drn(spec: str) -> bool:
    """Whether the model named by ``spec`` is (or contains) an mmdrn DRN."""
    from mmengine.config import Config

    if spec.endswith('.py') and os.path.isfile(spec):
        return 'DRN' in str(Config.fromfile(spec).model.backbone.type)
    return spec.startswith('drn_')


def make_cases(args: argparse.Namespace) -> List[Case]:
    """Per model and task its reference case (eager, fp32, contiguous, no
    with_cp), then the grid (training: eager only); for DRN models the plain
    reference (and a config's backbone); then the baselines. A model's first
    case counts its FLOPs; a case named twice runs once."""
    short = {dtype: name for name, dtype in SHORT_NAMES.items()}
    auto = short[dtype_name(resolve_dtype('auto', args.device))]
    dtypes = dict.fromkeys(auto if name == 'auto' else name for name in args.dtypes)
    cps = dict(off=[False], on=[True], both=[False, True])[args.with_cp]
    keys = ('shape', 'batch', 'device', 'warmup', 'repeat', 'max_seconds')
    common = {key: getattr(args, key) for key in keys}
    ref = dict(variant='eager', dtype='fp32', memory_format='contiguous', with_cp=False)
    cases: Dict[tuple, Case] = {}

    def add(spec: str, role: str, task: str, **kw: Any) -> None:
        flops = args.flops and all(c['spec'] != spec for c in cases.values())
        case = dict(common, spec=spec, role=role, task=task, count_flops=flops, **kw)
        cases.setdefault((spec, task, *kw.values()), case)

    for spec in args.models:
        for engine in ['torch', *args.engines] if args.engines else []:
            variant, dtype, fmt = ENGINE_CASES[engine]
            kw = dict(variant=variant, dtype=dtype, memory_format=fmt)
            add(spec, 'model', 'infer', **kw, with_cp=False)
        for task in [] if args.engines else args.tasks:
            add(spec, 'model', task, **ref)
            variants = args.variants if task == 'infer' else ['eager']
            for variant, dtype, fmt, cp in product(
                variants, dtypes, args.memory_formats, cps
            ):
                if task == 'train' or not cp:
                    kw = dict(variant=variant, dtype=dtype, memory_format=fmt)
                    add(spec, 'model', task, **kw, with_cp=cp)
        if args.plain_reference and has_drn(spec):
            add(f'plain:{spec}', 'plain', 'infer', **ref)
            if spec.endswith('.py'):
                add(f'backbone:{spec}', 'backbone', 'infer', **ref)
    for spec, task in product(args.baselines, args.tasks):
        add(spec, 'baseline', task, **ref)
    return list(cases.values())


def is_reference(r: Case) -> bool:
    key = (r['variant'], r['dtype'], r['memory_format'], r['with_cp'])
    return key == ('eager', 'fp32', 'contiguous', False)


def summarize(results: List[Case], gemm: Dict[str, Dict]) -> None:
    """Add ``gflops`` (2 x MAC / latency; x3 for a training step) and its
    ``gemm_fraction`` of the same-run GEMM rate; the ratios to the reference
    case of the same model and task (of a plain reference: its model's):
    ``speedup`` (latencies), ``memory_ratio`` (``step_mb``); and
    ``vs_baseline``: the first baseline's latency over the case's."""
    ok = [r for r in results if r.get('status') == 'ok']
    macs = {r['spec']: r['macs'] for r in results if r.get('macs')}
    refs = {(r['spec'], r['task']): r for r in ok if is_reference(r)}
    bases = {r['task']: r for r in reversed(ok) if r['role'] == 'baseline'}
    for r in ok:
        r['macs'] = macs.get(r['spec'])
        work = 2 * (3 if r['task'] == 'train' else 1) * (r['macs'] or 0)
        r['gflops'] = work / r['latency_ms'] / 1e6 or None
        rate = gemm.get(r['compute_dtype'], {}).get('gflops')
        r['gemm_fraction'] = r['gflops'] / rate if r['gflops'] and rate else None
        model = r['spec'].replace('plain:', 'backbone:' if '.py' in r['spec'] else '')
        ref, base = refs.get((model, r['task']), {}), bases.get(r['task'], {})
        r['speedup'] = ref['latency_ms'] / r['latency_ms'] if ref else None
        step, ref_step = r.get('step_mb'), ref.get('step_mb')
        r['memory_ratio'] = step / ref_step if step and ref_step else None
        r['vs_baseline'] = base['latency_ms'] / r['latency_ms'] if base else None


#: The number columns of the table: name, result key, scale, format.
NUMBERS = [
    ('latency ms', 'latency_ms', 1, '.1f'),
    ('best ms', 'best_ms', 1, '.1f'),
    ('img/s', 'img_s', 1, '.3f'),
    ('GMAC', 'macs', 1e-9, '.1f'),
    ('GFLOP/s', 'gflops', 1, '.1f'),
    ('% GEMM', 'gemm_fraction', 100, '.0f'),
    ('peak MB', 'peak_mb', 1, '.0f'),
    ('step MB', 'step_mb', 1, '.0f'),
    ('x ref', 'speedup', 1, '.2f'),
    ('mem/ref', 'memory_ratio', 1, '.2f'),
    ('x base', 'vs_baseline', 1, '.2f'),
    ('agree %', 'agreement', 100, '.2f'),
]
HEADER = ['model', 'task', 'variant', 'dtype', 'format', 'cp'] + [c[0] for c in NUMBERS]


def markdown(results: List[Case], gemm: Dict[str, Dict]) -> str:
    """The results as a markdown table (a failed case shows its error) and
    the GEMM rates."""
    rows = [HEADER, ['---'] * len(HEADER)]
    for r in results:
        fmt = 'cl' if r['memory_format'] == 'channels_last' else 'nchw'
        row = [r['spec'], r['task'], r['variant'], r.get('compute_dtype', r['dtype'])]
        row += [fmt, 'on' if r['with_cp'] else 'off']
        row += [
            '-' if r.get(k) is None else format(s * r[k], f) for _, k, s, f in NUMBERS
        ]
        if r.get('status') != 'ok':
            row[6] = f'{r["status"]}: {r.get("error", "")}'[:80]
        rows.append(row)
    rates = ', '.join(f'{k} {v["gflops"]:.1f} GFLOP/s' for k, v in gemm.items())
    table = '\n'.join('| ' + ' | '.join(row) + ' |' for row in rows)
    return f'{table}\n\n- GEMM rate (same run): {rates}\n'


def plot(results: List[Case], path: str) -> None:
    """Images/s over GMAC and over parameters: eager fp32 (circles; baselines:
    squares) and each model's fastest other inference case (open circles)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.get('status') == 'ok' and r['task'] == 'infer']
    fastest = sorted(ok, key=lambda r: r['img_s'])
    best = {r['spec']: r for r in fastest if r['variant'] != 'eager'}
    eager = [r for r in ok if is_reference(r) and r['role'] != 'plain' and r['macs']]
    if not eager:
        raise ValueError('nothing to plot: no eager fp32 inference results with FLOPs')
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    base = dict(marker='s', color='tab:gray', label='ResNet-D8 baseline, eager fp32')
    drn = dict(marker='o', color='tab:blue', label='eager fp32')
    fast = dict(facecolors='none', edgecolors='tab:orange', label='fast path (best)')
    for ax, label in zip(axes, ('GMAC per image', 'parameters (M)')):
        for r in eager:
            x = r['macs'] / r['batch'] / 1e9 if ax is axes[0] else r['params'] / 1e6
            ax.scatter(x, r['img_s'], **(base if r['role'] == 'baseline' else drn))
            if r['spec'] in best:
                ax.scatter(x, best[r['spec']]['img_s'], **fast)
            name = os.path.basename(r['spec']).replace('.py', '')
            ax.annotate(
                name,
                (x, r['img_s']),
                fontsize=7,
                xytext=(3, -9),
                textcoords='offset points',
            )
        handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
        ax.legend(handles.values(), handles.keys(), fontsize=7)
        ax.set(xlabel=label, ylabel='images / s')
    size, batch = 'x'.join(map(str, eager[0]['shape'])), eager[0]['batch']
    fig.suptitle(f'DRN family vs ResNet-D8 baselines, {size}, batch {batch}')
    fig.savefig(path, dpi=120, bbox_inches='tight')


def gemm_rates(device: str) -> Dict[str, Dict[str, float]]:
    """Square matmul rate per dtype (GFLOP/s, 2 n^3 per product): n doubles
    from 256 until one product takes 50 ms (at most 2048), then the median of
    ``blocked_autorange`` at that size."""
    rates, threads = {}, torch.get_num_threads()
    for name in ['float32', 'bfloat16'] + (['float16'] if device == 'cuda' else []):
        for n in (256, 512, 1024, 2048):
            a = torch.randn(n, n, device=device).to(DTYPES[name])
            timer = Timer('a @ a', globals=dict(a=a), num_threads=threads)
            once = timer.timeit(1).median
            if once >= 0.05:
                break
        median = timer.blocked_autorange(min_run_time=3 * once).median
        rates[name] = dict(gflops=2 * n**3 / median / 1e9, n=n)
    return rates


def machine_info(device: str) -> Dict[str, Any]:
    """The machine and software of a run (CPU and OS from collect_env)."""
    from torch.utils import collect_env

    flags = (
        open('/proc/cpuinfo').read().split() if os.path.exists('/proc/cpuinfo') else []
    )
    return dict(
        cpu=collect_env.get_cpu_info(collect_env.run),
        os=collect_env.get_os(collect_env.run),
        gpu=torch.cuda.get_device_name() if device == 'cuda' else None,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        amx='amx_tile' in flags,
        native_bf16_cpu='amx_tile' in flags or 'avx512_bf16' in flags,
        load_average=os.getloadavg(),
    )


def agreement(args: argparse.Namespace) -> Dict[str, Any]:
    """Argmax agreement of the fast path with the eager fp32 model on an MMSeg
    config's test set; a checkpoint that does not fit the model is refused."""
    from mmengine.runner import Runner

    from mmdrn.openmmlab.checkpoint import load_checkpoint_strict

    model, scope, cfg = build_config_model(args.models[0])
    if scope != 'mmseg':
        raise ValueError(f'--agreement needs an MMSeg config, got scope {scope!r}')
    load_checkpoint_strict(model, args.agreement)
    model.eval()
    dtype = [name for name in args.dtypes if name != 'fp32'] + ['fp32']
    fast = optimize_for_inference(
        model, dtype[0], 'channels_last' in args.memory_formats
    )
    agree = pixels = images = 0
    for data in Runner.build_dataloader(cfg.test_dataloader):
        with torch.no_grad():
            pairs = list(zip(model.test_step(data), fast.test_step(data)))
        for a, b in ((a.pred_sem_seg.data, b.pred_sem_seg.data) for a, b in pairs):
            agree, pixels = agree + int((a == b).sum()), pixels + a.numel()
            images += 1
    folded, dtype = len(fast.folded_bn_pairs), dtype_name(fast.dtype)
    share = f'{100 * agree / pixels:.3f}% of {pixels} pixels ({images} images)'
    print(f'fast path ({dtype}, {folded} BN folded) vs eager fp32: {share} agree')
    return dict(
        pixels=pixels, images=images, agree=agree / pixels, dtype=dtype, folded=folded
    )


def add_case_options(add: Callable, on_off: Any) -> None:
    """The options that choose the cases."""
    cuda = torch.cuda.is_available()
    models = f'configs, timm names, backbone:CONFIG, plain:MODEL, {list(D8_BASELINES)}'
    add('models', nargs='*', help=models)
    add('--shape', nargs=2, type=int, default=[512, 1024], metavar=('H', 'W'), help=' ')
    add('--batch', type=int, default=1, help='images per call')
    add(
        '--device', choices=['cpu', 'cuda'], default='cuda' if cuda else 'cpu', help=' '
    )
    add('--tasks', nargs='+', choices=['infer', 'train'], default=['infer'], help=' ')
    add(
        '--variants',
        nargs='+',
        choices=VARIANTS,
        default=['eager', 'fast'],
        help='inference variants: the model, the fast path (optimize_for_inference), '
        'the fast path compiled (torch.compile)',
    )
    add(
        '--engines',
        nargs='+',
        choices=ENGINE_CASES,
        help='instead of --tasks/--variants: one inference case per engine (torch: '
        'eager fp32, always measured as the reference; torch-fast[-bf16]: the fast '
        'path; onnxruntime, openvino-f32/bf16: the model exported to ONNX), '
        'interleaved in one process',
    )
    add(
        '--dtypes',
        nargs='+',
        choices=['auto', *SHORT_NAMES],
        default=['fp32', 'auto'],
        help='compute dtypes (autocast); auto: what the fast path picks here',
    )
    formats = list(MEMORY_FORMATS)
    add('--memory-formats', nargs='+', choices=formats, default=formats, help=' ')
    add(
        '--with-cp',
        choices=['off', 'on', 'both'],
        default='off',
        help='gradient checkpointing of training steps',
    )
    add(
        '--baselines',
        nargs='*',
        default=['resnet18-d8'],
        help='models measured as baselines (eager fp32)',
    )
    add(
        '--plain-reference',
        action=on_off,
        default=True,
        help='also measure the plain-PyTorch reference of DRN models',
    )
    add(
        '--flops',
        action=on_off,
        default=True,
        help="count FLOPs (mmengine's complexity counter)",
    )


def add_run_options(add: Callable, on_off: Any) -> None:
    """The options of timing, of the outputs and of the other modes."""
    add('--warmup', type=int, default=2, help='untimed runs per case')
    add(
        '--repeat',
        type=int,
        default=5,
        help='timing turns per case, each a blocked_autorange of >= 0.2 s',
    )
    add(
        '--max-seconds',
        type=float,
        default=120.0,
        help='no new turn once a case has been timed this long',
    )
    add(
        '--interleave',
        action='store_true',
        help='build all cases in one process and time them in turns (A B C A B '
        'C ...): robust ratios on a shared machine; peak MB then includes the '
        'other models',
    )
    add(
        '--isolate',
        action=on_off,
        default=True,
        help='run each case (or the interleaved group) in a fresh process; '
        'without, memory numbers include what earlier cases left behind',
    )
    add('--json', help='write the results as JSON here')
    add('--markdown', help='write the table as markdown here')
    add('--plot', help='write the speed vs GMAC/params plot here')
    add(
        '--agreement',
        metavar='CHECKPOINT',
        help='with one MMSeg config: argmax agreement of the fast path (the first '
        "of --dtypes that is not fp32, else fp32) with eager fp32 on the config's "
        'test set, instead of timing',
    )
    add(
        '--from-json',
        metavar='JSON',
        help='no measuring: the table (and --markdown, --plot) of a --json run',
    )
    add('--worker', help=argparse.SUPPRESS)  # the cases of run_isolated's process


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for add_options in (add_case_options, add_run_options):
        add_options(parser.add_argument, argparse.BooleanOptionalAction)
    args = parser.parse_args(argv)
    if not (args.models or args.from_json or args.worker):
        parser.error('give at least one model')
    if min(args.batch, *args.shape, args.repeat, args.warmup + 1) < 1:
        parser.error('--batch, --shape and --repeat must be positive, --warmup >= 0')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available on this machine')
    if args.device == 'cpu' and 'fp16' in args.dtypes:
        parser.error("--dtypes fp16 needs --device cuda; on CPU use 'bf16'")
    if args.engines:
        args.interleave, args.plain_reference = True, False
    if args.agreement and (len(args.models) != 1 or not args.models[0].endswith('.py')):
        parser.error('--agreement needs exactly one MMSeg config file')
    return args


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    """The machine, the GEMM rates (before and after the cases; the best is
    kept) and every case's results."""
    info, results = machine_info(args.device), []
    if 'auto' in args.dtypes:
        info['precision_decision'] = precision_decision(args.device).reason
        print(f'# precision (auto): {info["precision_decision"]}')
    gemm, cases = gemm_rates(args.device), make_cases(args)
    for group in [cases] if args.interleave else [[case] for case in cases]:
        for case in group:
            print('#', *(case[key] for key in CASE_KEYS), flush=True)
        results += run_isolated(group) if args.isolate else run_group(group)
    for name, rate in gemm_rates(args.device).items():
        later = rate['gflops']
        gemm[name].update(later=[later], gflops=max(gemm[name]['gflops'], later))
    info.update(device=args.device, load_average_end=os.getloadavg())
    return dict(machine=info, gemm=gemm, results=results, argv=sys.argv[1:])


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, CheckpointError) as err:  # bad input, named
        sys.exit(f'benchmark.py: error: {err}')


def run(args: argparse.Namespace) -> None:
    """Measure (or read) the results; print and write them."""
    if args.worker:
        print(RESULT_TAG + json.dumps(run_group(json.loads(args.worker))), flush=True)
        return
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
    else:
        result = agreement(args) if args.agreement else measure(args)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=2)
    if 'results' in result:
        summarize(result['results'], result['gemm'])
        table = markdown(result['results'], result['gemm'])
        print(table)
        if args.markdown:
            with open(args.markdown, 'w') as f:
                f.write(table)
        if args.plot:
            plot(result['results'], args.plot)


if __name__ == '__main__':
    main()

"""Build and time benchmark cases in one process, as ``benchmark.py`` starts it.

``CASES`` is a JSON list of groups of cases, as ``benchmark.py`` makes them.
Each group's models and timed calls are built and warmed up, then timed in
turns (A B C A B C ..., ``torch.utils.benchmark``); after the timing each
case's memory is measured. The results go to ``--out`` as a JSON list, a case
that fails to build as an error row. What is measured and how:
docs/benchmarks.md.

    python tools/analysis_tools/benchmark_cases.py CASES.json --out RESULTS.json
"""

import argparse
import copy
import json
import os
import statistics
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.benchmark import Timer

from mmdrn.deploy import build_engine, compare, export_onnx
from mmdrn.inference import dtype_name, optimize_for_inference, resolve_dtype

#: MMSeg's ``*-d8`` backbones: ResNetV1c, strides 1,2,1,1, dilations 1,1,2,4.
D8_BASELINES = {'resnet18-d8': 18, 'resnet50-d8': 50}
D8_ARGS = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True)
NUM_CLASSES = 19  # of the 1x1 classifier that trains models without a head
TURN_SECONDS = 0.2  # min_run_time of one timing turn (blocked_autorange)
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


def build_config_model(path: str, with_cp: bool, size: Tuple[int, int]) -> Tuple:
    """A config's model (no checkpoint, SyncBN as BN, inputs not padded to a
    crop ``size``) and its scope."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    from mmdrn.openmmlab.runtime import register_scope

    cfg = Config.fromfile(path)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.with_cp = with_cp or cfg.model.backbone.get('with_cp', False)
    if cfg.model.get('data_preprocessor', {}).get('size'):
        cfg.model.data_preprocessor.size = tuple(size)
    scope = register_scope(cfg)
    init_default_scope(scope)
    models = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    return revert_sync_batchnorm(models.build(cfg.model)), scope


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
        model, scope = build_config_model(inner or spec, with_cp, size)
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


def deploy_engine(model: nn.Module, x: torch.Tensor, engine: str) -> Callable:
    """``model(x)`` exported to ONNX and run by an :mod:`mmdrn.deploy` engine
    with this process's torch thread count (its precision is the engine's)."""
    if x.device.type != 'cpu':
        raise ValueError(f'engine {engine} runs on CPU here: use --device cpu')
    data = x.contiguous().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'model.onnx')
        export_onnx(model.eval(), torch.from_numpy(data), path)
        run = build_engine(engine, path=path, threads=torch.get_num_threads())
    return lambda: run(data)


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
    model = model.to(device)
    x = torch.randn(case['batch'], 3, *size, device=device)
    result = dict(case, compute_dtype=dtype_name(dtype))
    if case['count_flops']:
        result.update(count_flops(model, x))
    cl = case['memory_format'] == 'channels_last'
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    if case['task'] == 'train':
        return result, train_step(model, kind, x, dtype, cl)
    if case['fast_path'] is None:  # the variant names an exported engine
        return result, deploy_engine(model, x, case['variant'])
    fast = optimize_for_inference(model, dtype, cl, inplace=True, **case['fast_path'])
    return result, lambda: fast(x)


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
    its model's reference case (eager fp32) of the same group."""
    refs = {r['spec']: out for r, out in outputs if r['reference'] and out is not None}
    for r, out in outputs:
        ref = refs.get(r['spec'])
        comparable = ref is not None and out is not None and ref.shape == out.shape
        if comparable and out.ndim > 1:  # N x classes x ...
            r['agreement'] = compare(ref, out)['agreement']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('cases', help='JSON file: a list of groups of cases')
    parser.add_argument('--out', required=True, help='write the results here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    with open(args.cases) as f:
        groups = json.load(f)
    results = [result for group in groups for result in run_group(group)]
    with open(args.out, 'w') as f:
        json.dump(results, f)


if __name__ == '__main__':
    main()

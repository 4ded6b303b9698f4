"""Benchmark mmdrn models: latency, throughput, peak memory and FLOPs.

Configs (MMSeg, mmpretrain; ``backbone:CONFIG``: its backbone), timm names and
MMSeg's dilated ResNet baselines, for inference (the :data:`VARIANTS`) and a
training step, in fp32/bf16/fp16, contiguous or channels_last, with or without
``with_cp``; for DRN models also a plain-PyTorch reference (``plain:MODEL``);
and the machine's GEMM rate. ``--engines`` compares inference engines instead
(torch eager and fast path, ONNX Runtime, OpenVINO; :mod:`mmdrn.deploy`) in
one process. The cases run in processes of ``benchmark_cases.py``; the table
and plot are ``benchmark_report.py``'s. What is measured and how:
docs/benchmarks.md.

    python tools/analysis_tools/benchmark.py drn_c_26 --shape 512 1024 --interleave
    python tools/analysis_tools/benchmark.py CONFIG --engines torch onnxruntime
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from itertools import product
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.benchmark import Timer

from mmdrn.inference import (
    DTYPES,
    SHORT_NAMES,
    dtype_name,
    precision_decision,
    resolve_dtype,
)

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_TOOL = os.path.join(HERE, 'benchmark_cases.py')
REPORT_TOOL = os.path.join(HERE, 'benchmark_report.py')
AGREEMENT_TOOL = os.path.join(HERE, 'benchmark_agreement.py')
MEMORY_FORMATS = ('contiguous', 'channels_last')
CASE_KEYS = ('spec', 'task', 'variant', 'dtype', 'memory_format', 'with_cp')
Case = Dict[str, Any]

#: Inference variants (``--variants``): the arguments of
#: :func:`mmdrn.inference.optimize_for_inference` besides dtype and memory
#: format. ``eager`` is the model as it is (no folding), under autocast and
#: no_grad as the others.
VARIANTS = dict(eager=dict(fold_bn=False), fast={}, compile=dict(compile=True))

#: ``--engines``: each engine's case (variant, dtype, memory format); the
#: exported ones are variants of their own, run by :mod:`mmdrn.deploy`.
ENGINE_CASES = {
    'torch': ('eager', 'fp32', 'contiguous'),
    'torch-fast': ('fast', 'fp32', 'channels_last'),
    'torch-fast-bf16': ('fast', 'bf16', 'channels_last'),
    'onnxruntime': ('onnxruntime', 'fp32', 'contiguous'),
    'openvino-f32': ('openvino-f32', 'fp32', 'contiguous'),
    'openvino-bf16': ('openvino-bf16', 'bf16', 'contiguous'),
}


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
    case counts its FLOPs; a case named twice runs once. ``fast_path`` holds
    a case's :data:`VARIANTS` arguments (None for an exported engine)."""
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
        case.update(fast_path=VARIANTS.get(kw['variant']), reference=kw == ref)
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


def run_cases(groups: List[List[Case]], isolate: bool) -> List[Case]:
    """The results of ``benchmark_cases.py`` on the groups, in one process.
    With ``isolate`` its glibc ``malloc`` maps every block above 64 KiB on its
    own: freed tensors leave the process, so its resident set follows the
    live tensors. At most an hour a case; a crash makes error rows."""
    cases = [case for group in groups for case in group]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024)) if isolate else None
    with tempfile.TemporaryDirectory() as tmp:
        given, out = os.path.join(tmp, 'cases.json'), os.path.join(tmp, 'out.json')
        with open(given, 'w') as f:
            json.dump(groups, f)
        cmd = [sys.executable, CASES_TOOL, given, '--out', out]
        try:
            run = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=3600 * len(cases)
            )
        except subprocess.TimeoutExpired:
            return [
                dict(c, status='timeout', error='over an hour a case') for c in cases
            ]
        if run.returncode == 0:
            with open(out) as f:
                return json.load(f)
    tail = ' | '.join((run.stderr or run.stdout).strip().splitlines()[-3:])
    return [dict(c, status='error', error=tail) for c in cases]


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


def add_model_options(add: Callable, on_off: Any) -> None:
    """The options that name the models."""
    models = 'configs, timm names, backbone:CONFIG, plain:MODEL, resnet{18,50}-d8'
    add('models', nargs='*', help=models)
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


def add_case_options(add: Callable, on_off: Any) -> None:
    """The options that choose each model's cases."""
    cuda = torch.cuda.is_available()
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


def add_run_options(add: Callable, on_off: Any) -> None:
    """The options of timing and of the outputs."""
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
    add(
        '--agreement',
        metavar='CHECKPOINT',
        help="no timing: the fast path's argmax agreement on the test set of the "
        'one CONFIG given, with these weights (benchmark_agreement.py; the first '
        'dtype of --dtypes other than fp32, channels_last if listed)',
    )
    add('--json', help='write the results as JSON here')
    add('--markdown', help='write the table as markdown here')
    add('--plot', help='write the speed vs GMAC/params plot here')
    add(
        '--from-json',
        metavar='JSON',
        help='no measuring: the table (and --markdown, --plot) of a --json run',
    )


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options = [
        ('models', add_model_options),
        ('cases', add_case_options),
        ('timing and outputs', add_run_options),
    ]
    for title, add_options in options:
        group = parser.add_argument_group(title)
        add_options(group.add_argument, argparse.BooleanOptionalAction)
    args = parser.parse_args(argv)
    if not (args.models or args.from_json):
        parser.error('give at least one model')
    if min(args.batch, *args.shape, args.repeat, args.warmup + 1) < 1:
        parser.error('--batch, --shape and --repeat must be positive, --warmup >= 0')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available on this machine')
    if args.device == 'cpu' and 'fp16' in args.dtypes:
        parser.error("--dtypes fp16 needs --device cuda; on CPU use 'bf16'")
    if args.engines:
        args.interleave, args.plain_reference = True, False
    return args


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    """The machine, the GEMM rates (before and after the cases; the best is
    kept) and every case's results: each group (all cases with
    ``--interleave``, else one case) in a process of its own, or all groups in
    one process without ``--isolate``."""
    info, results = machine_info(args.device), []
    if 'auto' in args.dtypes:
        info['precision_decision'] = precision_decision(args.device).reason
        print(f'# precision (auto): {info["precision_decision"]}')
    gemm, cases = gemm_rates(args.device), make_cases(args)
    groups = [cases] if args.interleave else [[case] for case in cases]
    processes = [[group] for group in groups] if args.isolate else [groups]
    for process_groups in processes:
        for group in process_groups:
            for case in group:
                print('#', *(case[key] for key in CASE_KEYS), flush=True)
        results += run_cases(process_groups, args.isolate)
    for name, rate in gemm_rates(args.device).items():
        later = rate['gflops']
        gemm[name].update(later=[later], gflops=max(gemm[name]['gflops'], later))
    info.update(device=args.device, load_average_end=os.getloadavg())
    return dict(machine=info, gemm=gemm, results=results, argv=sys.argv[1:])


def report(path: str, args: argparse.Namespace) -> int:
    """Print (and write) the table and plot of the results in ``path``."""
    cmd = [sys.executable, REPORT_TOOL, path]
    cmd += ['--markdown', args.markdown] if args.markdown else []
    cmd += ['--plot', args.plot] if args.plot else []
    sys.stdout.flush()
    return subprocess.run(cmd).returncode


def agreement(args: argparse.Namespace) -> int:
    """``--agreement``: ``benchmark_agreement.py`` with this run's options."""
    if len(args.models) != 1:
        raise SystemExit(f'--agreement takes one CONFIG, got {args.models}')
    dtype = ([name for name in args.dtypes if name != 'fp32'] + ['fp32'])[0]
    cmd = [sys.executable, AGREEMENT_TOOL, args.models[0], args.agreement]
    cmd += ['--dtype', dtype] + ['--json', args.json] * bool(args.json)
    if 'channels_last' not in args.memory_formats:
        cmd.append('--no-channels-last')
    return subprocess.run(cmd).returncode


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.agreement:
        sys.exit(agreement(args))
    if args.from_json:
        sys.exit(report(args.from_json, args))
    result = measure(args)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.json or os.path.join(tmp, 'results.json')
        with open(path, 'w') as f:
            json.dump(result, f, indent=2)
        status = report(path, args)
    sys.exit(status)


if __name__ == '__main__':
    main()

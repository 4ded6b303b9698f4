"""Benchmark mmdrn models: latency, throughput, peak memory and FLOPs.

Measures mmdrn configs (MMSeg or mmpretrain), timm model names and MMSeg's
dilated ResNet baselines (``resnet18-d8``, ``resnet50-d8``), for inference
and for a training step, in float32 / bfloat16 (float16 on GPU), contiguous /
channels_last, eager / fast path / ``torch.compile``, with or without
gradient checkpointing. The same run measures the machine's GEMM rate and,
for DRN models, a plain ``nn.Sequential`` reference rebuilt from the same
weights. What is timed and how: :mod:`mmdrn.benchmark` and
docs/benchmarks.md.

Examples::

    python tools/analysis_tools/benchmark.py drn_c_26 --shape 512 1024
    python tools/analysis_tools/benchmark.py drn_c_26 drn_d_22 \\
        --baselines resnet18-d8 --dtypes fp32 bf16 --variants eager fast \\
        --markdown out.md --json out.json
    python tools/analysis_tools/benchmark.py drn_d_105 --tasks train \\
        --shape 512 512 --with-cp both --variants eager --memory-formats contiguous
    python tools/analysis_tools/benchmark.py configs/demo/CONFIG.py --agreement CKPT
    python tools/analysis_tools/benchmark.py --from-json out.json --plot out.png
"""

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Dict, List, Optional

import torch

from mmdrn.benchmark import agreement, cases, measure, report
from mmdrn.inference import precision_decision


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark mmdrn models: latency, throughput, peak memory, FLOPs',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        'models',
        nargs='*',
        help='config files, timm names, backbone:CONFIG, '
        f'plain:MODEL, {"/".join(cases.D8_BASELINES)}',
    )
    add('--shape', nargs=2, type=int, default=[512, 1024], metavar=('H', 'W'))
    add('--batch', type=int, default=1)
    add(
        '--device',
        choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu',
    )
    add('--tasks', nargs='+', choices=cases.TASKS, default=['infer'])
    add(
        '--variants',
        nargs='+',
        choices=cases.VARIANTS,
        default=['eager', 'fast'],
        help='inference variants: eager model, fast path (optimize_for_inference), '
        'fast path + torch.compile',
    )
    add(
        '--dtypes',
        nargs='+',
        choices=sorted(cases.DTYPES) + ['auto'],
        default=['fp32', 'auto'],
        help='compute dtypes (autocast); auto: what the fast path picks here',
    )
    add(
        '--memory-formats',
        nargs='+',
        choices=cases.MEMORY_FORMATS,
        default=list(cases.MEMORY_FORMATS),
    )
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
        action=argparse.BooleanOptionalAction,
        default=True,
        help='also measure the plain nn.Sequential reference of DRN models',
    )
    add(
        '--flops',
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count FLOPs (mmengine's complexity analysis)",
    )
    add('--warmup', type=int, default=2)
    add('--repeat', type=int, default=5)
    add(
        '--max-seconds',
        type=float,
        default=120.0,
        help='fewer timed runs when they would exceed this (at least one)',
    )
    add('--case-timeout', type=float, default=3600.0, help='seconds per case')
    add(
        '--rounds',
        type=int,
        default=1,
        help='run the whole list of cases this many times, one case after the '
        'other, and pool the timed runs: slow drifts of the machine load then '
        'hit every case alike',
    )
    add(
        '--interleave',
        action='store_true',
        help='build all cases in one process and time them in turns (A B C A B C '
        '...): robust ratios on a shared machine; peak MB then includes the '
        'other models',
    )
    add('--threads', type=int, default=None, help='torch threads')
    add(
        '--isolate',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='run each case (or interleaved group) in a fresh process; without, '
        'memory numbers include what earlier cases left in the allocator',
    )
    add('--json', help='write the results as JSON here')
    add('--markdown', help='write the table as markdown here')
    add('--plot', help='write the speed vs GMAC/params plot here')
    add(
        '--agreement',
        metavar='CHECKPOINT',
        help='with one MMSeg config: argmax agreement of the fast path (first of '
        '--dtypes that is not fp32, else auto) with eager fp32 on the '
        "config's test set, instead of timing",
    )
    add(
        '--from-json',
        metavar='JSON',
        help='no measuring: print (and write with --markdown/--plot) the results '
        'of an earlier --json run',
    )
    args = parser.parse_args(argv)
    if args.from_json is None and not args.models:
        parser.error('give at least one model')
    if args.batch < 1 or min(args.shape) < 1:
        parser.error(
            f'--batch and --shape must be positive, got {args.batch}, {args.shape}'
        )
    for name in ('warmup', 'repeat', 'rounds'):
        low = 0 if name == 'warmup' else 1
        if getattr(args, name) < low:
            parser.error(f'--{name} must be >= {low}, got {getattr(args, name)}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available on this machine')
    if args.device == 'cpu' and 'fp16' in args.dtypes:
        parser.error("--dtypes fp16 needs --device cuda; on CPU use 'bf16'")
    if args.agreement and (
        len(args.models) != 1 or not cases.is_config(args.models[0])
    ):
        parser.error('--agreement needs exactly one MMSeg config file')
    return args


def run_agreement(args: argparse.Namespace) -> Dict[str, Any]:
    """``--agreement``: print and return the fast path's argmax agreement."""
    low = [d for d in args.dtypes if d != 'fp32']
    dtype = cases.DTYPES.get(low[0], 'auto') if low else 'auto'
    result = agreement(
        args.models[0],
        args.agreement,
        dtype=dtype,
        channels_last='channels_last' in args.memory_formats,
    )
    print(
        f'fast path ({result["dtype"]}, {result["folded"]} BN folded) vs eager '
        f'fp32: {100 * result["agree"]:.3f}% of {result["pixels"]} pixels agree '
        f'({result["images"]} images)'
    )
    return result


def measure_all(args: argparse.Namespace, gemm: Dict[str, Dict]) -> List[Dict]:
    """Run every case ``args.rounds`` times; return the pooled results.

    The GEMM rates are measured again after every round; the best is kept.
    """
    common = ('tasks', 'variants', 'dtypes', 'memory_formats', 'with_cp', 'baselines')
    common += ('batch', 'device', 'warmup', 'repeat', 'max_seconds', 'threads')
    todo = cases.make_cases(
        args.models,
        plain=args.plain_reference,
        flops=args.flops,
        shape=list(args.shape),
        **{name: getattr(args, name) for name in common},
    )
    results: List[Dict] = []
    for index in range(args.rounds):
        if index:
            todo = [dict(c, count_flops=False) for c in todo]
        round_results = []
        for group in [todo] if args.interleave else [[c] for c in todo]:
            for c in group:
                what = [c[k] for k in ('spec', 'task', 'variant', 'dtype')]
                what += [c['memory_format'], f'cp={c["with_cp"]}']
                print(f'# round {index + 1}/{args.rounds}:', *what, flush=True)
            if args.isolate:
                round_results += cases.run_isolated(
                    group, args.case_timeout * len(group)
                )
            else:
                round_results += cases.run_here(group)
        if index == 0:
            results = round_results
        else:
            for first, later in zip(results, round_results):
                report.merge_rounds(first, later)
        for name, rate in gemm.items():
            again = measure.gemm_rate(getattr(torch, name), args.device)['gflops']
            rate.setdefault('later', []).append(again)
            rate['gflops'] = max(rate['gflops'], again)
    return results


def write_outputs(result: Dict[str, Any], args: argparse.Namespace) -> None:
    """Print the table and the summary; write --json, --markdown and --plot."""
    results, gemm = result['results'], result['gemm']
    report.summarize(results, gemm)
    rows = report.table_rows(results)
    lines = report.summary_lines(results, gemm)
    print(report.format_text(rows))
    print('\n'.join(lines))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(report.format_markdown(rows) + '\n\n')
            f.write('\n'.join(f'- {line}' for line in lines) + '\n')
    if args.plot:
        report.plot(results, args.plot)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        write_outputs(result, argparse.Namespace(**dict(vars(args), json=None)))
        return result
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.agreement:
        result = run_agreement(args)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=2)
        return result
    info = measure.machine_info(args.device)
    print(f'# machine: {json.dumps(info)}')
    if args.device == 'cpu' and not info['native_bf16_cpu'] and 'bf16' in args.dtypes:
        print(
            '# warning: this CPU has no native bfloat16 (AMX / AVX512-BF16); '
            'bf16 cases are emulated and can be very slow'
        )
    if 'auto' in args.dtypes:
        decision = precision_decision(args.device)
        info['precision_decision'] = decision.reason
        print(f'# precision (auto): {decision.reason}')
    gemm_dtypes = ['float32', 'bfloat16'] + (
        ['float16'] if args.device == 'cuda' else []
    )
    gemm = {d: measure.gemm_rate(getattr(torch, d), args.device) for d in gemm_dtypes}
    print('# ' + ', '.join(f'{k}: {v["gflops"]:.1f} GFLOP/s' for k, v in gemm.items()))
    results = measure_all(args, gemm)
    with contextlib.suppress(OSError):
        info['load_average_end'] = list(os.getloadavg())
    result = dict(
        machine=info,
        gemm=gemm,
        results=results,
        argv=list(sys.argv[1:] if argv is None else argv),
    )
    write_outputs(result, args)
    return result


if __name__ == '__main__':
    main()

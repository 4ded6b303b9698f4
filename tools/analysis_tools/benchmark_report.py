"""The table and plot of ``benchmark.py`` results (its ``--json`` file).

Derives the rates and ratios from the measured results, prints the markdown
table with the GEMM rates, and writes it (``--markdown``) and the speed over
GMAC and parameters (``--plot``). ``benchmark.py`` runs this after measuring,
and for ``--from-json``. What the columns mean: docs/benchmarks.md.

    python tools/analysis_tools/benchmark_report.py run.json --markdown run.md
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

from tabulate import tabulate

Case = Dict[str, Any]
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


def is_reference(r: Case) -> bool:
    """Whether ``r`` is its model's reference case: eager, fp32, contiguous."""
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


def markdown(results: List[Case], gemm: Dict[str, Dict]) -> str:
    """The results as a markdown table (a failed case shows its error) and
    the GEMM rates."""
    rows = []
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
    table = tabulate(rows, HEADER, tablefmt='github', disable_numparse=True)
    rates = ', '.join(f'{k} {v["gflops"]:.1f} GFLOP/s' for k, v in gemm.items())
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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('results', help='the JSON file of a benchmark.py run')
    parser.add_argument('--markdown', help='write the table as markdown here')
    parser.add_argument('--plot', help='write the speed vs GMAC/params plot here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    with open(args.results) as f:
        run = json.load(f)
    if not {'results', 'gemm'} <= set(run):
        sys.exit(f'benchmark_report.py: error: {args.results} is no benchmark.py run')
    summarize(run['results'], run['gemm'])
    table = markdown(run['results'], run['gemm'])
    print(table)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table)
    if args.plot:
        try:
            plot(run['results'], args.plot)
        except ValueError as err:  # named: there is nothing to plot
            sys.exit(f'benchmark_report.py: error: {err}')


if __name__ == '__main__':
    main()

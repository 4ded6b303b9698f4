"""Ratios, tables, summary lines and the plot of benchmark results.

Everything here reads result dicts (see :mod:`mmdrn.benchmark.cases`) and
states measurements only: latencies, rates and ratios between cases of the
same run.
"""

import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    'COLUMNS',
    'format_markdown',
    'format_text',
    'merge_rounds',
    'plot',
    'summarize',
    'summary_lines',
    'table_rows',
]

Result = Dict[str, Any]
Gemm = Dict[str, Dict[str, Any]]


def _is_reference(r: Result) -> bool:
    # eager float32 contiguous without with_cp: what every ratio divides by
    return (
        r['variant'] == 'eager'
        and r['dtype'] == 'fp32'
        and r['memory_format'] == 'contiguous'
        and not r['with_cp']
    )


def _rate(result: Result, macs: Optional[float]) -> Optional[float]:
    if not macs or result.get('status') != 'ok':
        return None
    factor = 3 if result['task'] == 'train' else 1  # backward ~ 2 x forward
    return 2 * factor * macs / (result['latency_ms'] / 1e3) / 1e9


def summarize(results: List[Result], gemm: Gemm) -> List[Result]:
    """Add FLOP rates, GEMM fractions and ratios to the results (in place).

    * ``gflops``: ``2 x MAC / latency`` (x3 for a training step);
    * ``gemm_fraction``: ``gflops`` over the same-run GEMM rate of the
      compute dtype;
    * ``speedup``: latency of the model's reference case (eager float32
      contiguous without ``with_cp``, same task) over this latency;
    * ``memory_ratio``: ``step_mb`` over the reference's;
    * ``vs_baseline``: the first baseline's latency (same task) over this
      latency.
    """
    macs = {r['spec']: r['macs'] for r in results if r.get('macs')}
    refs = {
        (r['spec'], r['task']): r
        for r in results
        if r.get('status') == 'ok' and _is_reference(r)
    }
    baselines = [r for r in results if r['role'] == 'baseline' and r['status'] == 'ok']
    for r in results:
        ok = r.get('status') == 'ok'
        r['macs'] = macs.get(r['spec'])
        r['gflops'] = _rate(r, r['macs'])
        rate = gemm.get(r.get('compute_dtype', ''), {}).get('gflops')
        r['gemm_fraction'] = r['gflops'] / rate if r['gflops'] and rate else None
        ref = refs.get((r['spec'], r['task'])) if ok else None
        r['speedup'] = ref['latency_ms'] / r['latency_ms'] if ref else None
        r['memory_ratio'] = (
            r['step_mb'] / ref['step_mb']
            if ref and r.get('step_mb') and ref.get('step_mb')
            else None
        )
        base = next((b for b in baselines if b['task'] == r['task']), None)
        r['vs_baseline'] = base['latency_ms'] / r['latency_ms'] if ok and base else None
    return results


def merge_rounds(first: Result, later: Result) -> Result:
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


def _fmt(value: Any, spec: str = '.1f') -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _percent(fraction: Optional[float]) -> str:
    return _fmt(100 * fraction if fraction else None, '.0f')


COLUMNS: Tuple[Tuple[str, Callable[[Result], str]], ...] = (
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
_LATENCY = [name for name, _ in COLUMNS].index('latency ms')


def table_rows(results: List[Result]) -> List[List[str]]:
    """The table cells, one list per result (errors in the latency column)."""
    rows = []
    for r in results:
        row = [str(fn(r)) for _, fn in COLUMNS]
        if r.get('status') != 'ok':
            row[_LATENCY] = f'{r.get("status")}: {r.get("error", "")}'[:80]
        rows.append(row)
    return rows


def format_text(rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width text table."""
    header = [name for name, _ in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append('  '.join('-' * w for w in widths))
    lines += ['  '.join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return '\n'.join(lines)


def format_markdown(rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    header = [name for name, _ in COLUMNS]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def summary_lines(results: List[Result], gemm: Gemm) -> List[str]:
    """Sentences with the run's key measurements and ratios.

    The GEMM rates; each plain reference's latency over its model's (eager
    float32); each fast-path case's speed-up over eager float32 (median and
    best runs) with its fraction of the GEMM rate; the step memory of
    ``with_cp`` training steps against the same step without.
    """
    lines = [
        'GEMM rate (same run): '
        + ', '.join(f'{k} {v["gflops"]:.1f} GFLOP/s' for k, v in gemm.items())
    ]
    ok = [r for r in results if r.get('status') == 'ok']

    def find(**kw: Any) -> List[Result]:
        return [r for r in ok if all(r.get(k) == v for k, v in kw.items())]

    for plain in find(role='plain'):
        inner = plain['spec'][len('plain:') :]
        target = f'backbone:{inner}' if inner.endswith('.py') else inner
        for model in find(spec=target, task='infer'):
            if _is_reference(model):
                lines.append(
                    f'{target} eager fp32 speed / plain reference: '
                    f'{plain["latency_ms"] / model["latency_ms"]:.3f}'
                )
    refs = {r['spec']: r for r in find(role='model', task='infer') if _is_reference(r)}
    for r in find(role='model', task='infer'):
        if r['variant'] != 'eager' and r.get('speedup'):
            best = refs[r['spec']]['best_ms'] / r['best_ms']
            lines.append(
                f'{r["spec"]} {r["variant"]} ({r["compute_dtype"]}, '
                f'{r["memory_format"]}): {r["speedup"]:.2f}x eager fp32 '
                f'(best runs: {best:.2f}x), {_percent(r.get("gemm_fraction"))}% of '
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
                f'{_fmt(ref[0].get("peak_mb"), ".0f")} MB)'
            )
    return lines


def plot(results: List[Result], path: str) -> None:
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
    eager = [r for r in ok if _is_reference(r) and r.get('macs')]
    if not eager:
        raise ValueError('nothing to plot: no eager fp32 inference results with FLOPs')
    fast: Dict[str, Result] = {}
    for r in ok:
        if r['variant'] != 'eager' and r['img_s'] > fast.get(r['spec'], {}).get(
            'img_s', 0
        ):
            fast[r['spec']] = r
    params = {r['spec']: r['params'] for r in results if r.get('params')}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, label in (
        (axes[0], 'macs', 'GMAC per image'),
        (axes[1], 'params', 'parameters (M)'),
    ):
        for r in eager:
            if key == 'macs':
                value = r['macs'] / r['batch'] / 1e9
            elif r['spec'] in params:
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

"""tools/analysis_tools/benchmark.py (and the benchmark_cases.py processes it
starts, and benchmark_report.py) as users run them (separate processes).

Tiny inputs: timings are not asserted, only how they are collected, and what
the report derives from them (checked on given results).
"""

import json
import statistics
from pathlib import Path

import pytest
import torch
from tool_runner import REPO, check, run_tool

TOOL = 'analysis_tools/benchmark.py'
REPORT = 'analysis_tools/benchmark_report.py'
DEMO_CONFIG = (
    Path(REPO) / 'configs' / 'demo' / 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
)
TINY = ['--shape', '32', '32', '--warmup', '0', '--repeat', '1', '--no-isolate']


def benchmark(tmp_path, *args: str, ok: bool = True):
    """Run the tool; its output, and its JSON results when it wrote them."""
    out = tmp_path / 'run.json'
    proc = run_tool(TOOL, [*args, '--json', str(out)], cwd=str(tmp_path), timeout=900)
    text = check(proc) if ok else proc.stdout + proc.stderr
    return text, json.loads(out.read_text()) if out.exists() else None


def rows(markdown: str) -> list:
    """The table of the tool's markdown, as dicts by column name."""
    lines = [line for line in markdown.splitlines() if line.startswith('| ')]
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    cells = [
        [cell.strip() for cell in line.strip('|').split('|')] for line in lines[1:]
    ]
    return [dict(zip(header, row)) for row in cells if row[0] != '---']


def test_help_states_the_defaults_as_they_are(tmp_path):
    help_text = ' '.join(check(run_tool(TOOL, ['-h'], cwd=str(tmp_path))).split())
    assert (
        '--plain-reference, --no-plain-reference also measure the plain-PyTorch '
        'reference of DRN models (default: True)'
    ) in help_text
    assert '--isolate, --no-isolate run each case' in help_text
    assert '--variants {eager,fast,compile}' in help_text
    assert "(default: ['fp32', 'auto'])" in help_text


def test_a_grid_of_cases_and_what_is_recorded(tmp_path):
    args = ['drn_d_22', '--tasks', 'infer', 'train', '--with-cp', 'both']
    args += ['--dtypes', 'fp32', 'fp32', 'auto', '--memory-formats', 'contiguous']
    args += ['--baselines', 'resnet18-d8', 'resnet50-d8', *TINY]
    text, saved = benchmark(tmp_path, *args)
    results = saved['results']
    assert all(r['status'] == 'ok' for r in results), text[-3000:]
    keys = [
        (r['spec'], r['task'], r['variant'], r['dtype'], r['with_cp']) for r in results
    ]
    assert len(keys) == len(set(keys))  # fp32 named twice: measured once
    # auto: the precision decision, printed with its reason; its dtype was run
    line = next(x for x in text.splitlines() if x.startswith('# precision (auto): '))
    decision = line[len('# precision (auto): ') :]
    assert 'float32' in decision or 'bfloat16' in decision
    assert saved['machine']['precision_decision'] == decision
    auto = 'bf16' if decision.startswith('bfloat16') else 'fp32'
    assert {r['dtype'] for r in results} == {'fp32', auto}
    # per model and task its reference first; training steps are eager only
    assert keys[0] == ('drn_d_22', 'infer', 'eager', 'fp32', False)
    train = [k for k in keys if k[:2] == ('drn_d_22', 'train')]
    assert train[0] == ('drn_d_22', 'train', 'eager', 'fp32', False)
    assert {k[2] for k in train} == {'eager'} and {k[4] for k in train} == {False, True}
    assert ('plain:drn_d_22', 'infer', 'eager', 'fp32', False) in keys
    baselines = [(r['spec'], r['task']) for r in results if r['role'] == 'baseline']
    assert baselines == [
        (b, t) for b in ('resnet18-d8', 'resnet50-d8') for t in ('infer', 'train')
    ]
    # FLOPs once per model: mmengine's count (MACs) of DRN-D-22 at 32x32, and
    # its parameters without the classifier
    counted = [r for r in results if r['spec'] == 'drn_d_22' and r.get('macs')]
    assert len(counted) == 1 and counted[0] is results[0]
    assert 0.2e9 < counted[0]['macs'] < 0.3e9 and 15.8e6 < counted[0]['params'] < 16.0e6
    for r in results:
        median = statistics.median(r['times_s'])
        assert r['turns'] == 1 and r['shape'] == [32, 32] and r['device'] == 'cpu'
        assert r['latency_ms'] == pytest.approx(1e3 * median)
        assert r['best_ms'] == pytest.approx(1e3 * min(r['times_s']))
        assert r['img_s'] == pytest.approx(1 / median)
        assert r['peak_mb'] > 0 and r['memory_method'].startswith('peak RSS')
    machine = saved['machine']
    assert machine['torch'] == torch.__version__ and machine['cpu'] and machine['os']
    assert isinstance(machine['amx'], bool) and isinstance(
        machine['native_bf16_cpu'], bool
    )
    assert 256 <= saved['gemm']['float32']['n'] <= 2048
    assert (
        saved['gemm']['float32']['gflops'] > 0
        and len(saved['gemm']['float32']['later']) == 1
    )
    assert saved['argv'][0] == 'drn_d_22'


# one arch is checked in the default suite by the table tests
@pytest.mark.slow
def test_every_drn_arch_has_a_plain_reference(tmp_path):
    # the tool refuses a reference that does not compute forward_features
    models = ['plain:drn_a_18', 'plain:drn_a_50', 'plain:drn_c_26', 'plain:resnet18']
    args = [*models, '--variants', 'eager', '--dtypes', 'fp32', '--baselines']
    text, saved = benchmark(tmp_path, *args, '--memory-formats', 'contiguous', *TINY)
    status = {r['spec']: r['status'] for r in saved['results']}
    assert status == {m: 'ok' for m in models[:3]} | {'plain:resnet18': 'error'}
    assert 'needs a model with a mmdrn DRN inside, got ResNet' in text


def test_config_cases_and_errors_are_rows_of_an_isolated_interleaved_run(tmp_path):
    models = [str(DEMO_CONFIG), 'no_such_model', 'missing.py', 'plain:drn_d_22']
    args = [
        *models,
        '--tasks',
        'infer',
        'train',
        '--with-cp',
        'both',
        '--variants',
        'fast',
    ]
    args += ['--dtypes', 'fp32', '--memory-formats', 'channels_last', '--baselines']
    args += ['--shape', '32', '32', '--warmup', '1', '--repeat', '2', '--interleave']
    text, saved = benchmark(tmp_path, *args, '--no-flops')
    results = {}
    for r in saved['results']:
        spec = r['spec'].replace(f'{REPO}/', '')
        results[spec, r['task'], r['variant'], r['with_cp']] = r
    config = 'configs/demo/fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
    expected_ok = [
        (config, 'train', 'eager', True),
        (config, 'infer', 'fast', False),
        (f'backbone:{config}', 'infer', 'eager', False),
        (f'plain:{config}', 'infer', 'eager', False),
        ('plain:drn_d_22', 'train', 'eager', False),
    ]
    for key in expected_ok:
        assert results[key]['status'] == 'ok' and results[key]['turns'] == 2, key
        assert results[key]['memory_method'].startswith('peak RSS')  # the worker's
    missing = results['no_such_model', 'infer', 'eager', False]['error']
    assert "timm model name, got 'no_such_model'" in missing
    assert 'missing.py' in results['missing.py', 'infer', 'eager', False]['error']
    plain = results['plain:drn_d_22', 'train', 'eager', True]
    assert (
        plain['status'] == 'error'
        and 'plain: references have no with_cp' in plain['error']
    )
    assert '| error: ValueError: model must be' in text


# a timing budget; the turns themselves run in every benchmark test
@pytest.mark.slow
def test_turns_stop_at_max_seconds(tmp_path):
    args = ['drn_d_22', '--variants', 'eager', '--dtypes', 'fp32', '--baselines']
    args += [
        '--memory-formats',
        'contiguous',
        '--no-plain-reference',
        '--no-flops',
        *TINY,
    ]
    _, saved = benchmark(tmp_path, *args, '--repeat', '50', '--max-seconds', '0.3')
    (result,) = saved['results']
    # each turn times at least 0.2 s: the second one passes 0.3 s
    assert 1 < result['turns'] < 50 and result['timed_s'] > 0.3


@pytest.mark.slow
def test_with_cp_lowers_the_step_memory(tmp_path):
    args = ['drn_d_22', 'resnet18-d8', '--tasks', 'train', '--with-cp', 'both']
    args += [
        '--shape',
        '256',
        '256',
        '--warmup',
        '1',
        '--repeat',
        '1',
        '--dtypes',
        'fp32',
    ]
    args += ['--memory-formats', 'contiguous', '--baselines', '--no-plain-reference']
    _, saved = benchmark(tmp_path, *args, '--no-flops', '--interleave')
    step = {(r['spec'], r['with_cp']): r['step_mb'] for r in saved['results']}
    assert step[('drn_d_22', True)] < step[('drn_d_22', False)] - 10
    assert step[('resnet18-d8', True)] < step[('resnet18-d8', False)] - 5


def given_result(**kw) -> dict:
    """A measured result as benchmark_cases.py writes it: eager fp32 DRN-D-22
    inference unless ``kw`` says otherwise."""
    case = dict(
        spec='drn_d_22',
        role='model',
        task='infer',
        variant='eager',
        dtype='fp32',
        memory_format='contiguous',
        with_cp=False,
        compute_dtype='float32',
        status='ok',
        batch=1,
        shape=[32, 32],
        step_mb=100.0,
        peak_mb=900.0,
    )
    case.update(kw)
    latency = case.get('latency_ms', 1.0)
    return dict(case, best_ms=latency, img_s=1e3 / latency)


def test_report_ratios_and_plot_from_given_results(tmp_path):
    results = [
        given_result(latency_ms=100.0, macs=1e9, params=16e6),
        given_result(variant='fast', memory_format='channels_last', latency_ms=25.0),
        given_result(task='train', latency_ms=300.0),
        given_result(task='train', with_cp=True, latency_ms=400.0, step_mb=50.0),
        given_result(spec='plain:drn_d_22', role='plain', latency_ms=98.0),
        given_result(
            spec='resnet18-d8', role='baseline', latency_ms=50.0, macs=5e8, params=1e7
        ),
        given_result(spec='drn_c_26', status='error', error='RuntimeError: boom'),
    ]
    given = tmp_path / 'given.json'
    given.write_text(
        json.dumps(dict(results=results, gemm={'float32': {'gflops': 40.0}}))
    )
    md, png = tmp_path / 'table.md', tmp_path / 'plot.png'
    args = [str(given), '--markdown', str(md), '--plot', str(png)]
    check(run_tool(REPORT, args, cwd=str(tmp_path)))
    eager, fast, train, train_cp, plain, base, failed = rows(md.read_text())
    assert [eager[k] for k in ('GMAC', 'GFLOP/s', '% GEMM', 'x ref', 'x base')] == [
        '1.0',
        '20.0',
        '50',
        '1.00',
        '0.50',
    ]
    assert (fast['GFLOP/s'], fast['x ref'], fast['format']) == ('80.0', '4.00', 'cl')
    assert train['GFLOP/s'] == '20.0' and train['x base'] == '-'  # x3 for training
    assert (train_cp['x ref'], train_cp['mem/ref'], train_cp['cp']) == (
        '0.75',
        '0.50',
        'on',
    )
    assert plain['x ref'] == '1.02'  # against drn_d_22 eager fp32
    assert base['x ref'] == '1.00' and base['x base'] == '1.00'
    assert (
        failed['latency ms'] == 'error: RuntimeError: boom' and failed['x ref'] == '-'
    )
    assert md.read_text().endswith('\n- GEMM rate (same run): float32 40.0 GFLOP/s\n')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_report_names_what_it_cannot_do(tmp_path):
    given, png = tmp_path / 'given.json', tmp_path / 'plot.png'
    fast = given_result(variant='fast', memory_format='channels_last', latency_ms=25.0)
    given.write_text(json.dumps(dict(results=[fast], gemm={})))
    proc = run_tool(REPORT, [str(given), '--plot', str(png)], cwd=str(tmp_path))
    assert proc.returncode == 1 and not png.exists()
    message = 'benchmark_report.py: error: nothing to plot: no eager fp32 inference'
    assert message in proc.stderr
    given.write_text(json.dumps(dict(pixels=8192, agree=1.0)))
    proc = run_tool(REPORT, [str(given)], cwd=str(tmp_path))
    assert proc.returncode == 1
    assert f'benchmark_report.py: error: {given} is no benchmark.py run' in proc.stderr


# the report of given results and a measured grid are default-suite tests
@pytest.mark.slow
def test_a_run_writes_table_json_markdown_and_plot(tmp_path):
    md, png = tmp_path / 'run.md', tmp_path / 'plot.png'
    args = ['drn_d_22', '--dtypes', 'fp32', '--memory-formats', 'contiguous', *TINY]
    text, saved = benchmark(tmp_path, *args, '--markdown', str(md), '--plot', str(png))
    assert 'latency ms' in text and 'GEMM rate (same run)' in text
    specs = [(r['spec'], r['variant']) for r in saved['results']]
    assert specs == [
        ('drn_d_22', 'eager'),
        ('drn_d_22', 'fast'),
        ('plain:drn_d_22', 'eager'),
        ('resnet18-d8', 'eager'),
    ]
    header = md.read_text().splitlines()[0]
    assert header.split()[:4] == ['|', 'model', '|', 'task']
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # the same table again from the saved results, without measuring
    again = tmp_path / 'again.md'
    check(
        run_tool(
            TOOL,
            ['--from-json', str(tmp_path / 'run.json'), '--markdown', str(again)],
            cwd=str(tmp_path),
        )
    )
    assert again.read_text() == md.read_text()


BAD = [
    ([], 'give at least one model'),
    (['drn_d_22', '--dtypes', 'fp16'], "fp16 needs --device cuda; on CPU use 'bf16'"),
    (['drn_d_22', '--repeat', '0'], '--repeat must be positive'),
    (['drn_d_22', '--variants', 'onnx'], "invalid choice: 'onnx' (choose from"),
]


def test_bad_command_lines_are_named(tmp_path):
    for args, message in BAD:
        proc = run_tool(TOOL, args + ['--device', 'cpu'], cwd=str(tmp_path))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr

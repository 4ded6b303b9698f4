"""mmdrn.benchmark.report: ratios, tables and summary lines of given results."""

import pytest

from mmdrn.benchmark import report


@pytest.fixture
def result(make_case):
    def make(**kw):
        fields = make_case(compute_dtype='float32', status='ok', step_mb=100.0)
        fields.update(peak_mb=900.0, best_ms=None)
        fields.update(kw)
        if 'latency_ms' in fields:
            fields['best_ms'] = fields['best_ms'] or fields['latency_ms']
            fields['img_s'] = 1e3 / fields['latency_ms']
        return fields

    return make


@pytest.fixture
def results(result):
    return [
        result(latency_ms=100.0, macs=1e9, params=16e6),
        result(variant='fast', memory_format='channels_last', latency_ms=25.0),
        result(task='train', latency_ms=300.0),
        result(task='train', with_cp=True, latency_ms=400.0, step_mb=50.0),
        result(spec='plain:drn_d_22', role='plain', latency_ms=98.0),
        result(spec='resnet18-d8', role='baseline', latency_ms=50.0, macs=5e8),
        result(spec='drn_c_26', status='error', error='RuntimeError: boom'),
    ]


GEMM = {'float32': {'gflops': 40.0}}


def test_summarize_ratios(results):
    report.summarize(results, GEMM)
    eager, fast, train, train_cp, plain, base, failed = results
    assert eager['gflops'] == pytest.approx(20.0)  # 2 x 1 GMAC in 0.1 s
    assert eager['gemm_fraction'] == pytest.approx(0.5)
    assert fast['speedup'] == pytest.approx(4.0)
    assert fast['gflops'] == pytest.approx(80.0)  # MACs shared by the spec
    assert train['gflops'] == pytest.approx(20.0)  # 3 x forward in 0.3 s
    assert train_cp['speedup'] == pytest.approx(0.75)
    assert train_cp['memory_ratio'] == pytest.approx(0.5)
    assert eager['vs_baseline'] == pytest.approx(0.5)
    assert train['vs_baseline'] is None  # no training baseline
    assert failed['speedup'] is None and failed['vs_baseline'] is None


def test_summary_lines_state_measurements_only(results):
    report.summarize(results, GEMM)
    lines = report.summary_lines(results, GEMM)
    assert lines == [
        'GEMM rate (same run): float32 40.0 GFLOP/s',
        'drn_d_22 eager fp32 speed / plain reference: 0.980',
        'drn_d_22 fast (float32, channels_last): 4.00x eager fp32 (best runs: '
        '4.00x), 200% of the float32 GEMM rate',
        'drn_d_22 train float32 with_cp: step memory 50 MB vs 100 MB = 0.50x '
        '(process peak 900 vs 900 MB)',
    ]
    assert not any('target' in line or 'guard' in line for line in lines)


def test_tables(results):
    report.summarize(results, GEMM)
    rows = report.table_rows(results)
    header = [name for name, _ in report.COLUMNS]
    assert rows[0][: header.index('x ref') + 1] == [
        'drn_d_22', 'infer', 'eager', 'float32', 'nchw', 'off', '100.0', '100.0',
        '10.000', '1.0', '20.0', '50', '900', '100', '1.00',
    ]  # fmt: skip
    assert rows[-1][header.index('latency ms')] == 'error: RuntimeError: boom'
    text = report.format_text(rows).splitlines()
    assert text[0].split() == ' '.join(header).split()
    assert len(text) == 2 + len(results)
    markdown = report.format_markdown(rows).splitlines()
    assert markdown[0] == '| ' + ' | '.join(header) + ' |'
    assert markdown[1] == '|' + '---|' * len(header)
    assert markdown[2].startswith('| drn_d_22 | infer | eager | float32 | nchw |')


def test_rounds_pool_the_timed_runs(result):
    first = result(times_s=[1.0, 3.0], warmup_s=[5.0], step_mb=10.0)
    later = result(times_s=[2.0, 2.5], warmup_s=[4.0], step_mb=99.0)
    merged = report.merge_rounds(first, later)
    assert merged['times_s'] == [1.0, 3.0, 2.0, 2.5]
    assert merged['latency_ms'] == pytest.approx(2250.0)
    assert merged['best_ms'] == pytest.approx(1000.0)
    assert merged['img_s'] == pytest.approx(1 / 2.25)
    assert merged['step_mb'] == 10.0 and merged['rounds'] == 2
    failed = report.merge_rounds(merged, dict(later, status='timeout'))
    assert failed['times_s'] == [1.0, 3.0, 2.0, 2.5]
    assert failed['failed_rounds'] == 1


def test_plot_writes_a_png(results, tmp_path):
    report.summarize(results, GEMM)
    path = tmp_path / 'plot.png'
    report.plot(results, str(path))
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(ValueError, match='nothing to plot'):
        report.plot(results[1:2], str(path))

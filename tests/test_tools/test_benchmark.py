"""tools/analysis_tools/benchmark.py as users run it (separate processes).

The measuring itself is tested in tests/test_benchmark/; here: the command
line, its outputs and its messages.
"""

import json

from tool_runner import check, run_tool

TOOL = 'analysis_tools/benchmark.py'


def test_help_states_the_defaults_as_they_are(tmp_path):
    out = check(run_tool(TOOL, ['-h'], cwd=str(tmp_path)))
    help_text = ' '.join(out.split())
    assert (
        '--plain-reference, --no-plain-reference also measure the plain '
        'nn.Sequential reference of DRN models (default: True)'
    ) in help_text
    assert '--isolate, --no-isolate run each case' in help_text
    assert '--flops, --no-flops' in help_text


def test_a_run_writes_table_json_markdown_and_plot(tmp_path):
    out, md, png = tmp_path / 'run.json', tmp_path / 'run.md', tmp_path / 'plot.png'
    args = ['drn_d_22', '--shape', '32', '32', '--warmup', '0', '--repeat', '1']
    args += ['--no-isolate', '--dtypes', 'fp32', '--memory-formats', 'contiguous']
    args += ['--json', str(out), '--markdown', str(md), '--plot', str(png)]
    text = check(run_tool(TOOL, args, cwd=str(tmp_path)))
    assert 'latency ms' in text and 'GEMM rate (same run)' in text
    assert 'eager fp32 speed / plain reference: ' in text
    assert 'target' not in text
    saved = json.loads(out.read_text())
    specs = [(r['spec'], r['variant']) for r in saved['results']]
    assert specs == [
        ('drn_d_22', 'eager'),
        ('drn_d_22', 'fast'),
        ('plain:drn_d_22', 'eager'),
        ('resnet18-d8', 'eager'),
    ]
    assert all(r['status'] == 'ok' for r in saved['results'])
    assert saved['gemm']['float32']['gflops'] > 0
    assert len(saved['gemm']['float32']['later']) == 1  # measured again after
    assert saved['machine']['device'] == 'cpu'
    assert saved['argv'][0] == 'drn_d_22'
    assert md.read_text().startswith('| model | task |')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # the same tables again from the saved results, without measuring
    again = tmp_path / 'again.md'
    args = ['--from-json', str(out), '--markdown', str(again)]
    check(run_tool(TOOL, args, cwd=str(tmp_path)))
    assert again.read_text() == md.read_text()


def test_auto_precision_prints_the_decision_and_why(tmp_path):
    out = tmp_path / 'run.json'
    args = ['drn_d_22', '--shape', '32', '32', '--warmup', '0', '--repeat', '1']
    args += ['--no-isolate', '--dtypes', 'auto', '--memory-formats', 'contiguous']
    args += ['--no-plain-reference', '--baselines', '--no-flops', '--json', str(out)]
    text = check(run_tool(TOOL, args, cwd=str(tmp_path)))
    line = next(x for x in text.splitlines() if x.startswith('# precision (auto): '))
    reason = line[len('# precision (auto): ') :]
    assert 'float32' in reason or 'bfloat16' in reason
    saved = json.loads(out.read_text())
    assert saved['machine']['precision_decision'] == reason
    # the cases were run in the dtype that was decided
    picked = 'bf16' if reason.startswith('bfloat16') else 'fp32'
    assert {r['dtype'] for r in saved['results'] if r['variant'] == 'fast'} == {picked}


BAD = [
    ([], 'give at least one model'),
    (['drn_d_22', '--dtypes', 'fp16'], "fp16 needs --device cuda; on CPU use 'bf16'"),
    (['drn_d_22', '--agreement', 'x.pth'], '--agreement needs exactly one MMSeg'),
]


def test_bad_command_lines_are_named(tmp_path):
    for args, message in BAD:
        proc = run_tool(TOOL, args + ['--device', 'cpu'], cwd=str(tmp_path))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr

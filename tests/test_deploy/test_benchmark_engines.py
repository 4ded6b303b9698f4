"""tools/analysis_tools/benchmark.py --engines: the mmdrn.deploy engines timed
in one process in turns, each with its argmax agreement with eager fp32."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

for _name in ('onnx', 'onnxscript', 'onnxruntime', 'openvino'):
    pytest.importorskip(_name, reason="the deploy extra: pip install 'mmdrn[deploy]'")

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'benchmark.py'
TINY = ['--shape', '32', '32', '--warmup', '0', '--repeat', '1', '--no-flops']


def benchmark(args: list, cwd) -> subprocess.CompletedProcess:
    """Run the tool as a user does, in ``cwd``."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_engines_are_rows_with_their_agreement(tmp_path):
    out = tmp_path / 'run.json'
    engines = ['torch-fast', 'onnxruntime', 'openvino-f32', 'openvino-bf16']
    args = ['drn_d_22', '--engines', *engines, '--baselines', *TINY]
    proc = benchmark([*args, '--json', str(out)], tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    results = json.loads(out.read_text())['results']
    assert all(r['status'] == 'ok' for r in results), text[-3000:]
    # the eager fp32 reference first, then one case per engine, nothing else
    assert [
        (r['variant'], r['compute_dtype'], r['memory_format']) for r in results
    ] == [
        ('eager', 'float32', 'contiguous'),
        ('fast', 'float32', 'channels_last'),
        ('onnxruntime', 'float32', 'contiguous'),
        ('openvino-f32', 'float32', 'contiguous'),
        ('openvino-bf16', 'bfloat16', 'contiguous'),
    ]
    assert {r['turns'] for r in results} == {1}  # timed together, in turns
    agreement = {r['variant']: r['agreement'] for r in results}
    assert agreement['eager'] == agreement['onnxruntime'] == 1.0
    assert agreement['openvino-f32'] == agreement['fast'] == 1.0
    assert 0.9 <= agreement['openvino-bf16'] <= 1.0
    # the table (benchmark_report.py) has the agreement column and each engine
    assert re.search(r'\| agree % +\|', text)
    assert re.search(r'\| openvino-bf16 +\| bfloat16 +\|', text)


def test_engines_need_a_cpu_and_a_known_name(tmp_path):
    proc = benchmark(['drn_d_22', '--engines', 'tensorrt'], tmp_path)
    assert proc.returncode == 2
    assert (
        "invalid choice: 'tensorrt' (choose from 'torch', 'torch-fast'" in proc.stderr
    )

"""mmdrn.benchmark.measure: timing, GEMM rate, memory and machine info."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import mmdrn
from mmdrn.benchmark.measure import gemm_rate, machine_info, time_and_measure, time_call


def test_time_call_times_one_call():
    calls = []

    def work():
        calls.append(1)
        time.sleep(0.02)

    assert 0.02 <= time_call(work) < 1.0
    assert calls == [1]  # no extra warm-up calls


def test_gemm_rate_is_measured():
    rate = gemm_rate(torch.float32, min_seconds=0.0, max_size=256)
    assert rate['n'] == 256
    assert 0 < rate['gflops'] < 1e6


def test_timed_runs_shrink_to_the_time_budget():
    warm, times, memory = time_and_measure(
        lambda: time.sleep(0.05), 'cpu', warmup=1, repeat=10, max_seconds=0.12
    )
    assert len(warm) == 1 and warm[0] >= 0.05
    assert len(times) == 2  # 0.12 s holds two runs of 0.05 s
    assert all(t >= 0.05 for t in times)
    assert 'elapsed_s' not in memory and memory['memory_method'].startswith('peak RSS')


def test_memory_measurement_sees_tensors():
    # a fresh process: in this one, freed heap blocks of earlier tests could
    # be reused without raising the resident set (why the tool isolates cases)
    script = (
        'import json, torch\n'
        'from mmdrn.benchmark import measure\n'
        'assert measure.set_malloc_mmap_threshold()\n'
        'def allocate():\n'
        '    torch.ones(16 * 2**20 // 4).add_(1)  # 16 MiB\n'
        'print(json.dumps(measure.measure_memory(allocate, "cpu")))\n'
    )
    root = str(Path(mmdrn.__file__).parents[1])
    proc = subprocess.run(
        [sys.executable, '-c', script],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS='1'),
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['memory_method'].startswith('peak RSS')
    assert 15 <= result['step_mb'] <= 48
    assert result['peak_mb'] >= result['step_mb']
    assert result['elapsed_s'] > 0


def test_machine_info_describes_this_process():
    info = machine_info('cpu')
    assert info['torch'] == torch.__version__
    assert info['torch_threads'] == torch.get_num_threads()
    assert info['device'] == 'cpu' and info['cpu'] and info['os']
    assert isinstance(info['amx'], bool) and isinstance(info['native_bf16_cpu'], bool)

"""Timing, memory and machine measurements of the benchmark (torch only).

The GEMM rate is measured with :class:`torch.utils.benchmark.Timer`
(``blocked_autorange``); single runs of a case are timed one call each, with
CUDA synchronised around the call. Peak memory on CPU is the process's
resident set: glibc ``malloc`` is told (``mallopt``) to serve every block
above 64 KiB with its own ``mmap``, so freed tensors really leave the process
and the resident set follows the live tensors; the kernel's high-water mark
(``VmHWM``) is reset through ``/proc/self/clear_refs`` before the measured
run. ``tracemalloc`` would miss tensors (it sees only Python's allocator).
On CUDA the allocator's own peak is used.
"""

import contextlib
import ctypes
import functools
import os
import platform
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

__all__ = [
    'MMAP_THRESHOLD_BYTES',
    'gemm_rate',
    'machine_info',
    'measure_memory',
    'set_malloc_mmap_threshold',
    'time_call',
    'time_and_measure',
]

# glibc mallopt parameter: blocks above this size get their own mmap, and
# setting it turns off glibc's dynamic threshold (which would keep freed
# tensors in the heap).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 1024
# runs at least this long (seconds) measure memory while being timed
LONG_RUN_S = 2.0


def time_call(fn: Callable[[], Any], device: str = 'cpu') -> float:
    """Seconds one call of ``fn`` takes (CUDA synchronised before and after).

    Single calls are timed directly: ``torch.utils.benchmark.Timer.timeit``
    would run two more calls as its own warm-up each time, which triples the
    cost of a multi-second training step.
    """
    if device == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def gemm_rate(
    dtype: torch.dtype,
    device: str = 'cpu',
    min_seconds: float = 0.05,
    max_size: int = 2048,
) -> Dict[str, float]:
    """Matmul rate of square ``n x n`` matrices, in GFLOP/s (2 n^3 per matmul).

    ``n`` doubles from 256 until one matmul takes ``min_seconds`` (or
    ``max_size`` is reached); the rate is the median of
    :meth:`torch.utils.benchmark.Timer.blocked_autorange` at that size.

    Args:
        dtype (torch.dtype): float32, bfloat16 or float16.
        device (str): ``'cpu'`` or ``'cuda'``. Default: ``'cpu'``.
        min_seconds (float): Duration one matmul should reach. Default: 0.05.
        max_size (int): Largest ``n``. Default: 2048.

    Returns:
        dict: ``gflops`` and the matrix size ``n``.
    """
    from torch.utils import benchmark as torch_benchmark

    size = 256
    while True:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        matmul = functools.partial(torch.mm, a, b)
        time_call(matmul, device)  # warm-up
        once = time_call(matmul, device)
        if once >= min_seconds or size >= max_size:
            break
        size *= 2
    timer = torch_benchmark.Timer(
        'torch.mm(a, b)',
        globals=dict(a=a, b=b, torch=torch),
        num_threads=torch.get_num_threads(),  # the Timer's default is one
    )
    median = timer.blocked_autorange(min_run_time=3 * once).median
    return dict(gflops=2 * size**3 / median / 1e9, n=size)


def _cpu_model() -> str:
    from torch.utils import collect_env

    with contextlib.suppress(Exception):  # lscpu may be missing
        for line in collect_env.get_cpu_info(collect_env.run).splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    return platform.processor() or 'unknown'


def machine_info(device: str) -> Dict[str, Any]:
    """Description of the machine and software a run used.

    CPU model and operating system come from :mod:`torch.utils.collect_env`.
    """
    from torch.utils import collect_env

    from ..inference import amx_cpu, native_bf16_cpu

    info = dict(
        cpu=_cpu_model(),
        os=collect_env.get_os(collect_env.run),
        logical_cpus=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        native_bf16_cpu=native_bf16_cpu(),
        amx=amx_cpu(),
        device=device,
    )
    if device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name()
    with contextlib.suppress(OSError):
        info['load_average'] = list(os.getloadavg())
    return info


def _proc_status_kib(key: str) -> Optional[int]:
    with contextlib.suppress(OSError):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    return None


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # 5: reset the peak RSS (VmHWM), Linux >= 4.0
        return True
    except OSError:
        return False


def set_malloc_mmap_threshold() -> bool:
    """Make glibc ``mmap`` every block above 64 KiB (see the module docstring).

    Returns:
        bool: Whether glibc accepted the setting.
    """
    try:
        libc = ctypes.CDLL('libc.so.6')
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def measure_memory(fn: Callable[[], Any], device: str) -> Dict[str, Any]:
    """Run ``fn`` once; its peak memory and duration.

    Returns:
        dict: ``peak_mb`` (the process's peak resident set on CPU, the
        allocator's peak on CUDA), ``step_mb`` (the part above what was in
        use just before the run), ``memory_method`` and ``elapsed_s``.
    """
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        elapsed = time_call(fn, device)
        peak = torch.cuda.max_memory_allocated()
        return dict(
            peak_mb=peak / 2**20,
            step_mb=(peak - before) / 2**20,
            memory_method='torch.cuda.max_memory_allocated',
            elapsed_s=elapsed,
        )
    if not _reset_peak_rss():
        return dict(
            peak_mb=None,
            step_mb=None,
            memory_method='unavailable',
            elapsed_s=time_call(fn, device),
        )
    before = _proc_status_kib('VmRSS')
    elapsed = time_call(fn, device)
    peak = _proc_status_kib('VmHWM')
    return dict(
        peak_mb=peak / 1024,
        step_mb=(peak - before) / 1024,
        memory_method='peak RSS (VmHWM after clear_refs)',
        elapsed_s=elapsed,
    )


def time_and_measure(
    fn: Callable[[], Any], device: str, warmup: int, repeat: int, max_seconds: float
) -> Tuple[List[float], List[float], Dict[str, Any]]:
    """Warm-up runs, timed runs and a memory measurement.

    The number of timed runs shrinks so that they fit in ``max_seconds``
    (judged from the last warm-up run; at least one). Runs longer than 2 s
    measure memory during the last timed run (resetting the peak costs
    microseconds there), shorter ones in one extra run.

    Returns:
        tuple: Warm-up durations, timed durations (seconds), memory dict.
    """
    warm = [time_call(fn, device) for _ in range(warmup)]
    if warm and repeat > 1:
        repeat = max(1, min(repeat, int(max_seconds // warm[-1])))
    times = [time_call(fn, device) for _ in range(repeat - 1)]
    last = times[-1] if times else (warm[-1] if warm else 0.0)
    if last > LONG_RUN_S:
        memory = measure_memory(fn, device)
        times.append(memory.pop('elapsed_s'))
    else:
        times.append(time_call(fn, device))
        memory = measure_memory(fn, device)
        memory.pop('elapsed_s')
    return warm, times, memory

"""Benchmarking of mmdrn models: latency, throughput, peak memory and FLOPs.

* :mod:`.measure`: timing (``torch.utils.benchmark``), the GEMM rate, peak
  memory and the machine description;
* :mod:`.cases`: the models (configs, timm names, ResNet-D8 baselines, the
  plain ``nn.Sequential`` reference of a DRN), the cases of a run and running
  them (in this process, interleaved, or in an isolated worker process);
* :mod:`.report`: ratios, tables, summary lines and the plot;
* :mod:`.agreement`: argmax agreement of the fast path with eager float32.

``tools/analysis_tools/benchmark.py`` is the command line over these.
"""

from .agreement import agreement
from .cases import (
    build_model,
    make_cases,
    plain_reference,
    run_case,
    run_interleaved,
    run_isolated,
)
from .measure import gemm_rate, machine_info, measure_memory, time_and_measure
from .report import format_markdown, format_text, summarize, summary_lines, table_rows

__all__ = [
    'agreement',
    'build_model',
    'format_markdown',
    'format_text',
    'gemm_rate',
    'machine_info',
    'make_cases',
    'measure_memory',
    'plain_reference',
    'run_case',
    'run_interleaved',
    'run_isolated',
    'summarize',
    'summary_lines',
    'table_rows',
    'time_and_measure',
]

"""Worker process of :func:`mmdrn.benchmark.cases.run_isolated`.

``python -m mmdrn.benchmark.worker CASES_JSON`` runs the cases (interleaved
if more than one) and prints their results as one JSON line after
``BENCHMARK_RESULT``.
"""

import json
import sys

import torch

from .cases import RESULT_TAG, run_here
from .measure import set_malloc_mmap_threshold


def main(cases_json: str) -> None:
    cases = json.loads(cases_json)
    if cases[0].get('threads'):
        torch.set_num_threads(cases[0]['threads'])
    set_malloc_mmap_threshold()
    print(RESULT_TAG + json.dumps(run_here(cases)), flush=True)


if __name__ == '__main__':
    main(sys.argv[1])

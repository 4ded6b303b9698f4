"""Shared settings of the backbone tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Run the tiny test inputs on one thread.

    With several threads, OpenMP's busy-waiting makes these small convolutions
    ~10x slower whenever other processes share the cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

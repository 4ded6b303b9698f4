"""Test isolation shared by the whole suite."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Undo any mmengine default scope a test creates.

    Runners and ``init_default_scope`` leave a process-wide current scope
    ('mmseg' or 'mmpretrain') behind; a later test building from the other
    codebase's registry would then look its types up in the wrong scope.
    """
    try:
        from mmengine.registry import DefaultScope
    except ImportError:  # a timm-only environment
        yield
        return
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture
def one_thread():
    """Run tiny test inputs on one thread.

    With several threads, OpenMP's busy-waiting makes small convolutions
    ~10x slower whenever other processes share the cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

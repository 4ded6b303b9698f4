"""Fixtures of the tool tests (helpers live in tool_runner.py)."""

import pytest

from mmdrn.datasets import generate_demo_scenes


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory) -> str:
    """Eight training and two validation scenes of 32x32."""
    root = str(tmp_path_factory.mktemp('data') / 'drn_demo')
    generate_demo_scenes(root, num_train=8, num_val=2, size=(32, 32))
    return root


@pytest.fixture(autouse=True)
def _load_mmengine_checkpoints(mmengine_checkpoints):
    """The tests read the training checkpoints the tools write."""
    yield

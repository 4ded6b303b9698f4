import pytest


@pytest.fixture(autouse=True)
def _load_mmengine_checkpoints(mmengine_checkpoints):
    """The hooks' runs save and resume mmengine training checkpoints."""
    yield

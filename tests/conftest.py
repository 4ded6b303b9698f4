"""Test isolation shared by the whole suite."""

import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Undo any mmengine default scope a test creates.

    Runners and ``init_default_scope`` leave a process-wide current scope
    ('mmseg' or 'mmpretrain') behind; a later test building from the other
    codebase's registry would then look its types up in the wrong scope.
    """
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)

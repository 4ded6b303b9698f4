"""Shared settings of the OpenMMLab-layer tests."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one thread (see ``one_thread``)."""

"""Shared settings of the backbone tests."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every backbone test runs on one thread (see ``one_thread``)."""

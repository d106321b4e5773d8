"""pytest configuration shared by every test file (trio_mode is set in pyproject)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import reap_children


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    """Whatever a test left running (:func:`support.spawn`, :func:`support.spawn_listener`)
    is killed, waited for and its pipes closed, even when the test failed."""
    yield
    reap_children()

"""pytest configuration shared by every test file (trio_mode is set in pyproject)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import reap_children


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    """Whatever a test started with ``support.spawn``/``spawn_listener`` and left running
    (a failed assertion, say) is killed, waited for and its pipes closed.  For a test that
    spawned nothing this is one empty-list swap."""
    yield
    reap_children()

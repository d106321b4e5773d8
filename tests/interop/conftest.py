"""Fixtures shared by the interop tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support import random_files


@pytest.fixture
def payloads(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(ours, theirs): what ncat-trio sends and what the peer sends, ``SIZE`` bytes each.

    ``SIZE`` is the test module's own; a module may override this fixture (test_relay.py).
    """
    size: int = request.module.SIZE
    return random_files(tmp_path, size)

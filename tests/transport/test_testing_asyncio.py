"""``ncat_trio.testing``'s fixtures from a pytest-asyncio test.

pytest-trio's ``trio_mode`` (set for this suite) takes every async test of a session,
so the two cannot share one session: the asyncio test file runs in its own pytest with
pytest-trio off and pytest-asyncio on, and must pass there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..toxiproxy_ends import PYTEST_WITHOUT_TRIO

CHECK = Path(__file__).resolve().parents[1] / "asyncio_suite" / "asyncio_fixture_check.py"


def test_sync_fixture_from_a_pytest_asyncio_test() -> None:
    proc = subprocess.run(
        [*PYTEST_WITHOUT_TRIO, str(CHECK)],
        cwd=CHECK.parent.parent.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    assert "1 passed" in out, out

"""``ncat_trio.testing``'s fixtures from a pytest-asyncio test.

pytest-trio's ``trio_mode`` (set for this suite) takes every async test of a session,
so the two cannot share one session: the asyncio test file runs in its own pytest with
pytest-trio off and pytest-asyncio on, and must pass there.
"""

from __future__ import annotations

from pathlib import Path

from ..toxiproxy_ends import run_pytest_without_trio

CHECK = Path(__file__).resolve().parents[1] / "asyncio_suite" / "asyncio_fixture_check.py"


def test_sync_fixture_from_a_pytest_asyncio_test() -> None:
    code, out = run_pytest_without_trio(CHECK, CHECK.parent.parent.parent)
    assert code == 0, out
    assert "1 passed" in out, out

"""The end-to-end helpers put a failing child's own words in the failure message."""

from __future__ import annotations

import sys

import pytest

from ..support import NCAT, failure_shows_stderr, finish, reaped, spawn, spawn_listener


def test_a_failure_inside_shows_the_childs_exit_code_and_stderr() -> None:
    child = spawn([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    with reaped(child), pytest.raises(AssertionError) as caught, failure_shows_stderr(child):
        assert child.wait(30) == 0
    assert "exit 3, stderr:\nboom" in str(caught.value)


def test_a_child_that_overstays_is_killed_and_its_stderr_shown() -> None:
    code = "import sys, time; sys.stderr.write('still here\\n'); sys.stderr.flush(); time.sleep(60)"
    child = spawn([sys.executable, "-c", code])
    with reaped(child), pytest.raises(AssertionError) as caught:
        finish(child, timeout=2)
    assert "did not exit within 2 s" in str(caught.value)
    assert "still here" in str(caught.value)
    assert child.returncode is not None  # killed and reaped


def test_a_listener_that_never_gets_ready_shows_its_error() -> None:
    with pytest.raises(AssertionError) as caught:
        spawn_listener(["listen", "--no-such-flag", "0"])
    message = str(caught.value)
    assert "exit 2" in message
    assert "no such option: --no-such-flag" in message.lower()
    assert NCAT[-1] in message  # which command it was

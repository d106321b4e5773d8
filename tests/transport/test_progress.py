"""Progress goes to stderr only, at a bounded rate, and reads only the counters."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import trio
import trio.testing

from ncat_trio.progress import human_bytes, show_progress, summary_line


def catch_stdio(monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, io.StringIO]:
    """(stderr, stdout), each caught in a string (set in the test: pytest's capture
    puts its own back between a fixture's setup and the call)."""
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    return err, out


def test_human_units() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 * 1024 * 1024) == "3.0 MiB"
    assert summary_line(2 << 20, 1 << 20, 2.0, total=4 << 20) == (
        "sent 2.0 MiB (50%), received 1.0 MiB in 2.0 s, 1.5 MiB/s"
    )


async def test_plain_lines_once_a_second_on_stderr_only(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    err, out = catch_stdio(monkeypatch)
    reads = 0

    def counters() -> tuple[int, int]:
        nonlocal reads
        reads += 1
        return 1024 * reads, 0

    with trio.move_on_after(3.5):
        await show_progress(counters, tty=False)
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("ncat-trio: sent ") for line in lines)
    assert reads == 3


async def test_rich_display_draws_to_stderr(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    err, out = catch_stdio(monkeypatch)
    samples = 0

    def counters() -> tuple[int, int]:
        nonlocal samples
        samples += 1
        return 5 << 20, 1 << 20

    with trio.move_on_after(3.5):
        await show_progress(counters, total=10 << 20, tty=True)
    assert out.getvalue() == ""
    assert "5.0/10.0 MiB" in err.getvalue()
    assert samples == 5  # at 0, 1, 2 and 3 s (1 Hz), then the final draw; never from the hot loop


async def test_a_total_known_later_counts_the_received_bytes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``receive``: the size arrives with the sender's header, and it is of the received
    bytes; both the plain lines and the display show the percentage there."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    total: int | None = None

    def size() -> int | None:
        return total

    with trio.move_on_after(1.5):
        await show_progress(lambda: (0, 1 << 20), total=size, tty=False, of_received=True)
    total = 4 << 20
    with trio.move_on_after(1.5):
        await show_progress(lambda: (0, 1 << 20), total=size, tty=False, of_received=True)
    first, second = err.getvalue().splitlines()
    assert first.startswith("ncat-trio: sent 0 B, received 1.0 MiB in "), first
    assert second.startswith("ncat-trio: sent 0 B, received 1.0 MiB (25%) in "), second
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with trio.move_on_after(0.5):
        await show_progress(
            lambda: (0, 5 << 20), total=lambda: 10 << 20, tty=True, of_received=True
        )
    assert "5.0/10.0 MiB" in err.getvalue()


def test_prepare_imports_rich_only_for_a_terminal() -> None:
    """``prepare`` runs before connecting, so rich's import never stalls a transfer; on
    a non-terminal stderr nothing is imported at all."""
    code = (
        "import sys; from ncat_trio import progress; progress.prepare(tty=False); "
        "a = 'rich.progress' in sys.modules; progress.prepare(tty=True); "
        "print(a, 'rich.progress' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split() == ["False", "True"]

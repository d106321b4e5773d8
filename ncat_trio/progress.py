"""Live progress on stderr (``-P/--progress``), in the style of ``pv``.

Never touches stdout, never runs in the hot loop: a Trio task samples two counters
once a second, as ``pv`` does.  On a terminal it draws a rich progress display (rich
is imported only when asked for, and refreshed from this task — no refresh thread);
elsewhere it prints one plain line per second.

A redraw takes ~1 ms of the Trio thread that also moves the bytes, and each one cost
more than that in a fast transfer (the pipeline behind the stalled end drains): 2 GiB
pipe → TCP → pipe, both ends -P on a pty, 7 paired rounds: 4-6% at 5 Hz, 2.3-4.0% at
2 Hz, -1.8-3.6% at 1 Hz, -0.5% with the display started but never redrawn.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from . import diag

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

Counters = Callable[[], tuple[int, int]]  # (bytes sent, bytes received)
Total = int | None | Callable[[], int | None]  # bytes expected, if known (maybe later)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def summary_line(
    sent: int, received: int, seconds: float, total: int | None = None, *, of_received: bool = False
) -> str:
    """``sent 12.0 MiB (100%), received 3.0 MiB in 1.2 s, 12.5 MiB/s``; ``total`` is of
    the sent bytes, or with ``of_received`` of the received ones."""
    rate = (sent + received) / seconds if seconds > 0 else 0.0
    pct = f" ({100 * (received if of_received else sent) / total:.0f}%)" if total else ""
    up, down = ("", pct) if of_received else (pct, "")
    return (
        f"sent {human_bytes(sent)}{up}, received {human_bytes(received)}{down} "
        f"in {seconds:.1f} s, {human_bytes(rate)}/s"
    )


def prepare(tty: bool | None = None) -> None:
    """Get the display ready before any connection exists, when it will be needed.

    rich's import takes ~35 ms here, and the first display it draws ~4 ms more (lazy
    imports and caches inside rich): done by :func:`show_progress`, both stalled the
    Trio loop at the start of every transfer (measured: -P on a terminal cost 6% of a
    2 GiB pipe → TCP → pipe, then 4-10% with the warm-up missing; the budget is 3%).
    So rich is imported here and one display is drawn into a string and thrown away."""
    if tty is None:
        tty = sys.stderr is not None and sys.stderr.isatty()
    if tty:
        import io

        from rich.console import Console

        warm = _display(Console(file=io.StringIO(), force_terminal=True, width=80), bar=True)
        task = warm.add_task("sent    ", total=1)
        warm.start()
        warm.update(task, completed=1)
        warm.refresh()
        warm.stop()


def _display(console: Console, bar: bool) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[ProgressColumn | str] = [
        TextColumn("{task.description}"),
        DownloadColumn(binary_units=True),
    ]
    if bar:
        columns += [BarColumn(), TimeRemainingColumn()]
    columns += [TransferSpeedColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=console, auto_refresh=False)


async def show_progress(
    counters: Counters, *, total: Total = None, tty: bool | None = None, of_received: bool = False
) -> None:
    """Render progress until cancelled; the last state is drawn once more on the way out.

    ``total`` (a number, or a function for one known only later) is of the sent bytes,
    or with ``of_received`` of the received ones (``send`` / ``receive``)."""
    if tty is None:
        tty = sys.stderr is not None and sys.stderr.isatty()

    size = total if callable(total) else lambda: total
    started = time.monotonic()
    if not tty:  # a log, not a display: one line a second
        while True:
            await trio.sleep(1.0)
            elapsed = time.monotonic() - started
            diag.say(summary_line(*counters(), elapsed, size(), of_received=of_received))
    from rich.console import Console

    progress = _display(Console(stderr=True), bar=callable(total) or bool(total))
    up = progress.add_task("sent    ", total=None)
    down = progress.add_task("received", total=None)

    def draw() -> None:
        sent, received = counters()
        progress.update(up, completed=sent)
        progress.update(down, completed=received)
        progress.update(down if of_received else up, total=size())
        progress.refresh()

    progress.start()
    try:
        while True:
            draw()
            await trio.sleep(1.0)
    finally:
        draw()
        progress.stop()

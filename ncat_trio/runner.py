"""The one place that runs Trio, watches signals and turns outcomes into exit codes.

* Closed fds 0-2 are pointed at /dev/null before ``trio.run`` (else Trio's epoll fd
  could become fd 0: DESIGN.md §4).
* A watcher task receives SIGINT/SIGTERM/SIGHUP, records the signal and cancels the
  main scope, so every ``finally`` runs and sockets close.  Leaving the receiver
  restores the previous handlers (SIG_DFL), so a second signal is a hard stop.
  A signal that arrives after ``run`` is called but before the watcher listens (Trio
  is still starting) is recorded by a plain handler and acted on as soon as the watcher
  starts: same line, same exit code (issue 15; it used to kill the process silently,
  or raise a ``KeyboardInterrupt`` traceback).  Before ``run``, ``ncat_trio.__main__``
  handles a start-up Ctrl-C.
  Signals that were ignored when we started (``nohup``, background jobs) stay ignored.
* The exit status after a signal is 128 + signum (130, 143, 129): a documented
  choice (README, "Exit codes") that scripts can test with ``$?``.
* trio 0.35 has strict exception groups; they are unwrapped here and only here.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import trio

from . import diag, errors
from .errors import SIGNAL_EXIT_CODES, ExitCode, NcatError, interrupt_startup, leaves

MainFn = Callable[[], Awaitable[int | None]]

_WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class _RunState:
    signum: int | None = None
    previous: dict[int, Any] = field(default_factory=dict)  # handlers to restore


def ensure_std_fds() -> None:
    """Open /dev/null on any of fds 0, 1, 2 that is closed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            new = os.open(os.devnull, os.O_RDWR)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)


async def _supervise(main: MainFn, state: _RunState, signums: list[signal.Signals]) -> int | None:
    main_scope = trio.CancelScope()

    async def watch_signals(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            with trio.open_signal_receiver(*signums) as receiver:
                task_status.started()
                if state.signum is None:  # else one came while Trio was starting
                    async for signum in receiver:
                        state.signum = signum
                        break
                main_scope.cancel()
        finally:  # the receiver put our early handler back: a second signal is a hard stop
            _restore(state)

    async with trio.open_nursery() as nursery:
        if signums:
            await nursery.start(watch_signals)
        with main_scope:
            result = await main()
        nursery.cancel_scope.cancel()
    return None if main_scope.cancelled_caught else result


def exit_code_for(exc: BaseException) -> int:
    """Map an escaped exception (or group) to an exit code, printing its one line."""
    found = list(leaves(exc))
    for leaf in found:
        if not isinstance(leaf, NcatError | KeyboardInterrupt | SystemExit):
            # The traceback quotes messages that may hold a peer's bytes: escaped per line.
            for chunk in traceback.format_exception(exc):
                for line in chunk.splitlines():
                    diag.write_raw(diag.printable(line) + "\n")
            diag.say(f"internal error: {leaf!r} (this is a bug)")
            return ExitCode.SOFTWARE
    for leaf in found:
        if isinstance(leaf, KeyboardInterrupt):
            diag.say("interrupted")
            return ExitCode.SIGINT
        if isinstance(leaf, SystemExit):
            code = leaf.code
            return code if isinstance(code, int) else ExitCode.USAGE
    first = found[0]
    assert isinstance(first, NcatError)
    diag.say(str(first))
    return first.exit_code


def _quiet_stdout_on_exit() -> None:
    """If stdout is broken, point fd 1 at /dev/null so interpreter exit stays quiet."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def run(main: MainFn) -> int:
    """Run ``main`` under Trio with signal handling; return the process exit code."""
    ensure_std_fds()
    signums = [s for s in _WATCHED if signal.getsignal(s) is not signal.SIG_IGN]
    state = _RunState(signum=signal.SIGINT if errors.startup_interrupted else None)

    def early(received: int, frame: FrameType | None) -> None:
        state.signum = received  # Trio is starting: the watcher acts on it once it listens

    for signum in signums:
        handler = signal.getsignal(signum)
        if handler in (signal.default_int_handler, interrupt_startup):
            # Let our watcher own Ctrl-C; once it stops watching, a second one kills at once.
            handler = signal.SIG_DFL
        state.previous[signum] = handler
        signal.signal(signum, early)
    try:
        result = trio.run(_supervise, main, state, signums)
    except BaseException as exc:  # unwrap groups here and only here
        if state.signum is not None and all(isinstance(leaf, NcatError) for leaf in leaves(exc)):
            code: int = _signal_exit(state.signum)
        else:
            code = exit_code_for(exc)
    else:
        code = _signal_exit(state.signum) if state.signum is not None else int(result or 0)
    finally:
        _restore(state)
    _quiet_stdout_on_exit()
    return code


def _restore(state: _RunState) -> None:
    """Put back the handlers ``run`` found (SIG_DFL for Python's Ctrl-C), once."""
    while state.previous:
        signum, handler = state.previous.popitem()
        signal.signal(signum, handler)


def _signal_exit(signum: int) -> int:
    diag.say(f"interrupted by {signal.Signals(signum).name}")
    return int(SIGNAL_EXIT_CODES.get(signum, 128 + signum))

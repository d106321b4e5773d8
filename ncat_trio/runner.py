"""The one place that runs Trio, watches signals and turns outcomes into exit codes.

* Closed fds 0-2 are pointed at /dev/null before ``trio.run`` (else Trio's epoll fd
  could become fd 0: DESIGN.md §4).
* A watcher task receives SIGINT/SIGTERM/SIGHUP, records the signal and cancels the
  main scope, so every ``finally`` runs and sockets close.  Leaving the receiver
  restores the previous handlers (SIG_DFL), so a second signal is a hard stop.
  Signals that were ignored when we started (``nohup``, background jobs) stay ignored.
* The exit status after a signal is 128 + signum (130, 143, 129): a documented
  choice (README, "Exit codes") that scripts can test with ``$?``.
* Once the outcome is decided (:func:`settle`: ``receive`` has the verified file under
  its real name), a signal only cuts the remaining cleanup short: the exit code stays
  the settled one, with a note on stderr.  This holds after ``trio.run`` too, where a
  signal would otherwise kill the exiting process.
* The handler under the watcher (what leaving the receiver restores) is the hard stop:
  it SIGKILLs the exec children's process groups, which no longer get the terminal's
  signals themselves (transport/child.py), then dies by the signal's default action.
* trio 0.35 has strict exception groups; they are unwrapped here and only here.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from . import diag
from .errors import SIGNAL_EXIT_CODES, ExitCode, NcatError, leaves
from .transport.child import kill_live_groups

MainFn = Callable[[], Awaitable[int | None]]

_WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class _RunState:
    signum: int | None = None
    settled: int | None = None  # the exit code, once main has decided it (settle)
    settled_why: str = ""
    late_signum: int | None = None  # a signal after the watcher, once settled


#: The state of the run in progress (one ``trio.run`` per process), for :func:`settle`.
_current: _RunState | None = None


def settle(code: int, why: str) -> None:
    """The outcome is decided: from now on a signal still ends the run at once, but the
    exit code stays ``code`` (stderr says ``SIGTERM after WHY: exit CODE``).

    For work whose result is already true and visible (a received file renamed into
    place), so that a late signal cannot make the exit code lie.  Outside :func:`run`
    (the Python API) it does nothing.
    """
    if _current is not None:
        _current.settled, _current.settled_why = code, why


def _hard_stop(signum: int, _frame: object) -> None:
    """The handler under the watcher: a signal before it runs or after it has seen one."""
    state = _current
    if state is not None and state.settled is not None:
        state.late_signum = state.late_signum or signum
        return
    kill_live_groups()  # the children would outlive us: they are in sessions of their own
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


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
        with trio.open_signal_receiver(*signums) as receiver:
            task_status.started()
            async for signum in receiver:
                state.signum = signum
                main_scope.cancel()
                break

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
            traceback.print_exception(exc)
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
    global _current
    ensure_std_fds()
    signums = [s for s in _WATCHED if signal.getsignal(s) is not signal.SIG_IGN]
    # Our watcher owns these signals; under it (before it starts, once it has seen one)
    # the hard stop: a second Ctrl-C kills at once (and the exec children with us).
    for signum in signums:
        signal.signal(signum, _hard_stop)
    state = _current = _RunState()
    try:
        result = trio.run(_supervise, main, state, signums)
    except BaseException as exc:  # unwrap groups here and only here
        if state.signum is not None and all(isinstance(leaf, NcatError) for leaf in leaves(exc)):
            code: int = _signal_exit(state.signum, state)
        else:
            code = exit_code_for(exc)
    else:
        code = _signal_exit(state.signum, state) if state.signum is not None else int(result or 0)
    # From here to the process exit: the default actions, or (settled) nothing may change
    # the exit code any more.
    for signum in signums:
        signal.signal(signum, signal.SIG_DFL if state.settled is None else signal.SIG_IGN)
    if state.signum is None and state.late_signum is not None:
        _signal_exit(state.late_signum, state)
    _current = None
    _quiet_stdout_on_exit()
    return code


def _signal_exit(signum: int, state: _RunState) -> int:
    name = signal.Signals(signum).name
    if state.settled is not None:
        diag.say(f"{name} after {state.settled_why}: exit {state.settled}")
        return state.settled
    diag.say(f"interrupted by {name}")
    return int(SIGNAL_EXIT_CODES.get(signum, 128 + signum))

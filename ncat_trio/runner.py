"""The one place that runs Trio, watches signals and turns outcomes into exit codes.

* Closed fds 0-2 are pointed at /dev/null before ``trio.run`` (else Trio's epoll fd
  could become fd 0: DESIGN.md §4).
* A watcher task receives SIGINT/SIGTERM/SIGHUP, records the signal and cancels the
  main scope, so every ``finally`` runs and sockets close.  Leaving the receiver
  puts back the handler under it, so a second signal is a hard stop (below).
  A signal that arrives after ``run`` is called but before the watcher listens (Trio
  is still starting) is recorded by that same handler and acted on as soon as the
  watcher starts: same line, same exit code (issue 15; it used to kill the process silently,
  or raise a ``KeyboardInterrupt`` traceback).  Before ``run``, ``ncat_trio.__main__``
  handles a start-up Ctrl-C.
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
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import diag, errors
from .errors import ExitCode, NcatError, interrupt_startup, leaves

if TYPE_CHECKING:
    import trio

MainFn = Callable[[], Awaitable[int | None]]

_WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class _RunState:
    signum: int | None = None
    settled: int | None = None  # the exit code, once main has decided it (settle)
    settled_why: str = ""
    late_signum: int | None = None  # a signal after the watcher, once settled
    watching: bool = False  # the watcher's receiver is open (Trio has started)
    previous: dict[int, Any] = field(default_factory=dict)  # handlers to restore


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


def _outside_watcher(signum: int, _frame: FrameType | None) -> None:
    """The handler whenever the watcher is not receiving: while Trio starts, the signal
    is recorded and the watcher acts on it once it listens; once settled, it is noted
    and the exit code stays; after the watcher has seen one, it is the hard stop."""
    state = _current
    if state is not None and state.settled is not None:
        state.late_signum = state.late_signum or signum
        return
    if state is not None and not state.watching and state.signum is None:
        state.signum = signum  # Trio is starting: the watcher acts on it once it listens
        return
    child = sys.modules.get("ncat_trio.transport.child")  # loaded if there can be children
    if child is not None:  # they would outlive us: they are in sessions of their own
        child.kill_live_groups()
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


async def _supervise(main: MainFn, state: _RunState) -> int | None:
    import trio

    main_scope = trio.CancelScope()

    async def watch_signals(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(*state.previous) as receiver:
            state.watching = True  # from now on _outside_watcher is the hard stop
            task_status.started()
            if state.signum is None:  # else one came while Trio was starting
                async for signum in receiver:
                    state.signum = signum
                    break
            main_scope.cancel()
        # Leaving the receiver put _outside_watcher back: a second signal is a hard stop.

    async with trio.open_nursery() as nursery:
        if state.previous:  # the signals we took (none: all ignored, e.g. nohup)
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


def quiet_stdout_on_exit() -> None:
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
    import trio  # here, not above: run_blocking's jobs start without it

    global _current
    ensure_std_fds()
    # Our watcher owns the signals; under it (_outside_watcher): recorded while Trio
    # starts, the hard stop once it has seen one (a second Ctrl-C kills at once, and the
    # exec children with us).
    state = _current = _RunState(signum=signal.SIGINT if errors.startup_interrupted else None)
    state.previous = _take_signals(_outside_watcher)
    try:
        result = trio.run(_supervise, main, state)
    except BaseException as exc:  # unwrap groups here and only here
        if state.signum is not None and all(isinstance(leaf, NcatError) for leaf in leaves(exc)):
            code: int = signal_exit(state.signum, state)
        else:
            code = exit_code_for(exc)
    else:
        code = signal_exit(state.signum, state) if state.signum is not None else int(result or 0)
    # From here to the process exit: the handlers we found, or (settled) nothing may
    # change the exit code any more.
    for watched, handler in state.previous.items():
        signal.signal(watched, handler if state.settled is None else signal.SIG_IGN)
    if state.signum is None and state.late_signum is not None:
        signal_exit(state.late_signum, state)
    _current = None
    quiet_stdout_on_exit()
    return code


def _take_signals(handler: Any) -> dict[int, Any]:
    """Install ``handler`` for the watched signals not ignored at start (they stay ignored);
    return the handlers to put back (Python's Ctrl-C handler, or ours from start-up, as the
    default action)."""
    previous: dict[int, Any] = {}
    for signum in _WATCHED:
        found = signal.getsignal(signum)
        if found is signal.SIG_IGN:
            continue
        if found in (signal.default_int_handler, interrupt_startup):
            found = signal.SIG_DFL  # Python's Ctrl-C: after the run, the default action
        previous[signum] = found
        signal.signal(signum, handler)
    return previous


class _Stopped(BaseException):
    """A watched signal, raised out of a blocking job (:func:`run_blocking`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_blocking(main: Callable[[], int]) -> int:
    """Run a blocking job without Trio (the port scan: start-up is its whole cost), with
    :func:`run`'s signals, lines and exit codes: a watched signal raises out of the
    blocking call (its ``finally`` blocks close what it opened), and a second one while
    that unwinds is the default action."""
    ensure_std_fds()
    if errors.startup_interrupted:
        return signal_exit(signal.SIGINT)
    previous: dict[int, Any] = {}

    def stop(signum: int, _frame: FrameType | None) -> None:
        for watched, handler in previous.items():
            signal.signal(watched, handler)
        raise _Stopped(signum)

    try:
        previous.update(_take_signals(stop))
        code = int(main() or 0)
    except _Stopped as exc:
        code = signal_exit(exc.signum)
    except errors.Interrupted:  # a start-up Ctrl-C swallowed on its way up
        code = signal_exit(signal.SIGINT)
    except BaseException as exc:
        code = exit_code_for(exc)
    finally:
        for watched, handler in previous.items():
            signal.signal(watched, handler)
    quiet_stdout_on_exit()
    return code


def signal_exit(signum: int, state: _RunState | None = None) -> int:
    """After signal ``signum``: ``interrupted by NAME`` and 128 + signum (also relay
    --workers' parent), or once :func:`settle` was called, the settled code and a note."""
    name = signal.Signals(signum).name
    if state is not None and state.settled is not None:
        diag.say(f"{name} after {state.settled_why}: exit {state.settled}")
        return state.settled
    diag.say(f"interrupted by {name}")
    return 128 + signum

"""``relay --workers N`` (Linux): N processes share the port with SO_REUSEPORT.

One Python process is one core; a relay moving many connections wants them all.  The
parent reserves the address (binds a SO_REUSEPORT socket without listening on it, so
port 0 yields one real port for everyone), forks N workers *before* any Trio run, and
each worker binds its own SO_REUSEPORT listener on that address and runs its own
``trio.run``.  The kernel spreads new connections across the workers' accept queues.

The parent prints the readiness line once every worker listens, then supervises:

* SIGTERM, SIGINT, SIGHUP and SIGUSR1 are forwarded to every worker (workers run in
  their own process group, so a terminal's Ctrl-C reaches them once, through here);
  SIGTERM makes each worker drain as a single relay does, then the parent exits 143.
* a worker that exits by itself (a crash, a fatal error) stops the others (SIGTERM)
  and its exit code becomes the parent's.
* workers die with the parent (``PR_SET_PDEATHSIG``), so none is left orphaned.

Limits (``--max-conns``) and statistics (``--stats``, SIGUSR1) are per worker; their
log lines are prefixed ``worker N:``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

from .. import diag, runner
from ..errors import UsageError
from ..transport import net
from ..transport.readiness import ReadyPipe
from .relay import RelayOptions, WorkerSetup, relay_main

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
_PR_SET_PDEATHSIG = 1


def run_workers(options: RelayOptions, count: int) -> int:
    """Fork ``count`` relay workers on one SO_REUSEPORT address; supervise; exit code."""
    if not net.HAS_REUSEPORT or not sys.platform.startswith("linux"):
        raise UsageError("--workers", "needs Linux (SO_REUSEPORT)")
    runner.ensure_std_fds()
    probe, shared = net.reserve_reuseport(options.listen)
    pipe = ReadyPipe()
    sys.stdout.flush()
    sys.stderr.flush()
    workers: list[int] = []
    try:
        for index in range(1, count + 1):
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                ready = pipe.child_end()
                probe.close()
                _run_worker(options, WorkerSetup(index, shared, ready))
            workers.append(pid)
    except BaseException:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    finally:
        pipe.forked()
    return _supervise(workers, probe.close, pipe, probe.getsockname())


def _run_worker(options: RelayOptions, setup: WorkerSetup) -> None:
    code = 70
    try:
        os.setpgid(0, 0)  # signals come through the parent, once
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent is already gone
            os._exit(0)
        code = runner.run(lambda: relay_main(options, setup))
    finally:
        with contextlib.suppress(Exception):
            diag.flush()  # log lines still queued (os._exit skips the exit hooks)
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _supervise(
    workers: list[int], release: Callable[[], None], pipe: ReadyPipe, address: object
) -> int:
    received: list[int] = []
    live = set(workers)

    def forward(signum: int, _frame: object) -> None:
        if signum != signal.SIGUSR1:
            received.append(signum)
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    first_failure: int | None = None
    try:
        announced = pipe.wait(len(workers)) and bool(live)
        release()  # every worker holds the port now
        if announced:
            diag.say(f"listening on {diag.format_address(address)}")
        while live:
            pid, status = os.waitpid(-1, 0)
            if pid not in live:
                continue
            live.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if not received and first_failure is None:
                # A worker stopped by itself: stop the rest, keep its code.
                first_failure = 128 - code if code < 0 else code
                diag.say(f"worker {workers.index(pid) + 1} exited ({code}); stopping the others")
                for other in live:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(other, signal.SIGTERM)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        pipe.close()
    if first_failure is not None:
        return first_failure
    return runner.signal_exit(received[0]) if received else 0

"""The one serve discipline of every stream server: one bad client never ends a server.

Every server (``listen`` with or without ``-k``, ``-e/-c``, ``--ssl``, ``relay``,
``clock serve --tcp``, ``ttcp receive``, ``receive --listen``) takes its clients from
:func:`.net.accept` (fd exhaustion waited out, clients that reset in the backlog
skipped) and runs each client's work through :func:`guard`, alone
(:func:`serve_connections` for many clients at once, or a loop for one at a time):

* a **per-connection** failure — a reset, a timeout, garbage (a protocol error), a
  failed handshake, or no fd for this client (:class:`~ncat_trio.errors.OutOfResources`:
  EMFILE while duplicating an fd, making a pipe or starting a child) — is one line on
  stderr (peer text escaped: :func:`ncat_trio.diag.printable`) and ends that client only;
* a failure of the **server's own** resources (``fatal``: by default a
  :class:`~ncat_trio.errors.LocalIOError` such as stdout gone, but not
  ``OutOfResources``) ends the server with its exit code;
* anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import trio

from ..diag import printable, say
from ..errors import LocalIOError, NcatError, OutOfResources
from . import net
from .pump import STREAM_ERRORS, describe_failure

T = TypeVar("T")
R = TypeVar("R")


def stdio_is_fatal(exc: NcatError) -> bool:
    """The usual rule: a local I/O failure (stdout closed, a file) ends the server, except
    running out of fds for one client, which ends that client only."""
    return isinstance(exc, LocalIOError) and not isinstance(exc, OutOfResources)


def never_fatal(exc: NcatError) -> bool:
    """For servers with no shared local resource: every failure is the client's."""
    return False


async def guard(
    work: Callable[[], Awaitable[T]],
    *,
    name: str,
    fatal: Callable[[NcatError], bool] = stdio_is_fatal,
    log: Callable[[str], None] = say,
) -> T | None:
    """``await work()``; a per-connection failure is logged (``name: why``) and gives
    None; a ``fatal`` one is raised."""
    try:
        return await work()
    except NcatError as exc:
        if fatal(exc):
            raise
        log(printable(str(exc)))
    except STREAM_ERRORS as exc:  # concerns that client only, as an NcatError does
        log(f"{name}: {printable(describe_failure(exc))}")
    return None


async def next_session(
    accept: Callable[[], Awaitable[trio.SocketStream]],
    establish: Callable[[trio.SocketStream], Awaitable[T]],
    *,
    log: Callable[[str], None] = say,
) -> tuple[trio.SocketStream, T]:
    """The next client whose ``establish(conn)`` succeeds, one client at a time (the
    others wait in the backlog, as a sequential server's must); one that fails is
    logged and closed.  Bound ``establish`` yourself (a handshake timeout)."""
    while True:
        conn = await accept()
        try:
            result = await guard(partial(establish, conn), name="connection", log=log)
        except BaseException:
            await trio.aclose_forcefully(conn)
            raise
        if result is not None:
            return conn, result
        await trio.aclose_forcefully(conn)


#: Handshakes a single-shot server runs side by side; the next client waits in the
#: backlog until one of them ends (fds bound it anyway; this keeps the task count small).
PENDING_HANDSHAKES = 64


async def first_session(
    accept: Callable[[], Awaitable[trio.SocketStream]],
    establish: Callable[[trio.SocketStream], Awaitable[T]],
    run: Callable[[trio.SocketStream, T], Awaitable[R]],
    *,
    within: float,
    fatal: Callable[[NcatError], bool] = stdio_is_fatal,
    log: Callable[[str], None] = say,
) -> R:
    """For a single-shot server: ``run(conn, established)`` for the first client whose
    ``establish(conn)`` (a handshake, a protocol greeting) succeeds within ``within``
    seconds; its result, or its NcatError raised as itself.

    Handshakes run side by side, so a client that trickles (slowloris) or stalls
    half-way holds nobody up; one that fails (reset, garbage, too slow) is logged and
    closed, and never consumes the server.  The first to succeed wins: accepting
    stops, the others are closed, and ``run`` goes on at once in the winner's task
    (``run`` owns ``conn`` from then on).  A ``fatal`` failure of ``establish`` ends
    everything and is raised as itself.
    """
    accepting = trio.CancelScope()
    pending: set[trio.CancelScope] = set()
    slots = trio.Semaphore(PENDING_HANDSHAKES)
    outcome: list[R] = []
    failure: list[NcatError] = []
    won = False

    async def attempt(conn: trio.SocketStream) -> None:
        nonlocal won
        established: T | None = None
        mine = trio.CancelScope()
        pending.add(mine)
        try:
            with mine, trio.move_on_after(within) as timer:
                established = await guard(
                    partial(establish, conn), name="connection", fatal=fatal, log=log
                )
            if timer.cancelled_caught:
                log(f"connection: no handshake within {within:g} s")
        except NcatError as exc:  # fatal: stop everything, raised below as itself
            failure.append(exc)
            accepting.cancel()
            for other in pending:
                other.cancel()
        finally:
            pending.discard(mine)
            slots.release()
            if established is None or won:
                await trio.aclose_forcefully(conn)
        if established is None or won:
            return
        won = True
        accepting.cancel()
        for other in pending:
            other.cancel()
        try:
            outcome.append(await run(conn, established))
        except NcatError as exc:  # raised below as itself, not inside a group
            failure.append(exc)

    async with trio.open_nursery() as nursery:
        with accepting:
            while True:
                await slots.acquire()
                try:
                    conn = await accept()
                except BaseException:
                    slots.release()
                    raise
                nursery.start_soon(attempt, conn)
    if failure:
        raise failure[0]
    return outcome[0]


async def serve_connections(
    listener: trio.SocketListener,
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    *,
    accept: Callable[[], Awaitable[trio.SocketStream]] | None = None,
    max_conns: int | None = None,
    fatal: Callable[[NcatError], bool] = stdio_is_fatal,
    log: Callable[[str], None] = say,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every client of ``listener`` at once, each ``handler(conn)`` in its own task
    under :func:`guard`, until cancelled or a ``fatal`` failure (raised as itself).

    ``accept`` replaces :func:`.net.accept` (e.g. to apply ``--allow/--deny``).  Beyond
    ``max_conns`` clients at once, a newcomer is accepted and closed with a log line
    (as ncat does).  Every client's stream is closed when its handler returns.
    """
    next_client = accept if accept is not None else (lambda: net.accept(listener))
    failures: list[NcatError] = []
    active = 0

    async def client(conn: trio.SocketStream, everything: trio.CancelScope) -> None:
        nonlocal active
        try:
            try:
                await guard(partial(handler, conn), name="connection", fatal=fatal, log=log)
            except NcatError as exc:  # fatal: the server's own resources failed
                failures.append(exc)
                everything.cancel()
            finally:
                await trio.aclose_forcefully(conn)
        finally:
            active -= 1

    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            conn = await next_client()
            if max_conns is not None and active >= max_conns:
                log(f"refused a client: {active} connected (--max-conns {max_conns})")
                await trio.aclose_forcefully(conn)
                continue
            active += 1
            nursery.start_soon(client, conn, nursery.cancel_scope)
    raise failures[0]  # only a fatal failure ends the loop without a cancellation

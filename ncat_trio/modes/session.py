"""One connect/listen session: stdin → socket and socket → stdout, half-close done right.

The rules (DESIGN.md §3):

* stdin EOF → finish sending, ``send_eof`` (FIN), keep receiving until the peer's EOF,
  optionally bounded by ``linger`` (``-q``).
* peer EOF → stdout is finished, but the upload goes on until stdin's EOF (a pipe or a
  file must be delivered whole).  Only an interactive TTY stdin stops at peer EOF.
* both directions finished → close.  Exit 0 only when everything was delivered.

:func:`netcat_session` takes Trio streams, so tests and API users can drive it over
``trio.testing`` memory streams without sockets.  Used by connect/listen
(:mod:`.netcat`), ``-k`` (:mod:`.keep_open`), UDP (:mod:`.netcat_udp`) and exec.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace

import trio

from ..errors import ConnectionLost, NcatError
from ..transport import net
from ..transport.idle import raise_session_end
from ..transport.pump import Side, SinkGone, run_directions, send_eof
from ..transport.stdio import FdKind, fd_kind, open_stdin, open_stdout
from ..transport.throttle import ThrottledReceiveStream
from ..transport.zerocopy import copy
from .netcat_options import SessionOptions

STDIN = Side("stdin", local=True)
STDOUT = Side("stdout", local=True)


@dataclass
class SessionResult:
    """What one session moved and how it ended."""

    bytes_sent: int = 0
    bytes_received: int = 0
    stdin_eof: bool = False  # all of stdin was read and sent
    peer_eof: bool = False  # the peer's FIN arrived (all it sent was written out)
    lingered_out: bool = False  # -q expired before the peer's EOF
    stdout_gone: bool = False  # stdout's reader left, every received byte written (exit 0)
    quiet_out: bool = False  # -w: nothing moved either way for that long (exit 0, as nc)


async def netcat_session(
    conn: trio.abc.HalfCloseableStream,
    stdin: trio.abc.ReceiveStream | None,
    stdout: trio.abc.SendStream | None,
    options: SessionOptions = SessionOptions(),
    *,
    peer_name: str = "connection",
    live: SessionResult | None = None,
) -> SessionResult:
    """Run both directions between ``conn`` and stdio until both are finished.

    ``stdin=None`` sends nothing (and no FIN); ``stdout=None`` discards what arrives.
    Pass ``live`` to watch its byte counters move during the session (progress).
    Raises :class:`NcatError` (never a group): :class:`ConnectionLost` on a reset,
    :class:`LocalIOError` on a stdio failure, :class:`NcatTimeout` on idle timeout.
    Does not close ``conn``: see :func:`close_gracefully`.
    """
    peer = Side(peer_name, local=False)
    result = live if live is not None else SessionResult()
    idle = options.idle_timeout
    idle_scope = trio.CancelScope(deadline=_after(idle))
    quiet = options.quiet_exit
    quiet_scope = trio.CancelScope(deadline=_after(quiet))
    upload_scope = trio.CancelScope()
    download_scope = trio.CancelScope()
    sending = options.send and stdin is not None

    def activity(_n: int) -> None:
        if idle is not None:
            idle_scope.deadline = trio.current_time() + idle
        if quiet is not None:
            quiet_scope.deadline = trio.current_time() + quiet

    def sent(n: int) -> None:
        result.bytes_sent += n
        activity(n)

    last_received = -math.inf  # trio time of the last bytes from the peer
    download_done = trio.Event()

    def received(n: int) -> None:
        nonlocal last_received
        result.bytes_received += n
        last_received = trio.current_time()
        activity(n)

    async def wait_until_peer_quiet(quiet: float) -> None:
        """Until the peer has sent nothing for ``quiet`` s, or its direction ended.  Wakes
        once per period at most: each deadline is pushed back by what arrived since."""
        quiet_since = trio.current_time()
        while not download_done.is_set():
            deadline = max(quiet_since, last_received) + quiet
            if trio.current_time() >= deadline:
                return
            with trio.move_on_at(deadline):
                await download_done.wait()

    upload_source: trio.abc.ReceiveStream | None = stdin
    download_source: trio.abc.ReceiveStream = conn
    if options.rate is not None:  # wrapped streams hide their fds: the portable pump
        upload_source = None if stdin is None else ThrottledReceiveStream(stdin, options.rate)
        download_source = ThrottledReceiveStream(conn, options.rate)

    async def upload() -> None:
        with upload_scope:
            if sending:
                assert upload_source is not None
                await copy(
                    upload_source, conn, source_side=STDIN, sink_side=peer,
                    chunk_size=options.chunk_size, on_chunk=sent, zerocopy=options.zerocopy,
                    exclusive=options.exclusive,
                )  # fmt: skip
                result.stdin_eof = True
                if options.linger is not None:  # -q counts from stdin EOF
                    download_scope.deadline = trio.current_time() + options.linger
                if options.shutdown:
                    if options.fin_after_quiet is not None and not _bulk_upload(result):
                        await wait_until_peer_quiet(options.fin_after_quiet)
                    await _fin(conn, peer, result, download_done)

    async def download() -> None:
        with download_scope:
            sink = stdout if options.receive else None
            try:
                await copy(
                    download_source, sink, source_side=peer, sink_side=STDOUT,
                    chunk_size=options.chunk_size, on_chunk=received, zerocopy=options.zerocopy,
                )  # fmt: skip
            except SinkGone:
                # Downstream left with nothing of ours unwritten (issue 16 §1): a normal
                # end of this direction, and nothing more is read from the network.
                result.stdout_gone = True
            else:
                result.peer_eof = True
            finally:
                download_done.set()
            if options.exit_on_peer_eof or not sending:
                upload_scope.cancel()
        if download_scope.cancelled_caught:
            result.lingered_out = True

    failure: NcatError | None = None  # stays None when the idle timeout cancels both
    with idle_scope, quiet_scope:
        failure = await run_directions(upload, download)
    if failure is None and quiet_scope.cancelled_caught:
        result.quiet_out = True
        return result
    raise_session_end(failure, idle_scope, peer_name, idle)
    return result


#: An upload this large to a peer that has sent nothing gets its FIN at stdin EOF even
#: under ``--shutdown=idle``.  Every server measured to take a FIN as an abort (nginx,
#: tinyproxy, ncat's and socat's proxies: docs/differences.md) was answering a small
#: request with a large reply; a megabyte sent to a silent peer is a file copy into a
#: reader that waits for EOF (``nc -l > file``, ``sha256sum``), where the quiet wait only
#: cost time: 0.6 s on every upload, 0.73x nc.openbsd on 2 GiB (benchmarks/RESULTS.md).
BULK_UPLOAD = 1 << 20


def _bulk_upload(result: SessionResult) -> bool:
    return result.bytes_received == 0 and result.bytes_sent >= BULK_UPLOAD


async def _fin(
    conn: trio.abc.HalfCloseableStream,
    peer: Side,
    result: SessionResult,
    download_done: trio.Event,
) -> None:
    """Our FIN.  When it fails because the peer already closed the connection *cleanly*
    (its FIN came first, then a reset: ENOTCONN) after its TCP acknowledged every byte we
    sent, nothing was lost and the FIN is moot, so the session still ends well (issue 15
    §4: through ncat's HTTP proxy the whole reply arrived and we exited 3).  A peer that
    reset bytes of ours unread (a --deny'd client) stays exit 3.  The receive side learns
    of the peer's FIN as soon as the reset is in, so it is waited for, briefly."""
    try:
        await send_eof(conn, peer)
    except ConnectionLost:
        with trio.move_on_after(1):
            await download_done.wait()
        if not result.peer_eof or net.all_acknowledged(conn, result.bytes_sent) is False:
            raise


def _after(seconds: float | None) -> float:
    return math.inf if seconds is None else trio.current_time() + seconds


async def close_gracefully(
    conn: trio.abc.HalfCloseableStream, result: SessionResult | None
) -> None:
    """Close after a finished session; forcefully (RST possible) if it did not finish.

    A lingered-out session counts as finished: for TCP the two closes are the same
    ``close()``, and TLS must still send its ``close_notify`` (its only EOF signal).
    """
    finished = result is not None and (
        result.peer_eof or result.lingered_out or result.stdout_gone or result.quiet_out
    )
    await net.close(conn, graceful=finished)


@asynccontextmanager
async def open_stdio(
    options: SessionOptions,
) -> AsyncIterator[
    tuple[trio.abc.ReceiveStream | None, trio.abc.SendStream | None, SessionOptions]
]:
    """Open stdin/stdout as the options need them; a TTY stdin stops at peer EOF."""
    tty = options.send and fd_kind(0) is FdKind.TTY
    options = replace(options, exit_on_peer_eof=options.exit_on_peer_eof or tty)
    async with AsyncExitStack() as stack:
        stdin = await stack.enter_async_context(open_stdin()) if options.send else None
        stdout = await stack.enter_async_context(open_stdout()) if options.receive else None
        yield stdin, stdout, options

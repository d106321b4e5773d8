"""connect / listen: stdin → socket and socket → stdout, with half-close done right.

The rules (DESIGN.md §3):

* stdin EOF → finish sending, ``send_eof`` (FIN), keep receiving until the peer's EOF,
  optionally bounded by ``linger`` (``-q``).
* peer EOF → stdout is finished, but the upload goes on until stdin's EOF (a pipe or a
  file must be delivered whole).  Only an interactive TTY stdin stops at peer EOF.
* both directions finished → close.  Exit 0 only when everything was delivered.

:func:`netcat_session` takes Trio streams, so tests and API users can drive it over
``trio.testing`` memory streams without sockets.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

import trio

from .. import diag, progress, report_schema
from ..errors import ConnectError, ConnectionLost, NcatError, NcatTimeout
from ..json_summary import Summary
from ..progress import show_progress, summary_line
from ..transport import net, serve
from ..transport.access import AccessPolicy, admit
from ..transport.idle import raise_session_end
from ..transport.pump import Side, SinkGone, run_directions, send_eof
from ..transport.sockopts import SocketOptions, apply_socket_options
from ..transport.stdio import CHUNK, FdKind, fd_kind, open_stdin, open_stdout
from ..transport.throttle import ThrottledReceiveStream
from ..transport.tls import TlsOptions
from ..transport.zerocopy import copy
from . import netcat_layers
from .stream_endpoints import connect_stream, open_stream_listener

if TYPE_CHECKING:
    from .exec import ExecCommand

Stream = trio.abc.HalfCloseableStream

STDIN = Side("stdin", local=True)
STDOUT = Side("stdout", local=True)


@dataclass(frozen=True)
class SessionOptions:
    """How one connection's two directions behave."""

    send: bool = True  # read stdin and send it (False: -d/--no-stdin/--recv-only)
    receive: bool = True  # write what arrives to stdout (False: --send-only, discarded)
    shutdown: bool = True  # send FIN after stdin EOF (False: --no-shutdown, never)
    # With ``shutdown``: hold the FIN until the peer has sent nothing for this many seconds
    # (``--shutdown=idle``, the CLI's default; None: at stdin EOF, ``-N``).  Servers that
    # take a FIN as an abort (nginx, tinyproxy, ncat's proxy: README, "Differences")
    # finish sending first; a server that reads to EOF gets the FIN this much later.
    fin_after_quiet: float | None = None
    linger: float | None = None  # -q: max seconds to wait for peer EOF after stdin EOF
    idle_timeout: float | None = None  # -i: fail when nothing moves for this long
    # -w (nc.openbsd): *end* the session, exit 0, when nothing has moved either way for
    # this long (nc.openbsd -w 2 against a silent server exits 0 after 2 s; measured)
    quiet_exit: float | None = None
    exit_on_peer_eof: bool = False  # stop uploading at peer EOF (set for a TTY stdin)
    chunk_size: int = CHUNK
    zerocopy: bool = True  # splice/sendfile where the fds allow (--no-zerocopy: never)
    rate: float | None = None  # --rate: bytes per second in each direction (portable pump)
    # The session has its thread to itself (the CLI without -k): the stdin → socket copy
    # may wait in poll(2) for up to 10 ms before Trio runs (transport/zerocopy.py).
    exclusive: bool = False


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


@dataclass(frozen=True)
class ReportOptions:
    """What to tell the user besides the data: progress, a summary, JSON."""

    progress: str = "never"  # -P: "always"; --progress=auto: only when stderr is a TTY
    size: int | None = None  # --size: bytes expected on stdin, for progress percentages
    stats: bool = False  # --stats: a summary line on stderr at the end
    json: bool = False  # --json: a JSON summary on stderr (stdout is the data)
    json_file: str | None = None


@dataclass(frozen=True)
class NetcatOptions:
    """Everything connect/listen needs; built by the CLI or by API users."""

    endpoint: net.Endpoint
    session: SessionOptions = field(default_factory=SessionOptions)
    source: net.Endpoint | None = None  # connect: -s/-p
    connect_timeout: float | None = None  # connect: -w
    keep_open: bool = False  # listen: -k, serve the next client after one ends
    nodelay: bool = False
    verbose: bool = False
    report: ReportOptions = field(default_factory=lambda: ReportOptions())
    tls: TlsOptions | None = None  # --ssl (modes/netcat_layers.py: TLS, proxy, -C, -o)
    proxy: netcat_layers.ProxySettings | None = None  # connect: --proxy
    access: AccessPolicy = field(default_factory=AccessPolicy)  # listen: --allow/--deny
    crlf: bool = False  # -C: LF -> CRLF on send
    output: netcat_layers.DumpOptions | None = None  # -o: hex dump of both directions
    # issue 7 part A: transport and what runs on it (cli/netcat_transport.py)
    udp: bool = False  # -u: datagrams (modes/netcat_udp.py)
    unix_path: str | None = None  # -U PATH: a Unix socket; `endpoint` is then unused
    exec_command: ExecCommand | None = None  # -e/-c: a child per connection (modes/exec.py)
    max_conns: int = 100  # listen -k: clients at once (modes/keep_open.py)
    sequential: bool = False  # listen -k: one client after another (OpenBSD nc)
    socket_options: SocketOptions = field(default_factory=SocketOptions)


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
    if result is not None and (
        result.peer_eof or result.lingered_out or result.stdout_gone or result.quiet_out
    ):
        with trio.move_on_after(5) as scope:
            scope.shield = True
            await conn.aclose()
            return
    await trio.aclose_forcefully(conn)


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


async def _run_one(
    conn: trio.abc.HalfCloseableStream,
    stdin: trio.abc.ReceiveStream | None,
    stdout: trio.abc.SendStream | None,
    options: SessionOptions,
    opts: NetcatOptions,
    *,
    mode: str,
    peer: str,
) -> SessionResult:
    """One connection (``mode`` connect or listen): the session, progress beside it, then
    the close and the summaries."""
    peer_name = f"connection {'to' if mode == 'connect' else 'from'} {peer}"
    live = SessionResult()
    result: SessionResult | None = None
    failure: NcatError | None = None
    started = time.monotonic()
    try:
        async with trio.open_nursery() as nursery:
            if _progress_wanted(opts.report.progress):
                total = opts.report.size if opts.report.size is not None else _stdin_size(options)
                nursery.start_soon(
                    partial(
                        show_progress, lambda: (live.bytes_sent, live.bytes_received), total=total
                    )
                )
            try:
                result = await netcat_session(
                    conn, stdin, stdout, options, peer_name=peer_name, live=live
                )
            except NcatError as exc:  # raised below as itself, not as a group
                failure = exc
            finally:
                nursery.cancel_scope.cancel()
        await close_gracefully(conn, result)
        if failure is not None:
            raise failure
    finally:
        seconds = time.monotonic() - started
        _summaries(opts, mode, peer, peer_name, live, seconds, failure, finished=result is not None)
    assert result is not None
    return result


def _progress_wanted(progress: str) -> bool:
    if progress == "auto":
        return sys.stderr is not None and sys.stderr.isatty()
    return progress == "always"


def _stdin_size(options: SessionOptions) -> int | None:
    """Bytes left on a regular-file stdin (for a percentage), else None."""
    if not options.send or fd_kind(0) is not FdKind.REGULAR:
        return None
    return max(0, os.fstat(0).st_size - os.lseek(0, 0, os.SEEK_CUR))


def _how_it_ended(live: SessionResult) -> str:
    """What we know of a finished session's end, and no more (issue 16 §2): a peer's FIN
    says it stopped sending, not that it read (or kept) what we sent."""
    if live.lingered_out:
        return "linger expired"
    if live.quiet_out:
        return "quiet (-w)"
    if live.stdout_gone:
        return "stdout closed"
    return "peer closed"


def _summaries(
    opts: NetcatOptions,
    mode: str,
    peer: str,
    peer_name: str,
    live: SessionResult,
    seconds: float,
    failure: NcatError | None,
    *,
    finished: bool,
) -> None:
    """--stats (one line on stderr) and --json/--json-file (json_summary.Summary, docs/json.md)."""
    if failure is not None:
        ended, code = "error", int(failure.exit_code)
    elif not finished:
        ended, code = "cancelled", None
    else:
        ended, code = _how_it_ended(live), 0
    if opts.report.stats:
        line = summary_line(live.bytes_sent, live.bytes_received, seconds)
        diag.say(f"{peer_name}: {line} ({ended})")
    summary = Summary(opts.report.json, opts.report.json_file, stream="stderr")  # stdout: data
    if summary.wanted:
        record = report_schema.record(
            report_schema.NETCAT, mode=mode, peer=peer, bytes_sent=live.bytes_sent,
            bytes_received=live.bytes_received, seconds=round(seconds, 6),
            stdin_eof=live.stdin_eof, peer_eof=live.peer_eof, ended=ended, exit_code=code,
            error=None if failure is None else str(failure),
        )  # fmt: skip
        summary.write_at_end(record, diag.say)


async def connect_main(opts: NetcatOptions) -> int:
    """``ncat-trio connect HOST PORT``."""
    if opts.udp:  # datagrams: modes/netcat_udp.py
        from .netcat_udp import connect_udp_main

        return await connect_udp_main(opts)
    if _progress_wanted(opts.report.progress):
        progress.prepare()  # rich's import must not stall the transfer
    target = opts.endpoint
    layers = netcat_layers.Layers(
        tls_options=opts.tls, dump=opts.output, crlf=opts.crlf, verbose=opts.verbose
    )
    with trio.move_on_after(_or_inf(opts.connect_timeout)) as scope:
        if opts.unix_path is not None or opts.proxy is None:  # socket options before connect
            conn = await connect_stream(opts)  # TCP, or Unix with -U (modes/stream_endpoints.py)
        else:
            conn = await netcat_layers.connect(
                target, opts.proxy, source=opts.source, nodelay=opts.nodelay
            )
            apply_socket_options(conn.socket, opts.socket_options)
    if scope.cancelled_caught:
        raise NcatTimeout(
            f"connect to {target}", f"timed out after {opts.connect_timeout:g} s (-w)"
        )
    peer = diag.format_address(net.peer_address(conn))
    if opts.verbose:
        diag.say(f"connected to {peer} from {diag.format_address(net.local_address(conn))}")
    stream = await layers.wrap(
        conn,
        host=target.host,
        peer_name=f"connection to {peer}",
        handshake_timeout=opts.connect_timeout,
    )
    if opts.exec_command is not None:  # -e/-c: the child has the connection (modes/exec.py)
        from .exec import run_exec

        result = await run_exec(stream, opts, f"connection to {peer}", conn=conn)
        _report(opts, result)
        return 0
    async with open_stdio(opts.session) as (stdin, stdout, session):
        result = await _run_one(
            stream, layers.stdin(stdin), stdout, session, opts, mode="connect", peer=peer
        )
    _report(opts, result)
    return 0


async def listen_main(opts: NetcatOptions) -> int:
    """``ncat-trio listen [HOST] PORT``: serve one client (or, with -k, many at once:
    modes/keep_open.py; with -k --sequential, one after another).

    Every client goes through the one serve discipline (transport/serve.py): a client
    that never became a session (reset in the backlog, a failed or too slow TLS
    handshake: :data:`~.netcat_layers.LISTEN_HANDSHAKE_TIMEOUT`) is logged and does
    not consume a single-shot listener; with ``-k`` a failed session is logged and the
    next client is served."""
    if opts.udp:  # datagrams: modes/netcat_udp.py
        from .netcat_udp import listen_udp_main

        return await listen_udp_main(opts)
    if _progress_wanted(opts.report.progress):
        progress.prepare()  # rich's import must not stall the transfer
    layers = netcat_layers.Layers(
        tls_options=opts.tls, dump=opts.output, crlf=opts.crlf, verbose=opts.verbose
    )
    # Imported before the readiness line, not after: once "listening on" is out the
    # listener must need no new file before a client comes.  Importing it there failed
    # with EMFILE (exit 70, and every queued client refused) when the fd limit was
    # reached right after that line (tests/hostile/test_exhaustion.py, 1 run in ~40).
    from .keep_open import serve_concurrently

    async with open_stream_listener(opts) as listener:  # TCP, or Unix with -U
        diag.say(f"listening on {diag.format_address(net.local_address(listener))}")
        if opts.keep_open and not opts.sequential:
            accept = partial(accept_client, listener, opts)
            return await serve_concurrently(
                listener, opts, accept, partial(serve_client, layers=layers)
            )
        async with open_stdio(opts.session) as (stdin, stdout, session):
            accept = partial(accept_client, listener, opts)
            start = partial(establish, opts=opts, layers=layers)

            async def run(conn: trio.SocketStream, established: tuple[Stream, str]) -> None:
                if not opts.keep_open:
                    await listener.aclose()  # like nc: one client, then nobody else gets in
                stream, peer = established
                await run_client(conn, stream, peer, stdin, stdout, session, opts, layers)

            if layers.tls_options is not None and not opts.keep_open:
                # Handshakes side by side: a client trickling its ClientHello holds
                # nobody up.  The TLS handshake's own timeout fires first and says why.
                within = netcat_layers.LISTEN_HANDSHAKE_TIMEOUT + 1
                await serve.first_session(accept, start, run, within=within)
                return 0
            while True:  # one client at a time; with -k --sequential the next waits
                conn, established = await serve.next_session(accept, start)
                if not opts.keep_open:
                    await run(conn, established)
                    return 0
                await serve.guard(partial(run, conn, established), name="connection")


async def accept_client(listener: trio.SocketListener, opts: NetcatOptions) -> trio.SocketStream:
    """The next client that --allow/--deny admits (refused ones are closed and logged)."""
    while True:
        conn = await net.accept(listener)  # EMFILE: wait, don't die
        if await admit(conn, opts.access):
            return conn


async def establish(
    conn: trio.SocketStream, *, opts: NetcatOptions, layers: netcat_layers.Layers
) -> tuple[trio.abc.HalfCloseableStream, str]:
    """Name an accepted client and wrap it (TLS handshake, -o): (stream, peer)."""
    if opts.unix_path is None:
        conn.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, opts.nodelay)
    peer = diag.format_address(net.peer_address(conn))  # reset already: ConnectionLost
    if opts.verbose:
        diag.say(f"connection from {peer}")
    stream = await layers.wrap(
        conn,
        host=None,
        peer_name=f"connection from {peer}",
        handshake_timeout=netcat_layers.LISTEN_HANDSHAKE_TIMEOUT,
    )
    return stream, peer


async def serve_client(
    conn: trio.SocketStream,
    stdin: trio.abc.ReceiveStream | None,
    stdout: trio.abc.SendStream | None,
    session: SessionOptions,
    opts: NetcatOptions,
    *,
    layers: netcat_layers.Layers,
) -> SessionResult:
    """One accepted client: name it, wrap it (TLS, -o), run its session, report it."""
    try:
        stream, peer = await establish(conn, opts=opts, layers=layers)
    except BaseException:
        await trio.aclose_forcefully(conn)
        raise
    return await run_client(conn, stream, peer, stdin, stdout, session, opts, layers)


async def run_client(
    conn: trio.SocketStream,
    stream: trio.abc.HalfCloseableStream,
    peer: str,
    stdin: trio.abc.ReceiveStream | None,
    stdout: trio.abc.SendStream | None,
    session: SessionOptions,
    opts: NetcatOptions,
    layers: netcat_layers.Layers,
) -> SessionResult:
    """The session of an established client (``stream``: ``conn`` with its layers)."""
    if opts.exec_command is not None:  # -e/-c: the child has the connection (modes/exec.py)
        from .exec import run_exec

        result = await run_exec(stream, opts, f"connection from {peer}", conn=conn)
    else:
        result = await _run_one(
            stream, layers.stdin(stdin), stdout, session, opts, mode="listen", peer=peer
        )
    _report(opts, result)
    return result


def _report(opts: NetcatOptions, result: SessionResult) -> None:
    if opts.verbose:
        how = _how_it_ended(result) if result.lingered_out or result.quiet_out else "closed"
        diag.say(f"{how}: {result.bytes_sent} bytes sent, {result.bytes_received} received")


def _or_inf(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


__all__ = [
    "ConnectError",
    "NetcatOptions",
    "SessionOptions",
    "SessionResult",
    "close_gracefully",
    "connect_main",
    "listen_main",
    "netcat_session",
]

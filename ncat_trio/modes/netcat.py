"""connect / listen: one session per connection (:mod:`.session`) between stdio and a
TCP or Unix stream (:mod:`.stream_endpoints`), or UDP (:mod:`.netcat_udp`), exec
(:mod:`.exec`) and ``-k`` (:mod:`.keep_open`); then the summaries and the exit code.

The options and session names are re-exported here, where API users and tests have
always imported them from.
"""

from __future__ import annotations

import math
import sys
import time
from functools import partial

import trio

from .. import diag, progress, report_schema
from ..errors import ConnectError, NcatError, NcatTimeout
from ..json_summary import Summary
from ..progress import show_progress, summary_line
from ..transport import net, serve
from ..transport.access import admit
from ..transport.sockopts import apply_socket_options
from ..transport.stdio import bytes_left
from . import netcat_layers
from .netcat_options import NetcatOptions as NetcatOptions
from .netcat_options import ReportOptions as ReportOptions
from .netcat_options import SessionOptions as SessionOptions
from .netcat_options import StreamPlace as StreamPlace
from .session import BULK_UPLOAD as BULK_UPLOAD
from .session import STDIN as STDIN
from .session import STDOUT as STDOUT
from .session import SessionResult as SessionResult
from .session import close_gracefully as close_gracefully
from .session import netcat_session as netcat_session
from .session import open_stdio as open_stdio
from .stream_endpoints import connect_stream, open_stream_listener

Stream = trio.abc.HalfCloseableStream


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
                total = opts.report.size
                if total is None and options.send:
                    total = bytes_left(0)  # a regular-file stdin: for a percentage
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
    end = report_schema.ending(failure, not finished, _how_it_ended(live), 0)
    if opts.report.stats:
        line = summary_line(live.bytes_sent, live.bytes_received, seconds)
        diag.say(f"{peer_name}: {line} ({end['ended']})")
    summary = Summary(opts.report.json, opts.report.json_file, stream="stderr")  # stdout: data
    if summary.wanted:
        record = report_schema.record(
            report_schema.NETCAT, mode=mode, peer=peer, bytes_sent=live.bytes_sent,
            bytes_received=live.bytes_received, seconds=round(seconds, 6),
            stdin_eof=live.stdin_eof, peer_eof=live.peer_eof, **end,
        )  # fmt: skip
        summary.write_at_end(record, diag.say)


async def connect_main(opts: NetcatOptions) -> int:
    """``ncat-trio connect HOST PORT``."""
    if opts.udp:  # datagrams: modes/netcat_udp.py
        from .netcat_udp import connect_udp_main

        return await connect_udp_main(opts)
    layers = _layers(opts)
    target = opts.endpoint
    timeout = math.inf if opts.connect_timeout is None else opts.connect_timeout
    with trio.move_on_after(timeout) as scope:
        if opts.unix_path is not None or opts.proxy is None:  # socket options before connect
            conn = await connect_stream(opts.place)  # TCP, or Unix with -U
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
        diag.say(f"connected to {peer} from {diag.format_address(conn.socket.getsockname())}")
    stream = await layers.wrap(
        conn,
        host=target.host,
        peer_name=f"connection to {peer}",
        handshake_timeout=opts.connect_timeout,
    )
    if opts.exec_command is not None:  # -e/-c: the child has the connection, not stdio
        await run_client(conn, stream, peer, None, None, opts.session, opts, layers, "connect")
        return 0
    async with open_stdio(opts.session) as (stdin, stdout, session):
        await run_client(conn, stream, peer, stdin, stdout, session, opts, layers, "connect")
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
    layers = _layers(opts)
    # Imported before the readiness line, not after: once "listening on" is out the
    # listener must need no new file before a client comes.  Importing it there failed
    # with EMFILE (exit 70, and every queued client refused) when the fd limit was
    # reached right after that line (tests/hostile/test_exhaustion.py, 1 run in ~40).
    from .keep_open import serve_concurrently

    backlog = 128 if opts.keep_open else 1  # without -k nc serves one client
    async with open_stream_listener(opts.place, backlog=backlog) as listener:  # TCP, or -U
        diag.say(f"listening on {diag.format_address(listener.socket.getsockname())}")
        accept = partial(accept_client, listener, opts)
        if opts.keep_open and not opts.sequential:
            return await serve_concurrently(
                listener,
                opts.session,
                accept,
                partial(serve_client, opts=opts, layers=layers),
                max_conns=opts.max_conns,
                children=opts.exec_command is not None,
            )
        async with open_stdio(opts.session) as (stdin, stdout, session):
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
        net.set_nodelay(conn, opts.nodelay)
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
    *,
    opts: NetcatOptions,
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
    mode: str = "listen",
) -> SessionResult:
    """The session of an established connection (``stream``: ``conn`` with its layers);
    ``mode``: connect or listen."""
    if opts.exec_command is not None:  # -e/-c: the child has the connection (modes/exec.py)
        from .exec import run_exec  # lazy: start-up of every other connect/listen

        result = await run_exec(
            stream,
            opts.exec_command,
            opts.session,
            f"connection {'to' if mode == 'connect' else 'from'} {peer}",
            conn=conn,
            proto="UNIX" if opts.unix_path is not None else "TCP",
            verbose=opts.verbose,
        )
    else:
        result = await _run_one(
            stream, layers.stdin(stdin), stdout, session, opts, mode=mode, peer=peer
        )
    _report(opts, result)
    return result


def _report(opts: NetcatOptions, result: SessionResult) -> None:
    if opts.verbose:
        how = _how_it_ended(result) if result.lingered_out or result.quiet_out else "closed"
        diag.say(f"{how}: {result.bytes_sent} bytes sent, {result.bytes_received} received")


def _layers(opts: NetcatOptions) -> netcat_layers.Layers:
    """The TLS context, the ``-o`` file and ``-C``, before any connection."""
    if _progress_wanted(opts.report.progress):
        progress.prepare()  # rich's import must not stall the transfer
    return netcat_layers.Layers(
        tls_options=opts.tls, dump=opts.output, crlf=opts.crlf, verbose=opts.verbose
    )


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

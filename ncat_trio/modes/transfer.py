"""send / receive: one file over one TCP connection, verified end to end — the process.

This module is the glue around the sessions (:mod:`.transfer_session`, which drive the
wire format of :mod:`ncat_trio.proto.transfer_wire`, PROTOCOL.md) and the file store
(:mod:`ncat_trio.transport.files`): options, the file to send, the one connection,
``--progress`` (:mod:`ncat_trio.progress`) and the summary.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import trio

from .. import diag, progress, report_schema, runner
from ..errors import (
    LocalIOError,
    LocalProtocolError,
    NcatError,
    NcatTimeout,
    RemoteProtocolError,
    UsageError,
)
from ..json_summary import Summary
from ..proto import transfer_wire as wire
from ..transport import files, net, serve
from ..transport.idle import IdleWatch, WatchedStream
from ..transport.stdio import FdKind, fd_kind, open_stdin, open_stdout
from .transfer_session import (
    FileSource,
    ReceiveSession,
    ReceiveTarget,
    SendSession,
    Source,
    StreamSource,
    TransferResult,
)


@dataclass(frozen=True, kw_only=True)
class TransferOptions:
    """What ``send`` and ``receive`` share."""

    endpoint: net.Endpoint
    connect_timeout: float | None = None
    idle_timeout: float | None = None  # -i: fail when the connection is silent this long
    progress: bool = False
    json: bool = False  # the summary object on stdout
    json_file: str | None = None  # also append it to this file
    quiet: bool = False


@dataclass(frozen=True, kw_only=True)
class SendOptions(TransferOptions):
    """``ncat-trio send``."""

    path: str = "-"  # "-": stdin
    name: str | None = None  # the name to send (default: the file's base name, "stdin")
    listen: bool = False  # wait for the receiver to connect (receiver behind NAT)


@dataclass(frozen=True, kw_only=True)
class ReceiveOptions(TransferOptions):
    """``ncat-trio receive``."""

    target: ReceiveTarget = field(default_factory=ReceiveTarget)
    listen: bool = True  # False: connect to a listening sender


@asynccontextmanager
async def open_transfer_connection(
    endpoint: net.Endpoint,
    *,
    listen: bool,
    connect_timeout: float | None,
    expect_sender: bool = False,
    idle_timeout: float | None = None,
) -> AsyncIterator[tuple[trio.SocketStream, str]]:
    """Connect, or listen and accept exactly one client; yield (stream, peer description).

    Listening with ``expect_sender`` (the receiver: the sender speaks first), a client
    counts only once the fixed part of its Header is in (magic and version), within
    :data:`GREETING_TIMEOUT` seconds: one that resets, sends garbage or trickles is
    logged and closed, and the listener waits for the real sender (transport/serve.py).
    With ``idle_timeout`` (``-i``) a client silent that long ends the receive (exit 4),
    as ``-i`` promises.
    """
    # Every write is a whole message or a big chunk: Nagle would only delay the
    # small control messages (offer, start, trailer, ack).
    if listen:
        listener = await net.open_tcp_listener(endpoint, backlog=8)
        async with listener:
            diag.say(f"listening on {diag.format_address(listener.socket.getsockname())}")
            conn, peer = await serve.first_session(
                partial(net.accept, listener),
                partial(_greeted, sender=expect_sender, idle_timeout=idle_timeout),
                _as_is,
                within=GREETING_TIMEOUT if idle_timeout is None else idle_timeout + 1,
                fatal=_idle_or_stdio,
            )
        net.set_nodelay(conn, True)
    else:
        timeout = math.inf if connect_timeout is None else connect_timeout
        with trio.move_on_after(timeout) as scope:
            conn = await net.connect_tcp(endpoint, nodelay=True)
        if scope.cancelled_caught:
            raise NcatTimeout(f"connect to {endpoint}", f"timed out after {timeout:g} s (-w)")
        peer = f"connection to {diag.format_address(net.peer_address(conn))}"
    async with net.closing(conn):
        yield conn, peer


async def _as_is(conn: trio.SocketStream, peer: str) -> tuple[trio.SocketStream, str]:
    await trio.lowlevel.checkpoint()
    return conn, peer


#: Seconds a listening receiver gives a client to send the protocol's magic.
GREETING_TIMEOUT = 10.0


async def _greeted(
    conn: trio.SocketStream, *, sender: bool, idle_timeout: float | None = None
) -> str:
    """The peer's description; from a ``sender``, once the fixed part of its Header is
    in and begins with the magic and version (left unread for the session)."""
    peer = f"connection from {diag.format_address(net.peer_address(conn))}"
    if sender:
        with trio.move_on_after(math.inf if idle_timeout is None else idle_timeout) as idle:
            first = await net.peek(conn, wire.HEADER_FIXED_SIZE)
        if idle.cancelled_caught:
            raise NcatTimeout(peer, f"nothing sent or received for {idle_timeout:g} s (-i)")
        greeting = wire.MAGIC + bytes([wire.VERSION])
        if first[: len(greeting)] != greeting[: len(first)]:
            raise RemoteProtocolError(peer, "not an ncat-trio v1 file transfer (magic, version)")
        if len(first) < wire.HEADER_FIXED_SIZE:
            raise RemoteProtocolError(peer, f"closed after {len(first)} bytes of a header")
    return peer


def _idle_or_stdio(exc: NcatError) -> bool:
    """-i fired while waiting for a sender's header: that ends the receive (exit 4)."""
    return isinstance(exc, NcatTimeout) or serve.stdio_is_fatal(exc)


def checked_name(name: str) -> str:
    """A name to send: one safe path component (PROTOCOL.md), else a usage error."""
    try:
        return wire.check_name(name, remote=False)
    except LocalProtocolError as exc:
        raise UsageError(str(exc), "choose another with --name") from exc


def _check_output(output: str | None) -> None:
    """Fail before listening if ``-o`` names a file in a directory that does not exist."""
    if output is None or output == "-":
        return
    parent = output if os.path.isdir(output) else os.path.dirname(output)
    if parent and not os.path.isdir(parent):
        raise LocalIOError(f"-o {output}", f"no such directory: {parent}")


def _base_name(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


@asynccontextmanager
async def open_source(opts: SendOptions) -> AsyncIterator[Source]:
    """The file (or stdin) to send, classified: a regular file, or a stream."""
    owned = opts.path != "-"
    with files.open_input(opts.path) as (fd, st, start):
        name = checked_name(opts.name or (_base_name(opts.path) if owned else "stdin"))
        if stat.S_ISDIR(st.st_mode):
            raise LocalIOError(f"send {opts.path}", "is a directory")
        if fd_kind(fd) is FdKind.REGULAR:
            mtime = st.st_mtime_ns if owned else None
            size = max(0, st.st_size - start)
            yield FileSource(fd, name, size, st.st_mode & 0o7777, mtime, start)
        else:
            async with open_stdin(fd) as stream:
                yield StreamSource(stream, name, st.st_mode & 0o7777 if owned else 0o666)


def _summary(command: str, result: TransferResult, opts: TransferOptions) -> None:
    rate = result.bytes_moved / result.seconds / (1 << 20) if result.seconds > 0 else 0.0
    Summary(opts.json, opts.json_file).write(
        report_schema.record(
            report_schema.SEND if command == "send" else report_schema.RECEIVE,
            name=result.name, size=result.size, sha256=result.sha256,
            resumed_from=result.resumed_from, bytes_moved=result.bytes_moved,
            seconds=round(result.seconds, 6), mib_per_s=round(rate, 3), verified=True,
            **({} if command == "send" else {"path": result.path}),
        )
    )  # fmt: skip
    if opts.quiet:
        return
    resumed = f", resumed at {result.resumed_from}" if result.resumed_from else ""
    if command == "send":
        diag.say(
            f"sent {result.name!r}: {result.size} bytes{resumed}, sha256 {result.sha256}, "
            "acknowledged by the receiver"
        )
    else:
        where = result.path if result.path is not None else "stdout"
        diag.say(
            f"received {result.name!r} → {where}: {result.size} bytes{resumed}, "
            f"sha256 {result.sha256} verified"
        )


async def _run(
    make: Callable[[trio.abc.HalfCloseableStream, IdleWatch | None], SendSession | ReceiveSession],
    conn: trio.abc.HalfCloseableStream,
    peer: str,
    opts: TransferOptions,
) -> TransferResult:
    """The session, with ``-i`` and ``--progress`` around it."""
    watch = None if opts.idle_timeout is None else IdleWatch(opts.idle_timeout)
    session = make(conn if watch is None else WatchedStream(conn, watch), watch)
    receiving = isinstance(session, ReceiveSession)

    def counters() -> tuple[int, int]:  # the data bytes that crossed the connection
        moved = session.statistics().moved
        return (0, moved) if receiving else (moved, 0)

    def total() -> int | None:  # the bytes to move this time: a resumed prefix is not
        stats = session.statistics()
        return None if stats.size is None else stats.size - (stats.done - stats.moved)

    with contextlib.nullcontext() if watch is None else watch.scope:
        if not opts.progress:
            return await session.run()
        async with trio.open_nursery() as nursery:
            show = partial(progress.show_progress, counters, total=total, of_received=receiving)
            nursery.start_soon(show)
            try:
                return await session.run()
            finally:
                nursery.cancel_scope.cancel()
    raise NcatTimeout(peer, f"nothing sent or received for {opts.idle_timeout:g} s (-i)")


async def send_main(opts: SendOptions) -> int:
    """``ncat-trio send HOST PORT [FILE|-]`` (or ``--listen [HOST] PORT [FILE|-]``)."""
    if opts.progress:
        progress.prepare()  # rich's import must not stall the transfer
    async with open_source(opts) as source:
        conn_cm = open_transfer_connection(
            opts.endpoint, listen=opts.listen, connect_timeout=opts.connect_timeout
        )
        async with conn_cm as (conn, peer):
            result = await _run(
                lambda c, idle: SendSession(c, source, peer_name=peer, idle=idle),
                conn, peer, opts,
            )  # fmt: skip
    _summary("send", result, opts)
    return 0


async def receive_main(opts: ReceiveOptions) -> int:
    """``ncat-trio receive [HOST] PORT [-o FILE|DIR|-]`` (or ``--connect HOST PORT``)."""
    target = opts.target
    _check_output(target.output)
    if opts.progress:
        progress.prepare()  # rich's import must not stall the transfer
    async with contextlib.AsyncExitStack() as stack:
        stdout = None
        if target.output == "-":
            stdout = await stack.enter_async_context(open_stdout())
        conn_cm = open_transfer_connection(
            opts.endpoint,
            listen=opts.listen,
            connect_timeout=opts.connect_timeout,
            expect_sender=True,
            idle_timeout=opts.idle_timeout,
        )
        conn, peer = await stack.enter_async_context(conn_cm)
        result = await _run(
            # Verified and in place: exit 0 even if a signal comes now (README, send/receive:
            # non-zero means the file is not under its real name).
            lambda c, idle: ReceiveSession(
                c, target, stdout=stdout, peer_name=peer, idle=idle,
                on_settled=partial(runner.settle, 0),
            ),
            conn, peer, opts,
        )  # fmt: skip
    _summary("receive", result, opts)
    return 0


__all__ = ["ReceiveOptions", "SendOptions", "checked_name", "receive_main", "send_main"]

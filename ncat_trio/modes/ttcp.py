"""ttcp: a TCP throughput test, wire-compatible with muduo's ttcp, plus a window.

The transmitter sends a session message and ``number`` payloads of ``length`` bytes;
the receiver acks each payload with its length.  The original waits for every ack
before the next payload (stop-and-wait), so small payloads measure the round trip,
not the bandwidth.  ``window`` > 1 keeps up to that many payloads un-acked: the wire
format is unchanged (one ack per payload, in order), so any receiver that reads a
payload and then acks it works with it.

:func:`transmit_session` and :func:`receive_session` take a connected Trio stream, so
tests drive them over ``trio.testing.memory_stream_pair()``; :func:`transmit_main`
and :func:`receive_main` open the sockets and print the report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import trio

from .. import diag, report_schema
from ..errors import UsageError
from ..json_summary import Summary, write_stdout
from ..proto import ttcp
from ..transport import net, serve
from ..transport.blocking import Wire
from ..transport.pump import Side, run_directions

#: A windowed transmitter joins payloads into one ``send_all`` up to about this size.
BATCH_BYTES = 256 * 1024
MIB = 1024 * 1024
#: Largest window sent by one task on a socket (:func:`_windowed`): its acks, 4 bytes
#: each, must fit in the socket buffers, or a write that waits could deadlock.
DIRECT_WINDOW_LIMIT = 4096

_DONE = ttcp.State.DONE
_CLOSED = ttcp.State.CLOSED


@dataclass(frozen=True)
class TransmitOptions:
    """One transmit session: ``number`` payloads of ``length`` bytes, ``window`` in flight."""

    number: int = ttcp.DEFAULT_NUMBER
    length: int = ttcp.DEFAULT_LENGTH
    window: int = 1  # 1 = the original stop-and-wait

    def __post_init__(self) -> None:
        if not 0 <= self.number <= ttcp.INT32_MAX:
            raise UsageError(f"invalid number {self.number}", f"must be 0-{ttcp.INT32_MAX}")
        if not 0 <= self.length <= ttcp.LENGTH_LIMIT:
            raise UsageError(f"invalid length {self.length}", f"must be 0-{ttcp.LENGTH_LIMIT}")
        if self.window < 1:
            raise UsageError(f"invalid window {self.window}", "must be at least 1")


@dataclass(frozen=True)
class ReceiveOptions:
    """One receive session: how much to trust the peer and whether to check the data."""

    max_length: int = ttcp.DEFAULT_MAX_LENGTH
    verify: bool = False  # compare payload data with the pattern (RemoteProtocolError if not)


@dataclass(frozen=True)
class Throughput:
    """What a session moved and how long it took; MiB counts payload data only."""

    number: int
    length: int
    seconds: float

    @property
    def data_bytes(self) -> int:
        return self.number * self.length

    @property
    def mib(self) -> float:
        return self.data_bytes / MIB

    @property
    def mib_per_s(self) -> float:
        return self.mib / self.seconds if self.seconds > 0 else 0.0

    def human_lines(self) -> list[str]:
        """The original's three result lines."""
        return [
            f"{self.mib:.3f} MiB in total",
            f"{self.seconds:.3f} seconds",
            f"{self.mib_per_s:.3f} MiB/s",
        ]

    def as_dict(self) -> dict[str, object]:
        """The fields and the derived figures, for ``--json``."""
        return asdict(self) | {
            "bytes": self.data_bytes,
            "messages": self.number,
            "mib": self.mib,
            "mib_per_s": self.mib_per_s,
            "messages_per_s": self.number / self.seconds if self.seconds > 0 else 0.0,
        }


@dataclass(frozen=True)
class TransmitResult(Throughput):
    """Clock: from the session's start (just after connect) to after close."""

    window: int = 1
    mean_ack_rtt: float | None = None  # seconds from handing a payload to the socket to its ack


@dataclass(frozen=True)
class ReceiveResult(Throughput):
    """Clock: from the session message to the last ack sent (as the C peer)."""

    verified: bool = False


# --- sessions over any stream -------------------------------------------------------


async def transmit_session(
    stream: trio.abc.Stream,
    options: TransmitOptions = TransmitOptions(),
    *,
    peer_name: str = "connection",
    exclusive_thread: bool = False,
) -> TransmitResult:
    """Run one transmit session over ``stream`` and close it (the close is timed too).

    Raises :class:`RemoteProtocolError` for a wrong or missing ack and
    :class:`ConnectionLost` for a reset.  Never returns an exception group.
    ``exclusive_thread``: see :func:`receive_session`.
    """
    # A window above the limit takes two tasks, and one must not block the other.
    exclusive = exclusive_thread and options.window <= DIRECT_WINDOW_LIMIT
    wire = Wire(stream, Side(peer_name, local=False), exclusive=exclusive)
    proto = ttcp.Transmitter()
    start = trio.current_time()
    async with net.closing(stream):
        with wire:
            if options.window == 1:
                rtt_sum = await _stop_and_wait(wire, proto, options)
            elif wire.direct and options.window <= DIRECT_WINDOW_LIMIT:
                rtt_sum = await _windowed(wire, proto, options)
            else:
                rtt_sum = await _pipelined(wire, proto, options)
    return TransmitResult(
        number=options.number,
        length=options.length,
        seconds=trio.current_time() - start,
        window=options.window,
        mean_ack_rtt=rtt_sum / options.number if options.number else None,
    )


async def _stop_and_wait(wire: Wire, proto: ttcp.Transmitter, options: TransmitOptions) -> float:
    """Window 1, the original: send, wait for the ack, repeat.  Returns the summed RTTs.

    One task is enough here (a second would only add a wake-up per payload); the
    session message rides with the first payload.  Each payload leaves as the ack
    of the one before arrives, so the round trips add up to the time from the first
    payload to the last ack: no clock read per payload.
    """
    pending = proto.send(ttcp.Session(options.number, options.length))
    if not options.number:  # the session alone
        await wire.send_all(pending)
        return 0.0
    receive, send_all, receive_acks = wire.receive, wire.send_all, proto.receive_acks
    await send_all(pending + proto.payloads(1))
    sent_at = trio.current_time()
    for _ in range(options.number - 1):
        while not receive_acks(await receive()):  # b"" (EOF) raises: an ack is missing
            pass
        await send_all(proto.payloads(1))
    await _acks(wire, proto)
    return trio.current_time() - sent_at


async def _acks(wire: Wire, proto: ttcp.Transmitter) -> int:
    """Wait for at least one ack; returns how many arrived.  EOF: the protocol's error."""
    while True:
        if count := proto.receive_acks(await wire.receive()):
            return count


async def _windowed(wire: Wire, proto: ttcp.Transmitter, options: TransmitOptions) -> float:
    """Window > 1 on a socket, in one task: send all the credit, then wait for acks.

    No second task and no wake-up between tasks per ack (on a socket the kernel
    buffers overlap the two directions).  While a write waits for buffer space no
    ack is read, which is safe as long as the receiver can always write its acks:
    ``DIRECT_WINDOW_LIMIT`` keeps them (4 bytes each) far below a socket buffer.
    Returns the summed RTTs.
    """
    now = trio.current_time
    per_batch = max(1, BATCH_BYTES // (ttcp.HEADER_SIZE + options.length))
    pending = proto.send(ttcp.Session(options.number, options.length))
    batches: deque[list[float]] = deque()  # [sent_at, payloads] per write, oldest first
    credit, left, rtt_sum = options.window, options.number, 0.0
    while left or batches:
        if credit and left:
            count = min(credit, left, per_batch)
            credit -= count
            left -= count
            data = proto.payloads(count)
            await wire.send_all(pending + data if pending else data)
            pending = b""
            batches.append([now(), count])
            continue
        acked = await _acks(wire, proto)
        credit += acked
        acked_at = now()
        while acked:
            oldest = batches[0]
            step = min(acked, int(oldest[1]))
            rtt_sum += (acked_at - oldest[0]) * step
            acked -= step
            oldest[1] -= step
            if not oldest[1]:
                batches.popleft()
    if pending:  # number == 0: the session alone
        await wire.send_all(pending)
    return rtt_sum


async def _pipelined(wire: Wire, proto: ttcp.Transmitter, options: TransmitOptions) -> float:
    """Window > 1 on any stream: a sender task keeps up to ``window`` payloads
    un-acked; an ack-reader task counts acks back in and hands the sender its credit.
    Returns the summed RTTs.

    Two tasks, because a stream without buffers (``lockstep_stream_pair``, TLS
    over one) would otherwise deadlock: the receiver's ack waits for our read while
    our write waits for its read.
    """
    credit = options.window
    credit_returned = trio.lowlevel.ParkingLot()
    sent_at: deque[float] = deque()  # one entry per payload in flight, oldest first
    rtt_sum = 0.0
    per_batch = max(1, BATCH_BYTES // (ttcp.HEADER_SIZE + options.length))

    async def sender() -> None:
        nonlocal credit
        pending = proto.send(ttcp.Session(options.number, options.length))
        left = options.number
        while left:
            while credit == 0:
                await credit_returned.park()
            count = min(credit, left, per_batch)
            credit -= count
            left -= count
            sent_at.extend([trio.current_time()] * count)
            data = proto.payloads(count)
            await wire.send_all(pending + data if pending else data)
            pending = b""
        if pending:
            await wire.send_all(pending)

    async def ack_reader() -> None:
        nonlocal credit, rtt_sum
        while proto.state is not _DONE:
            acked = await _acks(wire, proto)
            now = trio.current_time()
            for _ in range(acked):
                rtt_sum += now - sent_at.popleft()
            credit += acked
            credit_returned.unpark_all()

    failure = await run_directions(sender, ack_reader)  # the first NcatError, alone
    if failure is not None:
        raise failure
    return rtt_sum


async def receive_session(
    stream: trio.abc.Stream,
    options: ReceiveOptions = ReceiveOptions(),
    *,
    peer_name: str = "connection",
    on_session: Callable[[ttcp.Session], None] | None = None,
    exclusive_thread: bool = False,
) -> ReceiveResult:
    """Serve one session over ``stream``: ack every payload, then read to EOF and close.

    Acks for payloads that arrived in the same chunk go out in one write.  Raises
    :class:`RemoteProtocolError` for anything the transmitter gets wrong.

    ``exclusive_thread=True`` says that nothing else in this Trio thread needs to run
    while the session does (the CLI: one session per process): on a socket, reads and
    writes then wait in the kernel (:mod:`ncat_trio.transport.blocking`).  Leave it
    False inside a larger program.
    """
    wire = Wire(stream, Side(peer_name, local=False), exclusive=exclusive_thread)
    proto = ttcp.Receiver(max_length=options.max_length, verify=options.verify)
    started = finished = trio.current_time()
    owed = 0
    async with net.closing(stream):
        with wire:
            # The session message (and whatever came with it) goes through the events ...
            while proto.state is ttcp.State.AWAIT_SESSION:
                proto.receive_data(await wire.receive())
                while (event := proto.next_event()) is not ttcp.NEED_DATA:
                    if isinstance(event, ttcp.Payload):
                        owed += 1
                    elif isinstance(event, ttcp.Session):
                        started = finished = trio.current_time()
                        if on_session is not None:
                            on_session(event)
            # ... the payloads through the bulk path: one ack write per read.
            receive, send_all, receive_payloads = (
                wire.receive,
                wire.send_all,
                proto.receive_payloads,
            )
            while True:
                if owed:
                    await send_all(proto.acks(owed))
                    if proto.state is _DONE:  # that was the last ack
                        finished = trio.current_time()
                elif proto.state is _CLOSED:
                    break
                owed = receive_payloads(await receive())  # b"": EOF, CLOSED or raises
    stats = proto.statistics()
    return ReceiveResult(
        number=stats.number,
        length=stats.length,
        seconds=finished - started,
        verified=options.verify,
    )


# --- the commands -------------------------------------------------------------------


@dataclass(frozen=True)
class TtcpTransmitOptions:
    """``ncat-trio ttcp transmit HOST``."""

    endpoint: net.Endpoint
    session: TransmitOptions = field(default_factory=TransmitOptions)
    nodelay: bool = False  # -D: TCP_NODELAY, as the original
    json: bool = False  # one JSON object on stdout instead of the lines
    json_file: str | None = None  # also append that object to this file


@dataclass(frozen=True)
class TtcpReceiveOptions:
    """``ncat-trio ttcp receive``; ``endpoint.host=None`` listens on all addresses."""

    endpoint: net.Endpoint
    session: ReceiveOptions = field(default_factory=ReceiveOptions)
    keep_open: bool = False  # -k: serve one session after another
    json: bool = False  # one JSON object per session on stdout instead of the lines
    json_file: str | None = None  # also append each object to this file


async def transmit_main(opts: TtcpTransmitOptions) -> int:
    """Connect, run one session, print the report (human lines or one JSON object)."""
    session = opts.session
    if not opts.json:
        _emit(
            f"port = {opts.endpoint.port}",
            f"buffer length = {session.length}",
            f"number of buffers = {session.number}",
        )
    conn = await net.connect_tcp(opts.endpoint, nodelay=opts.nodelay)
    peer = diag.format_address(net.peer_address(conn))
    result = await transmit_session(
        conn, session, peer_name=f"connection to {peer}", exclusive_thread=True
    )
    report = report_schema.record(
        report_schema.TTCP_TRANSMIT, peer=peer, nodelay=opts.nodelay, **result.as_dict()
    )
    Summary(opts.json, opts.json_file).write_result(report, result.human_lines())
    return 0


async def receive_main(opts: TtcpReceiveOptions) -> int:
    """Listen, print the readiness lines, serve one session (or, with -k, many)."""
    listener = await net.open_tcp_listener(opts.endpoint, backlog=128 if opts.keep_open else 1)
    async with listener:
        address = listener.socket.getsockname()
        if not opts.json:
            _emit(f"port = {address[1] if isinstance(address, tuple) else address}")
        diag.say(f"listening on {diag.format_address(address)}")
        while True:
            conn = await net.accept(listener)  # EMFILE waited out, reset clients skipped
            if not opts.keep_open:
                await listener.aclose()  # one session, then nobody else gets in
                await _receive_one(conn, opts)
                return 0
            # -k: a failed session (reset, garbage, no fd) is one line; serve the next
            await serve.guard(partial(_receive_one, conn, opts), name="connection")


async def _receive_one(conn: trio.SocketStream, opts: TtcpReceiveOptions) -> None:
    """One session on an accepted client, then its report."""
    try:
        peer = diag.format_address(net.peer_address(conn))
        result = await receive_session(
            conn,
            opts.session,
            peer_name=f"connection from {peer}",
            on_session=None if opts.json else _print_session,
            exclusive_thread=True,
        )
    finally:
        await trio.aclose_forcefully(conn)
    report = report_schema.record(report_schema.TTCP_RECEIVE, peer=peer, **result.as_dict())
    Summary(opts.json, opts.json_file).write_result(report, result.human_lines())


def _print_session(session: ttcp.Session) -> None:
    _emit(f"receive number = {session.number}", f"receive length = {session.length}")


def _emit(*lines: str) -> None:
    """Report lines on stdout, flushed (``port = P`` is a readiness line)."""
    write_stdout("".join(line + "\n" for line in lines))


__all__ = [
    "ReceiveOptions",
    "ReceiveResult",
    "TransmitOptions",
    "TransmitResult",
    "TtcpReceiveOptions",
    "TtcpTransmitOptions",
    "receive_main",
    "receive_session",
    "transmit_main",
    "transmit_session",
]

"""clock mode: measure clock offset and round trip (roundtrip or SNTPv4), serve both.

The wire formats live in ``proto/roundtrip.py`` and ``proto/ntp.py`` and never read a
clock; this module is the edge.  Two clocks, each for one job:

* the **wall clock** (``time.time_ns``, injectable as ``clock=`` for tests) stamps
  packets: it is what we measure;
* **Trio's clock** (monotonic) decides when a probe is due and when it has timed out:
  a wall clock can be stepped mid-run and must never decide a deadline.

Probes go out on schedule (every ``interval``) without waiting for earlier replies;
each reply is paired with its probe by the timestamp it echoes, so a late or duplicate
reply is discarded and never mis-paired.  Servers answer what they can and drop the
rest, counting it: no datagram can crash them.

:func:`run_probes` takes a :class:`DatagramLink` (send bytes, receive bytes with their
arrival time), so tests can drive it over memory channels with ``MockClock``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from .. import diag, report_schema
from ..errors import (
    ConnectionLost,
    LocalIOError,
    NcatError,
    NcatTimeout,
    RemoteProtocolError,
    UsageError,
)
from ..json_summary import Summary
from ..proto import ntp
from ..proto.roundtrip import (
    CLOSED,
    ClockClient,
    ClockReport,
    ClockSample,
    DiscardedReply,
    FrameBuffer,
    RoundtripClient,
    RoundtripFrame,
    answer_datagram,
    encode_frame,
)
from ..transport import datagram, net, serve
from ..transport.pump import STREAM_ERRORS, Side, describe_failure, translated
from .clock_defaults import NTP_PORT, NTP_SERVE_PORT, PROTOCOLS, ROUNDTRIP_PORT

WallClock = datagram.WallClock  # ns since the Unix epoch


def default_port(proto: str, *, serve: bool) -> int:
    """The port used when ``-p`` is not given."""
    if proto == "ntp":
        return NTP_SERVE_PORT if serve else NTP_PORT
    return ROUNDTRIP_PORT


@dataclass(frozen=True)
class ServeOptions:
    """``ncat-trio clock serve``."""

    endpoint: net.Endpoint  # host None: all addresses (dual-stack)
    proto: str = "roundtrip"
    tcp: bool = False  # roundtrip only
    stratum: int = 10  # ntp only
    verbose: bool = False


@dataclass(frozen=True)
class ProbeOptions:
    """``ncat-trio clock probe``."""

    endpoint: net.Endpoint
    proto: str = "roundtrip"
    tcp: bool = False  # roundtrip only
    count: int = 8
    interval: float = 0.2
    timeout: float = 1.0
    json: bool = False  # the summary as one JSON object on stdout
    json_file: str | None = None  # also append that object to this file
    verbose: bool = False


# --------------------------------------------------------------------------------------
# Server side.


@dataclass(frozen=True)
class ClockServerStatistics:
    """Live counters of a clock server."""

    answered: int
    dropped: int


class ClockServer:
    """Answers clock requests; whatever arrives, it answers or drops and counts, never dies.

    ``clock`` is the wall clock that stamps replies (tests inject a skewed one).
    """

    def __init__(
        self,
        proto: str,
        *,
        stratum: int = 10,
        clock: WallClock = time.time_ns,
        verbose: bool = False,
    ) -> None:
        if proto not in PROTOCOLS:
            raise UsageError(f"unknown clock protocol {proto!r}", "use roundtrip or ntp")
        self.proto = proto
        self._clock = clock
        self._verbose = verbose
        self._ntp = ntp.NtpServerConfig(stratum=stratum, reference_ns=clock())
        self._answered = 0
        self._dropped = 0

    def statistics(self) -> ClockServerStatistics:
        return ClockServerStatistics(self._answered, self._dropped)

    def answer(self, data: bytes, received_ns: int) -> bytes:
        """The reply to one request; :class:`RemoteProtocolError` means drop it."""
        if self.proto == "ntp":
            reply = ntp.answer_request(data, received_ns, received_ns, self._ntp)
            return ntp.stamp_transmit(reply, self._clock())  # T3 at the last moment
        return answer_datagram(data, self._roundtrip_stamp(received_ns) // 1000)

    def _roundtrip_stamp(self, received_ns: int) -> int:
        """The one server time a roundtrip reply carries: the middle of our hold time.

        The client's formula, ``server - (send + back) / 2``, assumes the server's time
        sits midway through the round trip; NTP's ``(T2 + T3) / 2`` says the same.
        Muduo's C server stamps its receive time, but holds a request for a few µs; ours
        holds it for a Python wake-up (tens to hundreds of µs), and stamping only the
        arrival would bias every offset by minus half of that.
        """
        return (received_ns + self._clock()) // 2

    def _drop(self, what: str, peer: object, why: str) -> None:
        self._dropped += 1
        if self._verbose:
            diag.say(f"dropped {what} from {diag.format_address(peer)}: {why}")

    async def serve_datagrams(
        self,
        sock: trio.socket.SocketType,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer datagrams on a bound UDP socket until cancelled."""
        receiver = datagram.StampedReceiver(sock, self._clock)
        task_status.started()
        while True:
            try:
                data, received_ns, truncated, peer = await receiver.receive()
            except OSError as exc:
                if exc.errno in datagram.PEER_ERRNOS:  # an ICMP error for an earlier reply
                    continue
                raise LocalIOError("clock server socket", net.describe(exc)) from exc
            if truncated:
                self._drop(f"a {len(data)}-byte datagram", peer, "truncated (oversized)")
                continue
            try:
                reply = self.answer(data, received_ns)
            except RemoteProtocolError as exc:
                self._drop(f"a {len(data)}-byte datagram", peer, str(exc))
                continue
            try:
                await sock.sendto(reply, peer)
            except OSError as exc:
                if exc.errno not in datagram.PEER_ERRNOS:
                    raise LocalIOError("clock server socket", net.describe(exc)) from exc
                self._drop(f"a reply to {len(data)} bytes", peer, net.describe(exc))
                continue
            self._answered += 1

    async def serve_stream(self, stream: trio.abc.Stream, peer_name: str = "client") -> None:
        """Roundtrip over TCP: stamp every complete frame with the time its bytes arrived.

        Partial frames wait in a :class:`FrameBuffer`.  Ends quietly at the client's EOF;
        a reset or a close in mid-frame is logged with ``-v`` and ends this stream only.
        """
        buffer = FrameBuffer()
        try:
            while True:
                data = await stream.receive_some(datagram.MAX_DATAGRAM)
                received_ns = self._clock()
                buffer.receive_data(data)
                frames = []
                while isinstance(event := buffer.next_event(), RoundtripFrame):
                    frames.append(event)
                stamp_us = self._roundtrip_stamp(received_ns) // 1000
                replies = [encode_frame(RoundtripFrame(f.sent_us, stamp_us)) for f in frames]
                if replies:
                    await stream.send_all(b"".join(replies))
                    self._answered += len(replies)
                if event is CLOSED:
                    return
        except RemoteProtocolError as exc:  # closed in mid-frame
            self._drop(f"a {buffer.pending}-byte partial frame", peer_name, str(exc))
        except STREAM_ERRORS as exc:
            if self._verbose:
                diag.say(f"{peer_name}: {describe_failure(exc)}")
        finally:
            await trio.aclose_forcefully(stream)

    async def serve_listener(
        self,
        listener: trio.SocketListener,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve every TCP client at once, each in its own task, with TCP_NODELAY
        (transport/serve.py: no client's failure, EMFILE included, ends the server)."""

        async def client(conn: trio.SocketStream) -> None:
            net.set_nodelay(conn, True)
            peer = diag.format_address(net.peer_address(conn))  # reset: ConnectionLost
            if self._verbose:
                diag.say(f"connection from {peer}")
            await self.serve_stream(conn, peer)

        await serve.serve_connections(
            listener, client, fatal=serve.never_fatal, task_status=task_status
        )


async def serve_main(opts: ServeOptions, *, clock: WallClock = time.time_ns) -> int:
    """``ncat-trio clock serve``: answer until interrupted, then count what was done."""
    server = ClockServer(opts.proto, stratum=opts.stratum, clock=clock, verbose=opts.verbose)
    serve: Callable[..., Awaitable[None]]
    on: trio.SocketListener | trio.socket.SocketType
    async with contextlib.AsyncExitStack() as stack:
        if opts.tcp:
            on = await stack.enter_async_context(await net.open_tcp_listener(opts.endpoint))
            serve, where = server.serve_listener, on.socket.getsockname()
        else:
            on = stack.enter_context(await datagram.bind_udp(opts.endpoint))
            serve, where = server.serve_datagrams, on.getsockname()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(serve, on)
                diag.say(f"listening on {diag.format_address(where)} ({_how(opts)})")
        finally:
            stats = server.statistics()
            if opts.verbose or stats.dropped:
                diag.say(f"answered {stats.answered} requests, dropped {stats.dropped}")
    return 0


def _how(opts: ServeOptions | ProbeOptions) -> str:
    return f"{opts.proto} over {'tcp' if opts.tcp else 'udp'}"


# --------------------------------------------------------------------------------------
# Client side.


class DatagramLink(Protocol):
    """What :func:`run_probes` talks through: requests out, replies in with arrival time."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> tuple[bytes, int]:
        """The next reply and the wall-clock time (ns) it arrived."""
        ...


class StreamLink:
    """Roundtrip over TCP: whole 16-byte frames out of a byte stream."""

    def __init__(self, stream: trio.abc.Stream, name: str, clock: WallClock) -> None:
        self._stream = stream
        self._side = Side(name, local=False)
        self._clock = clock
        self._buffer = FrameBuffer()
        self._stamp = 0

    async def send(self, data: bytes) -> None:
        with translated(self._side):
            await self._stream.send_all(data)

    async def receive(self) -> tuple[bytes, int]:
        while True:
            try:
                event = self._buffer.next_event()
            except RemoteProtocolError as exc:
                raise ConnectionLost(self._side.name, exc.why) from exc
            if isinstance(event, RoundtripFrame):
                return encode_frame(event), self._stamp
            if event is CLOSED:
                raise ConnectionLost(self._side.name, "the server closed the connection")
            with translated(self._side):
                data = await self._stream.receive_some(datagram.MAX_DATAGRAM)
            self._stamp = self._clock()
            self._buffer.receive_data(data)


@dataclass(frozen=True)
class ProbeTimeout:
    """A probe's timeout passed without a valid reply."""

    probe: int


@dataclass(frozen=True)
class RejectedReply:
    """A reply that failed validation (the error says why)."""

    error: RemoteProtocolError


ProbeEvent = ClockSample | DiscardedReply | ProbeTimeout | RejectedReply


@dataclass(frozen=True)
class ProbeRun:
    """What a probe run measured, and why it stopped early or got no valid reply."""

    report: ClockReport
    stopped: NcatError | None = None  # why it ended early: refused, lost, kiss-o'-death
    rejection: RemoteProtocolError | None = None  # the last reply that failed validation

    @property
    def failure(self) -> NcatError | None:
        """The error to report when no valid reply arrived."""
        return self.stopped or self.rejection


def make_client(proto: str) -> ClockClient:
    if proto == "ntp":
        return ntp.NtpClient()
    if proto == "roundtrip":
        return RoundtripClient()
    raise UsageError(f"unknown clock protocol {proto!r}", "use roundtrip or ntp")


async def run_probes(
    link: DatagramLink,
    client: ClockClient,
    *,
    count: int,
    interval: float,
    reply_timeout: float,
    clock: WallClock = time.time_ns,
    on_event: Callable[[ProbeEvent], None] | None = None,
) -> ProbeRun:
    """Send ``count`` probes, one every ``interval`` s; collect replies; filter.

    Each probe waits at most ``reply_timeout`` s for its reply (Trio's clock).  Stops early on
    a link failure (refused, reset) or a kiss-o'-death, keeping what was measured.
    """
    deadlines: dict[int, float] = {}  # probe number -> Trio deadline
    stop: list[NcatError] = []
    rejection: list[RemoteProtocolError] = []
    sending_done = False
    receive_scope: trio.CancelScope | None = None

    def emit(event: ProbeEvent) -> None:
        if on_event is not None:
            on_event(event)

    def finished() -> bool:
        return sending_done and client.waiting == 0

    def handle(data: bytes, stamp: int) -> None:
        try:
            result = client.receive_reply(data, stamp)
        except RemoteProtocolError as exc:
            if isinstance(exc, ntp.KissOfDeath):
                stop.append(exc)
            else:
                rejection[:] = [exc]
            emit(RejectedReply(exc))
            return
        deadlines.pop(result.probe, None)
        emit(result)

    def expire_due() -> None:
        now = trio.current_time()
        for probe, deadline in list(deadlines.items()):
            if deadline <= now:
                del deadlines[probe]
                if client.give_up(probe):
                    emit(ProbeTimeout(probe))

    async def sender(nursery: trio.Nursery) -> None:
        nonlocal sending_done
        start = trio.current_time()
        try:
            for index in range(count):
                await trio.sleep_until(start + index * interval)
                probe = client.send_probe(clock())
                deadline = trio.current_time() + reply_timeout
                deadlines[probe.number] = deadline
                if receive_scope is not None:
                    receive_scope.deadline = min(receive_scope.deadline, deadline)
                client.mark_sent(probe.number, clock())  # after building, before the send
                await link.send(probe.data)
        except NcatError as exc:
            stop.append(exc)
            nursery.cancel_scope.cancel()
            return
        sending_done = True
        if finished():
            nursery.cancel_scope.cancel()

    async def receiver(nursery: trio.Nursery) -> None:
        nonlocal receive_scope
        while not stop and not finished():
            with trio.CancelScope(deadline=min(deadlines.values(), default=math.inf)) as scope:
                receive_scope = scope
                try:
                    data, stamp = await link.receive()
                except NcatError as exc:
                    stop.append(exc)
                    break
                handle(data, stamp)
            receive_scope = None
            expire_due()
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver, nursery)
        nursery.start_soon(sender, nursery)
    return ProbeRun(client.report(), stop[0] if stop else None, rejection[0] if rejection else None)


@asynccontextmanager
async def open_probe_link(
    opts: ProbeOptions, clock: WallClock = time.time_ns
) -> AsyncIterator[tuple[DatagramLink, str]]:
    """Connect to the server (TCP, or a connected UDP socket); yield the link and its name."""
    if opts.tcp:
        stream = await net.connect_tcp(opts.endpoint, nodelay=True)
        async with stream:
            peer = diag.format_address(net.peer_address(stream))
            yield StreamLink(stream, f"{opts.proto} server {peer}", clock), peer
        return
    sock = await datagram.connect_udp(opts.endpoint)
    with sock:
        peer = diag.format_address(sock.getpeername())
        yield datagram.ConnectedDatagramSocket(sock, f"{opts.proto} server {peer}", clock), peer


def format_seconds(ns: int, *, signed: bool = False) -> str:
    """A duration for people: ``85.2 us``, ``3.217 ms``, ``1.204511 s``."""
    sign = ("+" if ns >= 0 else "-") if signed else ("-" if ns < 0 else "")
    size = abs(ns)
    if size < 1_000_000:
        return f"{sign}{size / 1e3:.1f} us"
    if size < 1_000_000_000:
        return f"{sign}{size / 1e6:.3f} ms"
    return f"{sign}{size / 1e9:.6f} s"


def describe_event(event: ProbeEvent) -> str:
    """One stderr line (``-v``) for a probe event."""
    if isinstance(event, ClockSample):
        stratum = "" if event.stratum is None else f" stratum {event.stratum}"
        return (
            f"probe {event.probe}: rtt {format_seconds(event.rtt_ns)}"
            f" offset {format_seconds(event.offset_ns, signed=True)}{stratum}"
        )
    if isinstance(event, DiscardedReply):
        return f"probe {event.probe}: {event.reason} reply discarded"
    if isinstance(event, ProbeTimeout):
        return f"probe {event.probe}: timed out"
    return f"rejected: {event.error}"


def _counted(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def report_lines(peer: str, opts: ProbeOptions, report: ClockReport) -> list[str]:
    """The human summary printed on stdout."""
    stratum = ""
    if report.best is not None and report.best.stratum is not None:
        stratum = f", stratum {report.best.stratum}"
    extras = [
        f"{n} {what}"
        for n, what in (
            (report.late, "late"),
            (report.duplicates, "duplicate"),
            (report.rejected, "rejected"),
        )
        if n
    ]
    lines = [
        f"{peer} ({_how(opts)}{stratum}): {_counted(report.probes, 'probe')}, "
        f"{_counted(report.replies, 'reply', 'replies')}, {report.lost} lost"
        + (f" ({', '.join(extras)})" if extras else "")
    ]
    if report.best is not None:
        assert report.median_offset_ns is not None
        assert report.spread_ns is not None
        lines.append(
            f"best   offset {format_seconds(report.best.offset_ns, signed=True)}"
            f"  rtt {format_seconds(report.best.rtt_ns)}"
            f"  (probe {report.best.probe}, the smallest round trip)"
        )
        lines.append(
            f"median offset {format_seconds(report.median_offset_ns, signed=True)}"
            f"  spread {format_seconds(report.spread_ns)}"
        )
    return lines


def report_json(peer: str, opts: ProbeOptions, report: ClockReport) -> dict[str, Any]:
    """The ``--json`` object: times in seconds (floats), counts as integers."""

    def sample(s: ClockSample) -> dict[str, Any]:
        item: dict[str, Any] = {
            "probe": s.probe,
            "rtt_s": s.rtt_ns / 1e9,
            "offset_s": s.offset_ns / 1e9,
        }
        if s.stratum is not None:
            item["stratum"] = s.stratum
        return item

    median, spread = report.median_offset_ns, report.spread_ns
    return report_schema.record(
        report_schema.CLOCK_PROBE, server=peer, proto=opts.proto,
        transport="tcp" if opts.tcp else "udp", probes=report.probes, replies=report.replies,
        lost=report.lost, late=report.late, duplicates=report.duplicates,
        rejected=report.rejected, best=None if report.best is None else sample(report.best),
        median_offset_s=None if median is None else median / 1e9,
        spread_s=None if spread is None else spread / 1e9,
        samples=[sample(s) for s in report.samples],
    )  # fmt: skip


async def probe_main(opts: ProbeOptions, *, clock: WallClock = time.time_ns) -> int:
    """``ncat-trio clock probe``: exit 0 if at least one valid reply arrived."""
    client = make_client(opts.proto)
    async with open_probe_link(opts, clock) as (link, peer):
        if opts.verbose:
            diag.say(
                f"probing {peer} ({opts.proto}): {_counted(opts.count, 'probe')}, every {opts.interval:g} s"
            )
        run = await run_probes(
            link, client, count=opts.count, interval=opts.interval, reply_timeout=opts.timeout,
            clock=clock, on_event=(lambda e: diag.say(describe_event(e))) if opts.verbose else None,
        )  # fmt: skip
    report = run.report
    Summary(opts.json, opts.json_file).write_result(
        report_json(peer, opts, report), report_lines(peer, opts, report)
    )
    if report.replies:
        if run.stopped is not None:
            diag.say(f"stopped early: {run.stopped}")
        return 0
    if run.failure is not None:
        raise run.failure
    raise NcatTimeout(
        f"{opts.proto} server {peer}",
        f"no reply to {_counted(report.probes, 'probe')} within {opts.timeout:g} s each",
    )

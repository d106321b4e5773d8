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

import errno
import json
import math
import platform
import socket as _stdsocket
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from .. import diag
from ..errors import (
    ConnectError,
    ConnectionLost,
    LocalIOError,
    NcatError,
    NcatTimeout,
    RemoteProtocolError,
    UsageError,
)
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
from ..transport import net
from ..transport.pump import describe_failure

WallClock = Callable[[], int]

PROTOCOLS = ("roundtrip", "ntp")
#: muduo's roundtrip programs have no default port; ours sits next to NTP's stand-in.
ROUNDTRIP_PORT = 12124
#: 123 needs root to bind: ``clock serve --proto ntp`` defaults to this unprivileged port.
NTP_SERVE_PORT = 12123
#: ...while ``clock probe --proto ntp`` defaults to the real NTP port of real servers.
NTP_PORT = 123
#: Bigger than any UDP payload (65507 over IPv4), so nothing is ever truncated unseen.
MAX_DATAGRAM = 65536

# Errors a UDP socket can report for one peer's ICMP message; they never end a server.
_PEER_ERRNOS = {
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EHOSTDOWN,
    errno.ENETDOWN,
    errno.EPERM,  # a local firewall rule (sendto)
    errno.EMSGSIZE,
    errno.ECONNRESET,
    errno.ENOBUFS,
}


# Kernel receive timestamps (SO_TIMESTAMPNS, Linux): the arrival time of a datagram as
# the kernel saw it, before Trio's wake-up and our scheduling.  Without them every receive
# stamp is late by that wake-up (measured here: tens of µs, more on a busy box), which
# biases the offset.  Python's socket module does not export the constant: 35 is
# SO_TIMESTAMPNS_OLD on the asm-generic ABI, whose cmsg carries a native struct timespec.
_SO_TIMESTAMPNS = 35
_GENERIC_ABI = {"x86_64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv6l", "riscv64"}
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SPACE = _stdsocket.CMSG_SPACE(_TIMESPEC.size)


def enable_kernel_timestamps(sock: trio.socket.SocketType) -> bool:
    """Ask the kernel to stamp arriving datagrams; False where that is not available."""
    if sys.platform != "linux" or platform.machine() not in _GENERIC_ABI:
        return False
    try:
        sock.setsockopt(_stdsocket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def kernel_timestamp(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS arrival time (ns since the epoch) in ``recvmsg`` ancillary data."""
    for level, kind, data in ancdata:
        if (
            level == _stdsocket.SOL_SOCKET
            and kind == _SO_TIMESTAMPNS
            and len(data) >= _TIMESPEC.size
        ):
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


class DatagramReceiver:
    """``recvmsg`` with an arrival stamp: the kernel's when we can, else ``clock()``.

    Kernel stamps are used only with the system wall clock (``time.time_ns``): an injected
    test clock lives on another timeline.
    """

    def __init__(self, sock: trio.socket.SocketType, clock: WallClock) -> None:
        self._sock = sock
        self._clock = clock
        self.kernel = clock is time.time_ns and enable_kernel_timestamps(sock)

    async def receive(self) -> tuple[bytes, int, int, Any]:
        """``(data, stamp_ns, msg_flags, address)``; OSError passes through."""
        space = _ANCILLARY_SPACE if self.kernel else 0
        data, ancdata, flags, address = await self._sock.recvmsg(MAX_DATAGRAM, space)
        stamp = kernel_timestamp(ancdata) if self.kernel else None
        return data, self._clock() if stamp is None else stamp, flags, address


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
    json: bool = False
    verbose: bool = False


# --------------------------------------------------------------------------------------
# Server side.


@dataclass(frozen=True)
class ClockServerStatistics:
    """Live counters of a clock server."""

    answered: int
    dropped: int


def _why(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[0].lower() + text[1:] if text else "failed"


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

    def _drop(self, size: int, peer: object, why: str) -> None:
        self._dropped += 1
        if self._verbose:
            diag.say(f"dropped a {size}-byte datagram from {diag.format_address(peer)}: {why}")

    async def serve_datagrams(
        self,
        sock: trio.socket.SocketType,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer datagrams on a bound UDP socket until cancelled."""
        receiver = DatagramReceiver(sock, self._clock)
        task_status.started()
        while True:
            try:
                data, received_ns, flags, peer = await receiver.receive()
            except OSError as exc:
                if exc.errno in _PEER_ERRNOS:  # an ICMP error for some earlier reply
                    continue
                raise LocalIOError("clock server socket", _why(exc)) from exc
            if flags & _stdsocket.MSG_TRUNC:
                self._drop(len(data), peer, "truncated (oversized)")
                continue
            try:
                reply = self.answer(data, received_ns)
            except RemoteProtocolError as exc:
                self._drop(len(data), peer, str(exc))
                continue
            try:
                await sock.sendto(reply, peer)
            except OSError as exc:
                if exc.errno not in _PEER_ERRNOS:
                    raise LocalIOError("clock server socket", _why(exc)) from exc
                self._drop(len(data), peer, f"reply not sent: {_why(exc)}")
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
                data = await stream.receive_some(MAX_DATAGRAM)
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
            self._drop(buffer.pending, peer_name, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
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
        """Serve every TCP client at once, each in its own task, with TCP_NODELAY."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                conn = await listener.accept()
                conn.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
                peer = diag.format_address(net.peer_address(conn))
                if self._verbose:
                    diag.say(f"connection from {peer}")
                nursery.start_soon(self.serve_stream, conn, peer)


async def open_udp_server(endpoint: net.Endpoint) -> trio.socket.SocketType:
    """A bound UDP socket.  No host: one dual-stack ``::`` socket (else ``0.0.0.0``)."""
    if endpoint.host is None:
        candidates: list[tuple[int, tuple[str, int]]] = []
        if endpoint.family in (0, trio.socket.AF_INET6):
            candidates.append((trio.socket.AF_INET6, ("::", endpoint.port)))
        if endpoint.family in (0, trio.socket.AF_INET):
            candidates.append((trio.socket.AF_INET, ("0.0.0.0", endpoint.port)))
    else:
        infos = await net.resolve(endpoint, passive=True, socktype=trio.socket.SOCK_DGRAM)
        candidates = [(infos[0][0], infos[0][4][:2])]
    last: ConnectError | None = None
    for family, address in candidates:
        try:
            sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
        except OSError as exc:  # no IPv6 here
            last = ConnectError(f"listen on {diag.format_address(address)}", _why(exc))
            continue
        try:
            if family == trio.socket.AF_INET6:
                v6only = endpoint.family == trio.socket.AF_INET6
                sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, v6only)
            await sock.bind(address)
        except OSError as exc:
            sock.close()
            why = _why(exc)
            if exc.errno == errno.EACCES and endpoint.port < 1024:
                why += f" (port {endpoint.port} is privileged: run as root or pick -p)"
            last = ConnectError(f"listen on {diag.format_address(address)}", why)
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise last from exc
            last.__cause__ = exc
            continue
        return sock
    assert last is not None
    raise last


async def serve_main(opts: ServeOptions, *, clock: WallClock = time.time_ns) -> int:
    """``ncat-trio clock serve``: answer until interrupted."""
    server = ClockServer(opts.proto, stratum=opts.stratum, clock=clock, verbose=opts.verbose)
    how = f"{opts.proto} over {'tcp' if opts.tcp else 'udp'}"
    try:
        if opts.tcp:
            listener = await net.open_tcp_listener(opts.endpoint)
            async with listener, trio.open_nursery() as nursery:
                await nursery.start(server.serve_listener, listener)
                where = diag.format_address(net.local_address(listener))
                diag.say(f"listening on {where} ({how})")
        else:
            sock = await open_udp_server(opts.endpoint)
            with sock:
                async with trio.open_nursery() as nursery:
                    await nursery.start(server.serve_datagrams, sock)
                    diag.say(f"listening on {diag.format_address(sock.getsockname())} ({how})")
    finally:
        stats = server.statistics()
        if opts.verbose or stats.dropped:
            diag.say(f"answered {stats.answered} requests, dropped {stats.dropped}")
    return 0


# --------------------------------------------------------------------------------------
# Client side.


class DatagramLink(Protocol):
    """What :func:`run_probes` talks through: requests out, replies in with arrival time."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> tuple[bytes, int]:
        """The next reply and the wall-clock time (ns) it arrived."""
        ...


class UdpLink:
    """A connected UDP socket: ICMP port unreachable surfaces as :class:`ConnectError`."""

    def __init__(self, sock: trio.socket.SocketType, name: str, clock: WallClock) -> None:
        self._sock = sock
        self._name = name
        self._receiver = DatagramReceiver(sock, clock)

    def _error(self, exc: OSError) -> ConnectError:
        why = _why(exc)
        if exc.errno == errno.ECONNREFUSED:
            why = "port unreachable (connection refused): is a server running there?"
        error = ConnectError(self._name, why)
        error.__cause__ = exc
        return error

    async def send(self, data: bytes) -> None:
        try:
            await self._sock.send(data)
        except OSError as exc:
            raise self._error(exc) from exc

    async def receive(self) -> tuple[bytes, int]:
        try:
            data, stamp, _flags, _address = await self._receiver.receive()
        except OSError as exc:
            raise self._error(exc) from exc
        return data, stamp


class StreamLink:
    """Roundtrip over TCP: whole 16-byte frames out of a byte stream."""

    def __init__(self, stream: trio.abc.Stream, name: str, clock: WallClock) -> None:
        self._stream = stream
        self._name = name
        self._clock = clock
        self._buffer = FrameBuffer()
        self._stamp = 0

    async def send(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ConnectionLost(self._name, describe_failure(exc)) from exc

    async def receive(self) -> tuple[bytes, int]:
        while True:
            try:
                event = self._buffer.next_event()
            except RemoteProtocolError as exc:
                raise ConnectionLost(self._name, exc.why) from exc
            if isinstance(event, RoundtripFrame):
                return encode_frame(event), self._stamp
            if event is CLOSED:
                raise ConnectionLost(self._name, "the server closed the connection")
            try:
                data = await self._stream.receive_some(MAX_DATAGRAM)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise ConnectionLost(self._name, describe_failure(exc)) from exc
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
        except ntp.KissOfDeath as exc:
            stop.append(exc)
            emit(RejectedReply(exc))
            return
        except RemoteProtocolError as exc:
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
    infos = await net.resolve(opts.endpoint, socktype=trio.socket.SOCK_DGRAM)
    family, socktype, proto, _canon, sockaddr = infos[0]
    peer = diag.format_address(sockaddr)
    sock = trio.socket.socket(family, socktype, proto)
    with sock:
        try:
            await sock.connect(sockaddr)
        except OSError as exc:
            raise ConnectError(f"connect to {peer}", _why(exc)) from exc
        yield UdpLink(sock, f"{opts.proto} server {peer}", clock), peer


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


def report_lines(peer: str, opts: ProbeOptions, report: ClockReport) -> list[str]:
    """The human summary printed on stdout."""
    transport = "tcp" if opts.tcp else "udp"
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
        f"{peer} ({opts.proto} over {transport}{stratum}): {report.probes} probes, "
        f"{report.replies} replies, {report.lost} lost"
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

    return {
        "server": peer,
        "proto": opts.proto,
        "transport": "tcp" if opts.tcp else "udp",
        "probes": report.probes,
        "replies": report.replies,
        "lost": report.lost,
        "late": report.late,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "best": None if report.best is None else sample(report.best),
        "median_offset_s": None
        if report.median_offset_ns is None
        else report.median_offset_ns / 1e9,
        "spread_s": None if report.spread_ns is None else report.spread_ns / 1e9,
        "samples": [sample(s) for s in report.samples],
    }


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        raise LocalIOError("stdout", describe_failure(exc)) from exc


async def probe_main(opts: ProbeOptions, *, clock: WallClock = time.time_ns) -> int:
    """``ncat-trio clock probe``: exit 0 if at least one valid reply arrived."""
    client = make_client(opts.proto)

    def on_event(event: ProbeEvent) -> None:
        if opts.verbose:
            diag.say(describe_event(event))

    async with open_probe_link(opts, clock) as (link, peer):
        if opts.verbose:
            diag.say(
                f"probing {peer} ({opts.proto}): {opts.count} probes, every {opts.interval:g} s"
            )
        run = await run_probes(
            link, client, count=opts.count, interval=opts.interval, reply_timeout=opts.timeout,
            clock=clock, on_event=on_event,
        )  # fmt: skip
    report = run.report
    if opts.json:
        _write_stdout(json.dumps(report_json(peer, opts, report)) + "\n")
    else:
        _write_stdout("".join(line + "\n" for line in report_lines(peer, opts, report)))
    if report.replies:
        if run.stopped is not None:
            diag.say(f"stopped early: {run.stopped}")
        return 0
    if run.failure is not None:
        raise run.failure
    raise NcatTimeout(
        f"{opts.proto} server {peer}",
        f"no reply to {report.probes} probes within {opts.timeout:g} s each",
    )

"""The bounded two-direction relay between two half-closeable streams.

Each direction is one :func:`~ncat_trio.transport.pump.pump` task in the connection's
nursery, reading at most ``chunk_size <= buffer`` bytes and awaiting ``send_all``
before it reads again.  So at most ``buffer`` bytes per direction are ever held in user
space, *by construction*: when the writer lags, the reader stops, the kernel buffers
fill and TCP flow control pushes back on the sender (muduo's tcprelay high-water mark,
with the mark at one chunk).  Memory is bounded by connections × 2 × buffer + a constant.

Half-close passes through: EOF from one side becomes ``send_eof`` (FIN) on the other,
and the other direction keeps flowing until its own EOF.  No timer cuts late replies
(socat closes 0.5 s after the first EOF; toxiproxy closes both sides at once).

A reset (or any failure) on one side resets the other promptly: the relay sets
``SO_LINGER`` 0 on the other socket and closes it, so an RST is not laundered into a
clean FIN that would make a truncated transfer look complete.  One limit: after a side's
EOF nobody reads it any more, so its later RST is seen only when the relay next writes
to it (the usual proxy behaviour; an idle timeout bounds the wait).
"""

from __future__ import annotations

import enum
import socket
import struct
from contextlib import suppress
from dataclasses import dataclass

import trio

from ..errors import NcatError
from .faults import ConnectionFaults, Direction, FaultAbort, FaultySink
from .pump import STREAM_ERRORS, Side, pump, translated
from .zerocopy import Spliced, splice_sockets

#: Default per-direction bound (``--buffer``).
DEFAULT_BUFFER = 256 * 1024
#: Largest single read: bigger buffers allow more, but 1 MiB chunks already amortise
#: Python's per-chunk cost (DESIGN.md §5) and keep each allocation modest.
MAX_CHUNK = 1024 * 1024
#: How long a clean close may take before it is made forceful.
CLOSE_TIMEOUT = 5.0


class Ending(enum.Enum):
    """How a relayed connection ended (the value is the stable, machine-readable name)."""

    CLOSED = "closed"  # both FINs passed through: everything was delivered
    CLIENT_RESET = "client-reset"  # the client reset/failed; the target was reset
    TARGET_RESET = "target-reset"  # the target reset/failed; the client was reset
    IDLE = "idle-timeout"
    LIMIT_DATA = "fault-limit-data"
    RESET_PEER = "fault-reset-peer"
    STALL = "fault-stall"
    CANCELLED = "cancelled"  # shut down from outside (drain timeout, Ctrl-C)


@dataclass(frozen=True)
class RelayResult:
    """What one relayed connection moved and how it ended."""

    bytes_up: int  # client → target, delivered
    bytes_down: int  # target → client, delivered
    ending: Ending
    why: str  # human detail: "connection reset by peer", "closed after 100 bytes", ...
    duration: float  # seconds (Trio clock)
    peak_buffered: int  # most bytes held in user space by one direction


@dataclass(frozen=True)
class RelayStatistics:
    """A snapshot of a :class:`RelayMeter`."""

    active: int  # connections being relayed now
    total: int  # connections relayed so far (finished or not)
    bytes_up: int
    bytes_down: int
    buffered: int  # bytes held in user space right now, all directions together
    peak_buffered: int  # most bytes one direction ever held (never above the buffer)
    peak_total_buffered: int  # most bytes held by all directions together


@dataclass(eq=False)
class RelayMeter:
    """Live counters shared by every connection of one relay (sync, same Trio run)."""

    active: int = 0
    total: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    buffered: int = 0
    peak_buffered: int = 0
    peak_total_buffered: int = 0

    def hold(self, nbytes: int) -> None:
        self.buffered += nbytes
        self.peak_buffered = max(self.peak_buffered, nbytes)
        self.peak_total_buffered = max(self.peak_total_buffered, self.buffered)

    def release(self, nbytes: int) -> None:
        self.buffered -= nbytes

    def opened(self) -> None:
        self.active += 1
        self.total += 1

    def closed(self) -> None:
        self.active -= 1

    def statistics(self) -> RelayStatistics:
        return RelayStatistics(**vars(self))  # the same fields, frozen


class _MeteredSink(trio.abc.SendStream):
    """Counts the chunk the pump hands over as *held* until ``send_all`` returns.

    The pump does nothing between ``receive_some`` returning and ``send_all`` starting
    (no checkpoint), so this is exactly the data held in user space for the direction.
    It is the splice path's :class:`~.zerocopy.PipeHooks` too: a chunk in the pipe is
    held the same way, and the splice stops once a fault acts on the direction.
    """

    def __init__(self, inner: trio.abc.SendStream, flow: _Flow, meter: RelayMeter) -> None:
        self.inner = inner
        self.flow = flow
        self.meter = meter

    def stopped(self) -> bool:
        sink = self.inner
        return isinstance(sink, FaultySink) and bool(sink.faults.active(sink.direction))

    def hold(self, nbytes: int) -> None:
        self.flow.held = nbytes
        self.flow.peak = max(self.flow.peak, nbytes)
        self.meter.hold(nbytes)

    def release(self, nbytes: int) -> None:
        self.flow.held = 0
        self.meter.release(nbytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        self.hold(n)
        try:
            await self.inner.send_all(data)
        finally:
            self.release(n)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class _Flow:
    """One direction's live state."""

    direction: Direction
    source: trio.abc.HalfCloseableStream
    raw_sink: trio.abc.HalfCloseableStream
    sink: trio.abc.HalfCloseableStream | FaultySink
    source_side: Side
    sink_side: Side
    moved: int = 0
    held: int = 0
    peak: int = 0
    finished: bool = False


@dataclass(frozen=True)
class ConnectionStatistics:
    """A snapshot of one :class:`RelayConnection`."""

    bytes_up: int
    bytes_down: int
    buffered_up: int
    buffered_down: int
    peak_buffered: int
    ending: Ending | None  # None while running


def set_reset_on_close(stream: object) -> None:
    """Make the next close send RST (``SO_LINGER`` on, 0 s), if ``stream`` is a socket."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return
    with suppress(OSError):  # already closed, or not TCP: a plain close will do
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def abort(stream: trio.abc.AsyncResource) -> None:
    """Close with RST (sockets) or forcefully (anything else); never raises."""
    set_reset_on_close(stream)
    await trio.aclose_forcefully(stream)


class RelayConnection:
    """Relay one client ↔ target pair until both directions end; owns both streams.

    ``run()`` always closes both streams, as :class:`Ending` says: cleanly after two
    FINs, with RST on the other side after a reset, forcefully after cancellation.
    """

    def __init__(
        self,
        client: trio.abc.HalfCloseableStream,
        target: trio.abc.HalfCloseableStream,
        *,
        buffer: int = DEFAULT_BUFFER,
        client_name: str = "client",
        target_name: str = "target",
        idle_timeout: float | None = None,
        faults: ConnectionFaults | None = None,
        meter: RelayMeter | None = None,
        splice: bool = True,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must be at least 1 byte")
        self.client = client
        self.target = target
        self.buffer = buffer
        self.chunk_size = min(buffer, MAX_CHUNK)
        self.idle_timeout = idle_timeout
        self.faults = faults
        self.meter = meter if meter is not None else RelayMeter()
        self.client_side = Side(client_name, local=False)
        self.target_side = Side(target_name, local=False)
        up_sink: trio.abc.HalfCloseableStream | FaultySink = target
        down_sink: trio.abc.HalfCloseableStream | FaultySink = client
        if faults is not None:
            up_sink = faults.wrap("up", target)
            down_sink = faults.wrap("down", client)
        self.splice = splice
        self._up = _Flow("up", client, target, up_sink, self.client_side, self.target_side)
        self._down = _Flow("down", target, client, down_sink, self.target_side, self.client_side)
        self._ending: Ending | None = None
        self._why = ""
        self._fault_direction: Direction | None = None
        self._scope: trio.CancelScope | None = None
        self._idle_scope = trio.CancelScope()

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            bytes_up=self._up.moved,
            bytes_down=self._down.moved,
            buffered_up=self._up.held,
            buffered_down=self._down.held,
            peak_buffered=max(self._up.peak, self._down.peak),
            ending=self._ending,
        )

    async def run(self) -> RelayResult:
        """Relay until both directions end (or one fails); close both streams."""
        start = trio.current_time()
        self.meter.opened()
        try:
            if self.idle_timeout is not None:
                self._idle_scope.deadline = start + self.idle_timeout
            with self._idle_scope:
                async with trio.open_nursery() as nursery:
                    self._scope = nursery.cancel_scope
                    nursery.start_soon(self._flow, self._up)
                    nursery.start_soon(self._flow, self._down)
                    if self.faults is not None:
                        nursery.start_soon(self._watch_faults, self.faults)
            if self._idle_scope.cancelled_caught and self._ending is None:
                self._end(Ending.IDLE, f"no data either way for {self.idle_timeout:g} s")
        except BaseException:
            if self._ending is None:
                self._end(Ending.CANCELLED, "cancelled")
            raise
        finally:
            with trio.CancelScope(shield=True):
                await self._close()
            self.meter.closed()
        assert self._ending is not None
        return RelayResult(
            bytes_up=self._up.moved,
            bytes_down=self._down.moved,
            ending=self._ending,
            why=self._why,
            duration=trio.current_time() - start,
            peak_buffered=max(self._up.peak, self._down.peak),
        )

    def _end(self, ending: Ending, why: str) -> None:
        if self._ending is None:
            self._ending, self._why = ending, why
        if self._scope is not None:
            self._scope.cancel()

    async def _flow(self, flow: _Flow) -> None:
        up = flow.direction == "up"

        def moved(n: int) -> None:
            flow.moved += n
            if up:
                self.meter.bytes_up += n
            else:
                self.meter.bytes_down += n
            if self.idle_timeout is not None:
                self._idle_scope.deadline = trio.current_time() + self.idle_timeout

        metered = _MeteredSink(flow.sink, flow, self.meter)
        try:
            spliced = Spliced(0, at_eof=False)
            if self.splice:
                spliced = await splice_sockets(
                    flow.source, flow.raw_sink, source_side=flow.source_side,
                    sink_side=flow.sink_side, chunk_size=self.chunk_size, on_chunk=moved,
                    hooks=metered,
                )  # fmt: skip
            if not spliced.at_eof:
                if isinstance(flow.sink, FaultySink):
                    flow.sink.forwarded = flow.moved  # limit-data counts from the start
                await pump(
                    flow.source, metered, source_side=flow.source_side,
                    sink_side=flow.sink_side, chunk_size=self.chunk_size, on_chunk=moved,
                )  # fmt: skip
            with translated(flow.sink_side):
                await flow.sink.send_eof()
        except NcatError as exc:
            client_failed = exc.what == self.client_side.name
            self._end(Ending.CLIENT_RESET if client_failed else Ending.TARGET_RESET, exc.why)
            return
        except FaultAbort as exc:
            self._fault(exc)
            return
        finally:
            # A fault can end a chunk half-way (limit-data, reset-peer after N bytes, a
            # watcher firing mid-slice): count what the sink did deliver.
            if isinstance(flow.sink, FaultySink) and flow.sink.forwarded > flow.moved:
                moved(flow.sink.forwarded - flow.moved)
        flow.finished = True
        if self._up.finished and self._down.finished:
            self._end(Ending.CLOSED, "both sides sent EOF")

    async def _watch_faults(self, faults: ConnectionFaults) -> None:
        try:
            await faults.watch()
        except FaultAbort as exc:
            self._fault(exc)

    def _fault(self, exc: FaultAbort) -> None:
        self._fault_direction = exc.direction
        ending = Ending(f"fault-{exc.kind.value}")  # every FaultKind has its Ending
        self._end(ending, f"{exc.kind.value} ({exc.direction}): {exc.detail}")

    async def _close(self) -> None:
        ending = self._ending
        if ending is Ending.CLOSED:
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self.client.aclose()
                await self.target.aclose()
                return  # both closed: forcing them again would cost 4 scheduler passes
        elif ending is Ending.CLIENT_RESET:
            await abort(self.target)
        elif ending is Ending.TARGET_RESET:
            await abort(self.client)
        elif ending is Ending.RESET_PEER:
            await abort(self.client)
            await abort(self.target)
        elif ending is Ending.LIMIT_DATA:
            # The receiver gets exactly the limit and a FIN, queued before any RST that
            # closing a socket with unread data may cause.
            receiver = self.target if self._fault_direction == "up" else self.client
            with trio.move_on_after(CLOSE_TIMEOUT), suppress(*STREAM_ERRORS):
                await receiver.send_eof()
        await trio.aclose_forcefully(self.client)
        await trio.aclose_forcefully(self.target)


async def relay(
    client: trio.abc.HalfCloseableStream,
    target: trio.abc.HalfCloseableStream,
    *,
    buffer: int = DEFAULT_BUFFER,
    idle_timeout: float | None = None,
    faults: ConnectionFaults | None = None,
    meter: RelayMeter | None = None,
    splice: bool = True,
) -> RelayResult:
    """Relay ``client`` ↔ ``target`` (see :class:`RelayConnection`); closes both."""
    connection = RelayConnection(
        client, target, buffer=buffer, idle_timeout=idle_timeout, faults=faults, meter=meter,
        splice=splice,
    )  # fmt: skip
    return await connection.run()


__all__ = [
    "DEFAULT_BUFFER",
    "ConnectionStatistics",
    "Ending",
    "RelayConnection",
    "RelayMeter",
    "RelayResult",
    "RelayStatistics",
    "abort",
    "relay",
    "set_reset_on_close",
]

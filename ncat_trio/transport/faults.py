"""Fault injection for the relay: toxiproxy's toxics as a wrapper on each direction's sink.

A :class:`FaultPlan` is the relay's live set of faults.  Every connection takes a
:class:`ConnectionFaults` view of it, which decides once per fault and connection
whether the fault applies (``toxicity`` is a probability, drawn from a seedable RNG,
as toxiproxy does per link), and wraps each direction's sink in a :class:`FaultySink`.
The plan can be changed while connections are live: a sink looks at the plan on every
chunk, and a per-connection watcher task wakes on every change.

Faults act on whole chunks as the pump hands them over, so a sink holds at most the one
chunk the pump gave it: the relay's per-direction bound stays true under every fault.
A consequence worth knowing: latency delays each chunk before it is forwarded and the
pump reads the next one only after that, so on a bulk stream latency also caps the
throughput at ``buffer / delay`` (a request/response exchange sees exactly the delay).

Unlike toxiproxy, half-close stays correct under every fault: an EOF is forwarded only
after all the data before it, through the same faults (latency and slow-close delay it,
a stall holds it), and no fault turns a FIN into a full close.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import trio

from ..errors import UsageError
from ..parse import parse_duration, parse_size

Direction = Literal["up", "down"]
Scope = Literal["up", "down", "both"]
DIRECTIONS: tuple[Direction, Direction] = ("up", "down")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Common fields: which direction (``up`` client→target, ``down`` target→client or
    ``both``) and the probability that a given connection gets this fault."""

    direction: Scope = "both"
    toxicity: float = 1.0
    #: Fields in seconds (finite, >= 0, checked here) and their names in errors.
    _SECONDS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __post_init__(self) -> None:
        if self.direction not in ("up", "down", "both"):
            raise UsageError(f"fault direction {self.direction!r}", "must be up, down or both")
        if not 0.0 <= self.toxicity <= 1.0:
            raise UsageError(f"toxicity {self.toxicity!r}", "must be between 0 and 1")
        for field, what in self._SECONDS:
            _non_negative(getattr(self, field), what)

    def applies_to(self, direction: Direction) -> bool:
        return self.direction in ("both", direction)


def _non_negative(value: float, what: str) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise UsageError(f"{what} {value!r}", "must be a finite number >= 0")


@dataclass(frozen=True)
class Latency(Fault):
    """Delay every chunk (and the EOF) by ``delay`` ± ``jitter`` seconds (uniform)."""

    delay: float
    jitter: float = 0.0
    _SECONDS = (("delay", "latency"), ("jitter", "jitter"))


@dataclass(frozen=True)
class Bandwidth(Fault):
    """Forward at most ``rate`` bytes per second."""

    rate: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rate < 1:
            raise UsageError(f"bandwidth {self.rate!r}", "must be at least 1 byte/s")


@dataclass(frozen=True)
class Slicer(Fault):
    """Cut every chunk into segments of ``size`` ± ``variation`` bytes sent ``delay`` s apart:
    the "TCP has no message boundaries" test for readers that assume one read = one message."""

    size: int
    variation: int = 0
    delay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size < 1 or not 0 <= self.variation < self.size:
            raise UsageError(
                f"slicer {self.size}/{self.variation}", "need size >= 1, 0 <= variation < size"
            )
        _non_negative(self.delay, "slicer delay")


@dataclass(frozen=True)
class LimitData(Fault):
    """Forward exactly ``limit`` bytes in this direction, then close the connection
    (the sink gets those bytes and a FIN)."""

    limit: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.limit < 0:
            raise UsageError(f"limit-data {self.limit!r}", "must be >= 0")


@dataclass(frozen=True)
class ResetPeer(Fault):
    """Reset (RST, via ``SO_LINGER`` 0 and close) this direction's receiver: ``after``
    seconds after the fault takes effect, or, if ``after_bytes`` is set, once that many
    bytes have been forwarded.  The other side is reset too (the relay propagates resets).

    With both, ``after`` is a wait between reaching ``after_bytes`` and the reset, the
    bytes past the mark dropped: ``ResetPeer(after_bytes=0, after=t)`` is toxiproxy's
    ``reset_peer`` (the first chunk that arrives is dropped, the reset follows ``t`` s
    later)."""

    after: float = 0.0
    after_bytes: int | None = None
    _SECONDS = (("after", "reset-peer delay"),)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.after_bytes is not None and self.after_bytes < 0:
            raise UsageError(f"reset-peer bytes {self.after_bytes!r}", "must be >= 0")


@dataclass(frozen=True)
class Stall(Fault):
    """toxiproxy's *timeout*: stop forwarding (nothing is read, nothing is lost) and hold
    the connection; after ``duration`` seconds close it, or with 0 hold until removed,
    after which forwarding resumes where it stopped."""

    duration: float = 0.0
    _SECONDS = (("duration", "stall duration"),)


@dataclass(frozen=True)
class SlowClose(Fault):
    """Delay the forwarded FIN by ``delay`` seconds."""

    delay: float
    _SECONDS = (("delay", "slow-close delay"),)


AnyFault = Latency | Bandwidth | Slicer | LimitData | ResetPeer | Stall | SlowClose


class FaultKind(enum.Enum):
    """Why a fault ended a connection."""

    LIMIT_DATA = "limit-data"
    RESET_PEER = "reset-peer"
    STALL = "stall"


class FaultAbort(Exception):
    """Raised inside a relay connection when a fault ends it; the relay closes both sides
    as ``kind`` says (never escapes the relay)."""

    def __init__(self, kind: FaultKind, direction: Direction, detail: str) -> None:
        super().__init__(kind, direction, detail)
        self.kind = kind
        self.direction = direction
        self.detail = detail


class FaultPlan:
    """The live set of faults for a relay; change it at any time from the same Trio run."""

    def __init__(self, faults: Iterable[AnyFault] = (), *, seed: int | None = None) -> None:
        self._faults: tuple[AnyFault, ...] = tuple(faults)
        self._rng = random.Random(seed)
        self._changed = trio.Event()

    @property
    def faults(self) -> tuple[AnyFault, ...]:
        return self._faults

    def set(self, *faults: AnyFault) -> None:
        """Replace every fault (no arguments: remove all)."""
        self._faults = tuple(faults)
        self._announce()

    def add(self, fault: AnyFault) -> None:
        self._faults = (*self._faults, fault)
        self._announce()

    def remove(self, fault: AnyFault) -> None:
        """Remove ``fault`` (every equal one); unknown faults are ignored."""
        self._faults = tuple(f for f in self._faults if f != fault)
        self._announce()

    def clear(self) -> None:
        self.set()

    def connection(self) -> ConnectionFaults:
        """A new connection's view: its own RNG, seeded from the plan's (reproducible
        for a given seed and connection order)."""
        return ConnectionFaults(self, random.Random(self._rng.getrandbits(64)))

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def _announce(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()


class ConnectionFaults:
    """One connection's view of a :class:`FaultPlan`: which faults apply, since when."""

    def __init__(self, plan: FaultPlan, rng: random.Random) -> None:
        self.plan = plan
        self.rng = rng
        self._chosen: dict[AnyFault, bool] = {}
        self._since: dict[AnyFault, float] = {}

    def _applies(self, fault: AnyFault) -> bool:
        chosen = self._chosen.get(fault)
        if chosen is None:
            chosen = fault.toxicity >= 1.0 or self.rng.random() < fault.toxicity
            self._chosen[fault] = chosen
            self._since[fault] = trio.current_time()
        return chosen

    def active(self, direction: Direction) -> list[AnyFault]:
        """The faults acting on ``direction`` of this connection right now."""
        return [f for f in self.plan.faults if f.applies_to(direction) and self._applies(f)]

    def since(self, fault: AnyFault) -> float:
        """When ``fault`` first took effect on this connection (Trio clock)."""
        return self._since.get(fault, trio.current_time())

    def wrap(self, direction: Direction, sink: trio.abc.HalfCloseableStream) -> FaultySink:
        return FaultySink(sink, self, direction)

    async def watch(self) -> None:
        """Run for the connection's life; raise :class:`FaultAbort` when a timed fault
        fires (reset-peer after a delay, a stall that reached its duration)."""
        while True:
            changed = self.plan.wait_changed
            deadline = math.inf
            due: FaultAbort | None = None
            for direction in DIRECTIONS:
                for fault in self.active(direction):
                    if isinstance(fault, ResetPeer) and fault.after_bytes is None:
                        at = self.since(fault) + fault.after
                        kind, detail = FaultKind.RESET_PEER, f"after {fault.after:g} s"
                    elif isinstance(fault, Stall) and fault.duration > 0:
                        at = self.since(fault) + fault.duration
                        kind, detail = FaultKind.STALL, f"stalled for {fault.duration:g} s"
                    else:
                        continue
                    if at < deadline:
                        deadline, due = at, FaultAbort(kind, direction, detail)
            with trio.move_on_at(deadline):
                await changed()
                continue
            assert due is not None
            raise due


class FaultySink(trio.abc.SendStream):
    """The send half of one relay direction with that direction's faults applied.

    Holds at most the chunk it was given; ``send_eof`` forwards the FIN after the data
    (delayed by latency and slow-close, held by a stall).
    """

    def __init__(
        self, inner: trio.abc.HalfCloseableStream, faults: ConnectionFaults, direction: Direction
    ) -> None:
        self.inner = inner
        self.faults = faults
        self.direction = direction
        self.forwarded = 0
        self._free_at = -math.inf  # bandwidth pacing: when the "link" is next free

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._wait_unstalled()
        active = self.faults.active(self.direction)
        cut: tuple[int, FaultKind, str, float] | None = None
        for fault in active:
            if isinstance(fault, LimitData):
                point = (
                    fault.limit, FaultKind.LIMIT_DATA, f"closed after {fault.limit} bytes", 0.0,
                )  # fmt: skip
            elif isinstance(fault, ResetPeer) and fault.after_bytes is not None:
                point = (
                    fault.after_bytes,
                    FaultKind.RESET_PEER,
                    f"after {fault.after_bytes} bytes",
                    fault.after,
                )
            else:
                continue
            if cut is None or point[0] < cut[0]:
                cut = point
        if cut is not None and self.forwarded + len(data) >= cut[0]:
            head = bytes(data[: max(0, cut[0] - self.forwarded)])
            if head:
                await self._deliver(head, active)
            if cut[3] > 0:  # reset-peer's wait after the mark (toxiproxy's timeout)
                await trio.sleep(cut[3])
            raise FaultAbort(cut[1], self.direction, cut[2])
        await self._deliver(data, active)

    async def send_eof(self) -> None:
        await self._wait_unstalled()
        active = self.faults.active(self.direction)
        await self._sleep_latency(active)
        for fault in active:
            if isinstance(fault, SlowClose):
                await trio.sleep(fault.delay)
        await self.inner.send_eof()

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _wait_unstalled(self) -> None:
        while any(isinstance(f, Stall) for f in self.faults.active(self.direction)):
            await self.faults.plan.wait_changed()

    async def _sleep_latency(self, active: list[AnyFault]) -> None:
        delay = 0.0
        for fault in active:
            if isinstance(fault, Latency):
                delay += fault.delay
                if fault.jitter:
                    delay += self.faults.rng.uniform(-fault.jitter, fault.jitter)
        if delay > 0:
            await trio.sleep(delay)

    async def _deliver(self, data: bytes | bytearray | memoryview, active: list[AnyFault]) -> None:
        await self._sleep_latency(active)
        slicer = next((f for f in active if isinstance(f, Slicer)), None)
        rates = [f.rate for f in active if isinstance(f, Bandwidth)]
        rate = min(rates) if rates else None
        view = memoryview(data)
        if slicer is None:
            await self._paced(view, rate)
            return
        offset = 0
        while offset < len(view):
            if offset and slicer.delay:
                await trio.sleep(slicer.delay)
            size = slicer.size
            if slicer.variation:
                size += self.faults.rng.randint(-slicer.variation, slicer.variation)
            await self._paced(view[offset : offset + size], rate)
            offset += size

    async def _paced(self, view: memoryview, rate: int | None) -> None:
        if rate is None:
            await self.inner.send_all(view)
            self.forwarded += len(view)
            return
        # Pieces of 1/20 s worth keep the rate smooth without a task per byte.
        piece = max(1, rate // 20)
        for offset in range(0, len(view), piece):
            part = view[offset : offset + piece]
            start = max(trio.current_time(), self._free_at)
            await trio.sleep_until(start)
            await self.inner.send_all(part)
            self.forwarded += len(part)
            self._free_at = start + len(part) / rate


# ---- command-line spellings -------------------------------------------------------

FAULT_FLAGS = {
    "latency": "[DIR:]DELAY[/JITTER]",
    "bandwidth": "[DIR:]BYTES_PER_SEC",
    "slicer": "[DIR:]SIZE[/VARIATION[/DELAY]]",
    "limit-data": "[DIR:]BYTES",
    "reset-peer": "[DIR:]SECS  or  [DIR:]BYTESB (e.g. 64KB)",
    "stall": "[DIR:]SECS (0 = until removed)",
    "slow-close": "[DIR:]SECS",
}


#: Each flag's fault and the parsers of its ``/``-separated fields, in the order of the
#: fault's own fields (one left out keeps its default), with their names in errors.
_FIELDS: dict[str, tuple[Callable[..., AnyFault], tuple[tuple[Callable[..., float], str], ...]]] = {
    "latency": (Latency, ((parse_duration, ""), (parse_duration, " jitter"))),
    "bandwidth": (Bandwidth, ((parse_size, ""),)),
    "slicer": (Slicer, ((parse_size, ""), (parse_size, " variation"), (parse_duration, " delay"))),
    "limit-data": (LimitData, ((parse_size, ""),)),
    "stall": (Stall, ((parse_duration, ""),)),
    "slow-close": (SlowClose, ((parse_duration, ""),)),
}


def parse_fault(kind: str, text: str, *, toxicity: float = 1.0) -> AnyFault:
    """Parse one fault flag's value, e.g. ``parse_fault("latency", "down:100ms/20ms")``.

    ``DIR`` is ``up``, ``down`` or ``both`` (the default).  Raises :class:`UsageError`.
    """
    direction = "both"
    head, sep, rest = text.partition(":")
    if sep and head in ("up", "down", "both"):
        direction = head
        text = rest
    if kind not in FAULT_FLAGS:
        raise UsageError(f"unknown fault {kind!r}", f"one of {', '.join(FAULT_FLAGS)}")
    parts = text.split("/")
    flag = f"--{kind}"
    common: dict[str, Any] = {"direction": direction, "toxicity": toxicity}

    def need(count: int) -> None:
        if not 1 <= len(parts) <= count or not all(p.strip() for p in parts):
            raise UsageError(f"invalid {flag} {text!r}", f"expected {FAULT_FLAGS[kind]}")

    if kind == "reset-peer":
        need(1)
        value = parts[0].strip()
        if value.upper().endswith("B"):
            return ResetPeer(after_bytes=parse_size(value, what=flag), **common)
        return ResetPeer(after=parse_duration(value, what=flag), **common)
    make, fields = _FIELDS[kind]
    need(len(fields))
    values = [
        parse(part, what=flag + name) for part, (parse, name) in zip(parts, fields, strict=False)
    ]
    return make(*values, **common)


__all__ = [
    "AnyFault",
    "Bandwidth",
    "ConnectionFaults",
    "Direction",
    "Fault",
    "FaultAbort",
    "FaultKind",
    "FaultPlan",
    "FaultySink",
    "Latency",
    "LimitData",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Stall",
    "parse_fault",
]

"""The roundtrip clock protocol (muduo's ``examples/roundtrip``), sans-I/O, and what the
two clock protocols share: samples, the table of probes in flight, and the sample filter.

A frame is 16 bytes, two little-endian int64 in microseconds since the Unix epoch: the
client's send time, then 0 in a request or the server's receive time in the reply
(protocols.md, "roundtrip").  For a reply received at ``back``::

    rtt    = back - send
    offset = server - (send + back) / 2        (> 0: the server's clock is ahead)

Time is always a parameter (aioquic style): every method takes ``now_ns``, the caller's
wall clock in nanoseconds since the epoch, so tests step time by hand.  Deadlines are the
caller's business, on a monotonic clock: a wall clock can be stepped (by NTP, of all
things) and must never decide when a probe has timed out.

The filter follows NTP's clock filter (RFC 5905 §10): a sample's error is bounded by half
its round trip, so the sample with the smallest round trip is the best estimate.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import LocalProtocolError, RemoteProtocolError
from .receive_buffer import CLOSED as CLOSED
from .receive_buffer import NEED_DATA as NEED_DATA
from .receive_buffer import ReceiveBuffer, Sentinel

FRAME_SIZE = 16
_FRAME = struct.Struct("<qq")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class RoundtripFrame:
    """One 16-byte frame: ``server_us`` is 0 in a request."""

    sent_us: int  # the client's clock when it sent the probe
    server_us: int = 0  # the server's clock when the probe arrived


def encode_frame(frame: RoundtripFrame) -> bytes:
    """The 16 wire bytes of ``frame``."""
    for value in (frame.sent_us, frame.server_us):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise LocalProtocolError("roundtrip frame", f"{value} does not fit in an int64")
    return _FRAME.pack(frame.sent_us, frame.server_us)


def decode_frame(data: bytes) -> RoundtripFrame:
    """A frame from exactly 16 bytes; any other size is the peer's fault."""
    if len(data) != FRAME_SIZE:
        raise RemoteProtocolError(
            "roundtrip frame", f"expected {FRAME_SIZE} bytes, got {len(data)}"
        )
    sent_us, server_us = _FRAME.unpack(data)
    return RoundtripFrame(sent_us, server_us)


def answer_datagram(data: bytes, received_us: int) -> bytes:
    """Server: the reply to one request datagram, stamped with its arrival time.

    Bytes 0-7 are echoed untouched, bytes 8-15 become ``received_us``.  A datagram that is
    not exactly 16 bytes raises :class:`RemoteProtocolError` (drop it; the original
    truncated longer ones and answered garbage).
    """
    frame = decode_frame(data)
    return encode_frame(RoundtripFrame(frame.sent_us, received_us))


class FrameBuffer:
    """Bytes of a roundtrip TCP stream in, whole frames out (h11 style).

    ``receive_data(b"")`` means EOF.  A stream that ends inside a frame is a
    :class:`RemoteProtocolError`; one that ends on a frame boundary yields ``CLOSED``.
    """

    def __init__(self) -> None:
        self._buffer = ReceiveBuffer("roundtrip stream")

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray) -> None:
        self._buffer.feed(data)

    def next_event(self) -> RoundtripFrame | Literal[Sentinel.NEED_DATA, Sentinel.CLOSED]:
        if len(self._buffer) >= FRAME_SIZE:
            return RoundtripFrame(*self._buffer.unpack(_FRAME))
        if not self._buffer.eof:
            return NEED_DATA
        if self._buffer:
            raise RemoteProtocolError(
                "roundtrip stream", f"closed in mid-frame ({len(self._buffer)} bytes pending)"
            )
        return CLOSED


# --------------------------------------------------------------------------------------
# What both clock protocols share.


@dataclass(frozen=True)
class ClockSample:
    """One answered probe.  ``offset_ns > 0``: the server's clock is ahead of ours."""

    probe: int  # 0-based number of the probe this answers
    rtt_ns: int  # round trip (NTP: the delay, i.e. without the server's hold time)
    offset_ns: int
    stratum: int | None = None  # NTP only


@dataclass(frozen=True)
class DiscardedReply:
    """A well-formed reply that answers no waiting probe: it is dropped, never paired."""

    probe: int  # the probe it answers
    reason: str  # "late" (after its timeout) or "duplicate" (already answered)


@dataclass(frozen=True)
class Probe:
    """A request to send: its number and its bytes."""

    number: int
    data: bytes


class _State(enum.Enum):
    WAITING = "waiting"
    ANSWERED = "answered"
    EXPIRED = "expired"


@dataclass
class _Entry:
    probe: int
    sent_ns: int
    state: _State = _State.WAITING


@dataclass(frozen=True)
class InFlight:
    """A probe claimed by a reply: its number and our exact send time."""

    probe: int
    sent_ns: int


class ProbeTable:
    """Probes in flight, keyed by the token the server echoes back.

    The token is the roundtrip send time in µs or the NTP transmit timestamp (T1).  A
    reply pairs with the probe whose token it echoes, once: a reply to a probe that timed
    out (late) or was already answered (duplicate) is discarded, never paired with a newer
    probe.  Finished entries are forgotten after ``memory`` newer ones have finished: a
    reply older than that counts as unknown (rejected) rather than late.
    """

    def __init__(self, memory: int = 4096) -> None:
        self._entries: dict[int, _Entry] = {}
        self._tokens: dict[int, int] = {}  # probe number -> token
        self._finished: deque[int] = deque()  # tokens no longer waiting, oldest first
        self._memory = memory
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many probes still wait for their reply."""
        return self._waiting

    def unique_token(self, token: int) -> int:
        """``token``, bumped past any token in the table (two probes in one µs)."""
        while token in self._entries:
            token += 1
        return token

    def add(self, token: int, probe: int, sent_ns: int) -> None:
        if token in self._entries:
            raise LocalProtocolError("probe table", f"token {token} is already in flight")
        self._entries[token] = _Entry(probe, sent_ns)
        self._tokens[probe] = token
        self._waiting += 1

    def claim(self, token: int) -> InFlight | DiscardedReply | None:
        """The waiting probe ``token`` answers (now answered), a discard, or None (unknown)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry.state is _State.WAITING:
            self._finish(token, entry, _State.ANSWERED)
            return InFlight(entry.probe, entry.sent_ns)
        reason = "late" if entry.state is _State.EXPIRED else "duplicate"
        return DiscardedReply(entry.probe, reason)

    def give_up(self, probe: int) -> bool:
        """The probe's timeout passed: a reply from now on is late.  True if it was waiting."""
        entry = self._lookup(probe)
        if entry is None or entry.state is not _State.WAITING:
            return False
        self._finish(self._tokens[probe], entry, _State.EXPIRED)
        return True

    def set_sent_time(self, probe: int, sent_ns: int) -> None:
        """Correct a waiting probe's send time (the token on the wire stays)."""
        entry = self._lookup(probe)
        if entry is not None and entry.state is _State.WAITING:
            entry.sent_ns = sent_ns

    def _lookup(self, probe: int) -> _Entry | None:
        token = self._tokens.get(probe)
        return None if token is None else self._entries.get(token)

    def _finish(self, token: int, entry: _Entry, state: _State) -> None:
        entry.state = state
        self._waiting -= 1
        self._finished.append(token)
        while len(self._finished) > self._memory:
            old = self._entries.pop(self._finished.popleft())
            self._tokens.pop(old.probe, None)


@dataclass(frozen=True)
class ClockReport:
    """The filtered result of a probe run (NTP's clock filter, simplified).

    ``best`` is the sample with the smallest round trip (the first one on a tie): its
    offset is the estimate, good to within half its round trip.  ``spread`` is
    max - min of all offsets: how much the samples disagree.
    """

    probes: int  # requests sent
    samples: tuple[ClockSample, ...]  # valid replies, in arrival order
    late: int = 0  # replies after their probe's timeout (discarded)
    duplicates: int = 0  # second replies to an answered probe (discarded)
    rejected: int = 0  # replies that failed validation (malformed, spoofed, KoD, ...)
    best: ClockSample | None = None
    median_offset_ns: int | None = None
    spread_ns: int | None = None

    @property
    def replies(self) -> int:
        return len(self.samples)

    @property
    def lost(self) -> int:
        """Probes without a valid reply in time."""
        return self.probes - len(self.samples)


def summarize(
    samples: Sequence[ClockSample],
    *,
    probes: int,
    late: int = 0,
    duplicates: int = 0,
    rejected: int = 0,
) -> ClockReport:
    """Filter samples: best = minimum round trip, median offset, spread, loss."""
    kept = tuple(samples)
    if not kept:
        return ClockReport(probes, kept, late, duplicates, rejected)
    best = min(kept, key=lambda s: s.rtt_ns)  # min() keeps the first of equal keys
    offsets = sorted(s.offset_ns for s in kept)
    middle = len(offsets) // 2
    even = len(offsets) % 2 == 0
    median = (offsets[middle - 1] + offsets[middle]) // 2 if even else offsets[middle]
    return ClockReport(
        probes, kept, late, duplicates, rejected, best, median, offsets[-1] - offsets[0]
    )


class ClockClient:
    """The client side of a clock protocol: probes out, samples in (sans-I/O).

    Subclasses supply the wire format: :meth:`_token_for` (the value the server echoes,
    from our send time), :meth:`_request` (the bytes for a token) and :meth:`_measure`
    (validate a reply and turn it into a sample).
    """

    proto = "clock"

    def __init__(self) -> None:
        self._table = ProbeTable()
        self._samples: list[ClockSample] = []
        self._sent = 0
        self._late = 0
        self._duplicates = 0
        self._rejected = 0

    @property
    def waiting(self) -> int:
        return self._table.waiting

    def send_probe(self, now_ns: int) -> Probe:
        """The next probe, sent at ``now_ns`` (wall clock, ns since the epoch)."""
        token = self._table.unique_token(self._token_for(now_ns))
        number = self._sent
        self._table.add(token, number, now_ns)
        self._sent += 1
        return Probe(number, self._request(token))

    def mark_sent(self, probe: int, now_ns: int) -> None:
        """The probe leaves at ``now_ns``: read the clock again just before the send call.

        :meth:`send_probe` must read the clock before it can build the request; building
        it takes Python microseconds that would otherwise count as network time.
        """
        self._table.set_sent_time(probe, now_ns)

    def give_up(self, probe: int) -> bool:
        """The probe timed out: its reply, if it ever comes, will be discarded as late."""
        return self._table.give_up(probe)

    def receive_reply(self, data: bytes, now_ns: int) -> ClockSample | DiscardedReply:
        """A reply that arrived at ``now_ns``: a sample, or a discard (late/duplicate).

        Raises :class:`RemoteProtocolError` (counted as rejected) for a reply that is
        malformed, answers nothing we sent, or fails the protocol's checks.
        """
        try:
            token = self._token_of(data)
            claim = self._table.claim(token)
            if claim is None:
                raise RemoteProtocolError(
                    f"{self.proto} reply", "it answers no request of ours (stale or spoofed)"
                )
            if isinstance(claim, DiscardedReply):
                if claim.reason == "late":
                    self._late += 1
                else:
                    self._duplicates += 1
                return claim
            # A reply that fails these checks has used up its probe: the probe counts as
            # lost, and a second reply to it is a duplicate.
            sample = self._measure(data, claim, now_ns)
        except RemoteProtocolError:
            self._rejected += 1
            raise
        self._samples.append(sample)
        return sample

    def report(self) -> ClockReport:
        return summarize(
            self._samples,
            probes=self._sent,
            late=self._late,
            duplicates=self._duplicates,
            rejected=self._rejected,
        )

    # Wire format hooks.
    def _token_for(self, now_ns: int) -> int:
        raise NotImplementedError

    def _request(self, token: int) -> bytes:
        raise NotImplementedError

    def _token_of(self, data: bytes) -> int:
        raise NotImplementedError

    def _measure(self, data: bytes, probe: InFlight, now_ns: int) -> ClockSample:
        raise NotImplementedError


class RoundtripClient(ClockClient):
    """Client side of the roundtrip protocol; the token is the send time in µs.

    The send time on the wire is µs; the offset uses our exact send time in ns, kept in
    the probe table, so two probes in one µs get distinct tokens without losing accuracy.
    """

    proto = "roundtrip"

    def _token_for(self, now_ns: int) -> int:
        return now_ns // 1000

    def _request(self, token: int) -> bytes:
        return encode_frame(RoundtripFrame(token, 0))

    def _token_of(self, data: bytes) -> int:
        return decode_frame(data).sent_us

    def _measure(self, data: bytes, probe: InFlight, now_ns: int) -> ClockSample:
        frame = decode_frame(data)
        if frame.server_us == 0:
            raise RemoteProtocolError(
                "roundtrip reply", "the server time is 0 (an echo server, not a roundtrip server?)"
            )
        return ClockSample(
            probe=probe.probe,
            rtt_ns=now_ns - probe.sent_ns,
            offset_ns=frame.server_us * 1000 - (probe.sent_ns + now_ns) // 2,
        )

"""The ttcp throughput protocol (muduo's ``examples/ace/ttcp``), sans-I/O.

Wire format (every integer a signed 32-bit big-endian value; ``docs/protocols.md``)::

    T→R  session  number, length                 8 bytes
    then `number` times:
    T→R  payload  length, data[length]           data[i] = "0123456789ABCDEF"[i % 16]
    R→T  ack      length                         4 bytes, one per payload, in order
    then both sides close; there is no trailer.

Two state machines speak it: :class:`Transmitter` and :class:`Receiver`.  Both follow
the h11 shape: ``receive_data(bytes)`` (``b""`` is EOF), ``next_event()`` → an event or
:data:`NEED_DATA`, ``send(event) -> bytes``.  Faults of the peer raise
:class:`RemoteProtocolError` (and leave the machine in ``ERROR``); asking to send
something the protocol forbids raises :class:`LocalProtocolError`.

Speed matters here (the mode is a benchmark), so payload data is never copied or
buffered: received chunks sit in a queue and the receiver only *counts* data bytes
as it walks past them.  Checking the data against the pattern is optional
(``verify=True``) and costs one ``memcmp`` per chunk.  The receiver never allocates
anything proportional to the session's ``length``, and it still refuses a length
above ``max_length`` so that a bogus session fails at once instead of after gigabytes.
The transmitter builds its payload message once and hands out the same ``bytes``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import LocalProtocolError, RemoteProtocolError
from .receive_buffer import NEED_DATA, NeedData, ReceiveBuffer

PATTERN = b"0123456789ABCDEF"
SESSION_SIZE = 8
HEADER_SIZE = 4  # the length field in front of each payload
ACK_SIZE = 4
INT32_MAX = 2**31 - 1
#: Largest payload length: 4 + length must still fit in an int32 (as in the C peer).
LENGTH_LIMIT = INT32_MAX - HEADER_SIZE
#: Default bound on the session length a receiver accepts (``--max-length``).
DEFAULT_MAX_LENGTH = 64 * 1024 * 1024
#: The original tool's conventions, which users know: port 5001, 64 KiB x 8192 (512 MiB).
DEFAULT_PORT = 5001
DEFAULT_LENGTH = 65536
DEFAULT_NUMBER = 8192

_SESSION = struct.Struct(">ii")
_INT32 = struct.Struct(">i")
# Enough pattern to compare up to 64 KiB in one memcmp, starting at any phase.
_PATTERN_RUN = memoryview(PATTERN * (65536 // len(PATTERN) + 1))
_PATTERN_STEP = len(_PATTERN_RUN) - len(PATTERN)


@dataclass(frozen=True)
class Session:
    """T→R: how many payloads follow and how long each is."""

    number: int
    length: int


@dataclass(frozen=True)
class Payload:
    """T→R: one payload (its length field plus ``length`` pattern bytes)."""

    length: int


@dataclass(frozen=True)
class Ack:
    """R→T: one payload arrived whole; it carries the payload's length."""

    length: int


@dataclass(frozen=True)
class ConnectionClosed:
    """The peer's EOF, after a complete session."""


Event = Session | Payload | Ack | ConnectionClosed


class State(enum.Enum):
    """Where one side of a ttcp connection is."""

    # Members are singletons compared by identity; Enum's own __hash__ is Python code,
    # and the state table is consulted for every payload.
    __hash__ = object.__hash__

    IDLE = "idle"  # transmitter: nothing sent yet
    AWAIT_SESSION = "await session"  # receiver: waiting for the 8-byte session
    AWAIT_HEADER = "await header"  # receiver: waiting for a payload's length field
    IN_DATA = "in data"  # receiver: inside a payload's data
    SENDING = "sending"  # transmitter: payloads to send or acks to receive
    DONE = "done"  # every payload (receiver) or every ack (transmitter) is through
    CLOSED = "closed"  # the peer's EOF arrived after DONE
    ERROR = "error"  # a protocol error was raised; the machine is dead


#: The state tables: every move either machine may make (``goto`` checks each).
TRANSMITTER_TRANSITIONS: dict[State, frozenset[State]] = {
    State.IDLE: frozenset({State.SENDING, State.DONE, State.ERROR}),
    State.SENDING: frozenset({State.DONE, State.ERROR}),
    State.DONE: frozenset({State.CLOSED, State.ERROR}),
    State.CLOSED: frozenset(),
    State.ERROR: frozenset(),
}
RECEIVER_TRANSITIONS: dict[State, frozenset[State]] = {
    State.AWAIT_SESSION: frozenset({State.AWAIT_HEADER, State.DONE, State.ERROR}),
    # AWAIT_HEADER → AWAIT_HEADER: a zero-length payload (-l 0) is complete with its header.
    State.AWAIT_HEADER: frozenset({State.IN_DATA, State.AWAIT_HEADER, State.DONE, State.ERROR}),
    State.IN_DATA: frozenset({State.AWAIT_HEADER, State.DONE, State.ERROR}),
    State.DONE: frozenset({State.CLOSED, State.ERROR}),
    State.CLOSED: frozenset(),
    State.ERROR: frozenset(),
}


@dataclass(frozen=True)
class TransmitterStatistics:
    state: State
    number: int
    length: int
    payloads_sent: int
    acks_received: int

    @property
    def in_flight(self) -> int:
        """Payloads sent whose ack has not arrived yet."""
        return self.payloads_sent - self.acks_received


@dataclass(frozen=True)
class ReceiverStatistics:
    state: State
    number: int
    length: int
    payloads_received: int
    acks_sent: int
    data_bytes: int  # payload data bytes seen, including a partial payload


class _Machine:
    """What both sides share: the byte queue, EOF, and the checked state moves."""

    _table: dict[State, frozenset[State]]

    def __init__(self, initial: State) -> None:
        self._state = initial
        self._incoming = ReceiveBuffer("ttcp receive_data", borrow=True)
        self._number = 0  # the session's
        self._length = 0

    @property
    def state(self) -> State:
        return self._state

    def goto(self, new: State) -> None:
        if new not in self._table[self._state]:  # a bug in this module, not the peer
            raise AssertionError(f"ttcp: no transition {self._state.value} → {new.value}")
        self._state = new

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side.

        A ``bytearray`` or ``memoryview`` is not copied: the caller may reuse its
        buffer once ``next_event()`` has returned :data:`NEED_DATA` (by then only a
        partial header can be left, and it has been copied).
        """
        self._incoming.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next complete event, or :data:`NEED_DATA`; raises RemoteProtocolError."""
        if self._state is State.ERROR:
            raise RemoteProtocolError("ttcp", "the connection already failed")
        try:
            event = self._parse()
            if event is NEED_DATA:
                self._incoming.detach()
            return event
        except RemoteProtocolError:
            self._state = State.ERROR
            raise

    def _parse(self) -> Event | NeedData:
        raise NotImplementedError

    def _drain(self, data: bytes | bytearray | memoryview, expected: Event) -> int:
        """The general path of the bulk methods: feed ``data`` (``b""``: EOF) and count
        ``expected`` events up to NEED_DATA or ConnectionClosed."""
        self.receive_data(data)
        count = 0
        while self.next_event() is expected:
            count += 1
        return count

    def _at_end(self, what: str) -> Event | NeedData:
        """DONE: only EOF may follow.  Anything else is a peer fault."""
        if self._incoming:
            raise RemoteProtocolError("ttcp", f"{len(self._incoming)} unexpected bytes {what}")
        if self._incoming.eof:
            if self._state is State.DONE:
                self.goto(State.CLOSED)
            return ConnectionClosed()
        return NEED_DATA


class Transmitter(_Machine):
    """The transmitting side: sends the session and payloads, checks the acks.

    ``send(Session(n, l))`` once, then ``send(Payload(l))`` up to ``n`` times (any
    number may be in flight: the wire format has no window, acks simply follow in
    order).  ``next_event()`` yields one :class:`Ack` per payload, then
    :class:`ConnectionClosed` if the receiver's EOF is fed in.
    """

    _table = TRANSMITTER_TRANSITIONS

    def __init__(self) -> None:
        super().__init__(State.IDLE)
        self._sent = 0
        self._acked = 0
        self._message = b""
        self._ack_event = Ack(0)  # events are immutable: one instance per session
        self._acks = b""  # receive_acks: a run of expected acks to compare with
        self._run, self._run_count = b"", 0  # payloads(): the last run of payloads built

    def statistics(self) -> TransmitterStatistics:
        return TransmitterStatistics(
            self._state, self._number, self._length, self._sent, self._acked
        )

    def send(self, event: Session | Payload) -> bytes:
        """The bytes for ``event``.  Payload bytes are built once and shared."""
        if isinstance(event, Session):
            if self._state is not State.IDLE:
                raise LocalProtocolError("ttcp session", "already sent")
            if not 0 <= event.number <= INT32_MAX:
                raise LocalProtocolError("ttcp session", f"number {event.number} out of range")
            if not 0 <= event.length <= LENGTH_LIMIT:
                raise LocalProtocolError("ttcp session", f"length {event.length} out of range")
            self._number, self._length = event.number, event.length
            self._ack_event = Ack(event.length)
            self.goto(State.SENDING if event.number else State.DONE)
            return _SESSION.pack(event.number, event.length)
        if isinstance(event, Payload):
            if self._state is State.IDLE:
                raise LocalProtocolError("ttcp payload", "send the session first")
            if event.length != self._length:
                raise LocalProtocolError(
                    "ttcp payload",
                    f"length {event.length} differs from the session's {self._length}",
                )
            if self._sent >= self._number:
                raise LocalProtocolError("ttcp payload", f"all {self._number} payloads were sent")
            return self.payloads(1)
        raise LocalProtocolError("ttcp transmitter", f"cannot send {type(event).__name__}")

    def payloads(self, count: int) -> bytes:
        """The bytes of the next ``count`` payloads: ``send(Payload(length))`` ``count``
        times, joined.  The last run built is kept: a window sends the same few sizes."""
        if self._state is State.IDLE:
            raise LocalProtocolError("ttcp payload", "send the session first")
        if not 0 < count <= self._number - self._sent:
            raise LocalProtocolError(
                "ttcp payload", f"{count} payloads asked, {self._number - self._sent} left"
            )
        if not self._message:  # built on first use: 4 + length bytes, once
            self._message = payload_message(self._length)
        self._sent += count
        if count == 1:
            return self._message
        if self._run_count != count:
            self._run, self._run_count = self._message * count, count
        return self._run

    def receive_acks(self, data: bytes | bytearray | memoryview) -> int:
        """Feed bytes from the receiver (``b""``: EOF); return how many acks completed.

        The bulk form of ``receive_data(data)`` followed by ``next_event()`` until
        :data:`NEED_DATA` or :class:`ConnectionClosed` (after which ``state`` is
        ``CLOSED``): the same checks and errors, but whole acks that are the only
        thing queued are compared in one step instead of one event each (at small
        lengths the per-payload cost is this module's Python, not the kernel's).
        """
        size = len(data)
        count = size >> 2
        if (
            self._state is State.SENDING
            and not self._incoming.size
            and size
            and not size & 3
            and count <= self._sent - self._acked
            and (
                _INT32.unpack_from(data)[0] == self._length
                if count == 1
                else data == self._ack_run(count)
            )
        ):
            self._acked += count
            if self._acked == self._number:
                self.goto(State.DONE)
            return count
        return self._drain(data, self._ack_event)

    def _ack_run(self, count: int) -> bytes:
        """``count`` acks of this session's length, for one comparison."""
        if len(self._acks) < count * ACK_SIZE:
            self._acks = _INT32.pack(self._length) * max(count, 64)
        return self._acks[: count * ACK_SIZE]

    def _parse(self) -> Event | NeedData:
        if self._state is State.IDLE:
            if self._incoming:
                raise RemoteProtocolError("ttcp", "bytes arrived before the session was sent")
            if self._incoming.eof:
                raise RemoteProtocolError("ttcp", "connection closed before the session was sent")
            return NEED_DATA
        if self._state is State.SENDING:
            index = self._acked + 1
            if self._incoming and self._acked >= self._sent:
                raise RemoteProtocolError(
                    "ttcp", f"ack {index} arrived before payload {index} was sent"
                )
            if len(self._incoming) < ACK_SIZE:
                if self._incoming.eof:
                    got = len(self._incoming)
                    partial = f" (got {got} of {ACK_SIZE} bytes of it)" if got else ""
                    raise RemoteProtocolError(
                        "ttcp",
                        f"connection closed while waiting for ack {index} of {self._number}{partial}",
                    )
                return NEED_DATA
            (value,) = self._incoming.unpack(_INT32)
            if value != self._length:
                raise RemoteProtocolError(
                    "ttcp", f"ack {index} of {self._number} is {value}, expected {self._length}"
                )
            self._acked = index
            if index == self._number:
                self.goto(State.DONE)
            return self._ack_event
        return self._at_end("after the last ack")


class Receiver(_Machine):
    """The receiving side: checks the session and every payload, owes one ack each.

    ``next_event()`` yields :class:`Session`, then one :class:`Payload` per complete
    payload (answer each with ``send(Ack(length))``), then :class:`ConnectionClosed`.
    Payload data is counted, not kept; with ``verify=True`` it is also compared with
    the pattern.  Everything the peer can get wrong is a :class:`RemoteProtocolError`.
    """

    _table = RECEIVER_TRANSITIONS

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH, verify: bool = False) -> None:
        super().__init__(State.AWAIT_SESSION)
        if not 0 <= max_length <= LENGTH_LIMIT:
            raise LocalProtocolError("ttcp receiver", f"max_length {max_length} out of range")
        self._max_length = max_length
        self._verify = verify
        self._received = 0
        self._acked = 0
        self._data_left = 0  # of the payload in progress
        self._data_bytes = 0
        self._position = 0  # --verify: offset in the payload of the next byte checked
        self._ack = b""
        self._payload_event = Payload(0)  # events are immutable: one instance per session

    def statistics(self) -> ReceiverStatistics:
        return ReceiverStatistics(
            self._state,
            self._number,
            self._length,
            self._received,
            self._acked,
            self._data_bytes,
        )

    def send(self, event: Ack) -> bytes:
        """The 4 ack bytes for the oldest payload not yet acked."""
        if not isinstance(event, Ack):
            raise LocalProtocolError("ttcp receiver", f"cannot send {type(event).__name__}")
        if self._acked >= self._received:
            raise LocalProtocolError("ttcp ack", "no payload is waiting for an ack")
        if event.length != self._length:
            raise LocalProtocolError(
                "ttcp ack", f"length {event.length} differs from the session's {self._length}"
            )
        return self.acks(1)

    def receive_payloads(self, data: bytes | bytearray | memoryview) -> int:
        """Feed bytes from the transmitter (``b""``: EOF) once the :class:`Session`
        event is through; return how many payloads completed, each of which owes an
        ack (:meth:`acks`).

        The bulk form of ``receive_data(data)`` followed by ``next_event()`` until
        :data:`NEED_DATA` or :class:`ConnectionClosed` (after which ``state`` is
        ``CLOSED``): the same checks and errors, but whole payloads at the front of
        ``data`` are checked header by header without events or queueing.  The
        buffer rule of :meth:`receive_data` holds: it may be reused on return.
        """
        state = self._state
        if state is State.AWAIT_SESSION:
            raise LocalProtocolError("ttcp receive_payloads", "the session event comes first")
        if state is not State.AWAIT_HEADER or self._incoming.size or self._verify or not data:
            return self._drain(data, self._payload_event)
        length = self._length
        size = HEADER_SIZE + length
        if len(data) == size:  # stop-and-wait: exactly one payload per read
            if _INT32.unpack_from(data)[0] != length:
                return self._drain(data, self._payload_event)  # raises
            self._data_bytes += length
            self._received += 1
            if self._received == self._number:
                self.goto(State.DONE)
            return 1
        end = min(len(data) // size, self._number - self._received) * size
        offset = 0
        while offset < end and _INT32.unpack_from(data, offset)[0] == length:
            offset += size
        count = offset // size
        if count:
            self._received += count
            self._data_bytes += count * length
            if self._received == self._number:
                self.goto(State.DONE)
        if offset == len(data):
            return count
        return count + self._drain(memoryview(data)[offset:], self._payload_event)

    def acks(self, count: int) -> bytes:
        """The bytes of the next ``count`` acks: ``send(Ack(length))`` ``count`` times."""
        if not 0 < count <= self._received - self._acked:
            raise LocalProtocolError(
                "ttcp ack", f"{count} acks asked, {self._received - self._acked} owed"
            )
        self._acked += count
        return self._ack if count == 1 else self._ack * count

    def _parse(self) -> Event | NeedData:
        state = self._state
        if state is State.AWAIT_SESSION:
            if len(self._incoming) < SESSION_SIZE:
                return self._short("the session message", SESSION_SIZE)
            number, length = self._incoming.unpack(_SESSION)
            self._check_session(number, length)
            self._number, self._length = number, length
            self._ack = _INT32.pack(length)
            self._payload_event = Payload(length)
            self.goto(State.AWAIT_HEADER if number else State.DONE)
            return Session(number, length)
        if state is State.AWAIT_HEADER:
            # Fast path, the common case: a whole, well-formed payload in the first chunk.
            size = HEADER_SIZE + self._length
            front = None if self._verify else self._incoming.unpack_front(_INT32, size)
            if front is not None and front[0] == self._length:
                self._incoming.drop(size)
                self._data_bytes += self._length
                return self._payload_done()
            if len(self._incoming) < HEADER_SIZE:
                return self._short(f"the length of payload {self._index}", HEADER_SIZE)
            (length,) = self._incoming.unpack(_INT32)
            if length != self._length:
                raise RemoteProtocolError(
                    "ttcp", f"payload {self._index} has length {length}, expected {self._length}"
                )
            self._data_left = length
            state = State.IN_DATA  # entered for real only if the data is not all here
        if state is State.IN_DATA:
            check = None
            if self._verify:
                self._position = self._length - self._data_left
                check = self._check_pattern
            got = self._incoming.skip(self._data_left, check) if self._data_left else 0
            self._data_left -= got
            self._data_bytes += got
            if self._data_left:
                if self._state is not State.IN_DATA:
                    self.goto(State.IN_DATA)
                if self._incoming.eof:
                    raise RemoteProtocolError(
                        "ttcp",
                        f"connection closed in the data of payload {self._index} "
                        f"(got {self._length - self._data_left} of {self._length} bytes)",
                    )
                return NEED_DATA
            return self._payload_done()
        return self._at_end("after the last payload")

    @property
    def _index(self) -> str:
        return f"{self._received + 1} of {self._number}"

    def _check_session(self, number: int, length: int) -> None:
        if number < 0:
            raise RemoteProtocolError("ttcp", f"session number {number} is negative")
        if length < 0:
            raise RemoteProtocolError("ttcp", f"session length {length} is negative")
        if length > self._max_length:
            raise RemoteProtocolError(
                "ttcp",
                f"session length {length} is above the limit of {self._max_length} (--max-length)",
            )

    def _short(self, what: str, size: int) -> NeedData:
        if not self._incoming.eof:
            return NEED_DATA
        got = len(self._incoming)
        if got == 0 and self._state is State.AWAIT_SESSION:
            raise RemoteProtocolError("ttcp", "connection closed before the session message")
        partial = f" (got {got} of {size} bytes)" if got else ""
        raise RemoteProtocolError("ttcp", f"connection closed before {what}{partial}")

    def _payload_done(self) -> Payload:
        self._received += 1
        self.goto(State.DONE if self._received == self._number else State.AWAIT_HEADER)
        return self._payload_event

    def _check_pattern(self, chunk: bytes | memoryview, start: int, end: int) -> None:
        position = self._position
        self._position += end - start
        if not isinstance(chunk, bytes):  # bytes.startswith is a memcmp; memoryview == is not
            chunk, start, end = bytes(chunk[start:end]), 0, end - start
        while start < end:
            step = min(end - start, _PATTERN_STEP)
            phase = position % len(PATTERN)
            if not chunk.startswith(_PATTERN_RUN[phase : phase + step], start):
                for offset in range(step):
                    if chunk[start + offset] != PATTERN[(position + offset) % len(PATTERN)]:
                        break
                raise RemoteProtocolError(
                    "ttcp",
                    f"payload {self._index}: data byte {position + offset} is "
                    f"{chunk[start + offset]:#04x}, expected "
                    f"{PATTERN[(position + offset) % len(PATTERN)]:#04x} (--verify)",
                )
            start += step
            position += step


def payload_message(length: int) -> bytes:
    """One whole payload message, as the C peer writes it: the length field, then
    ``length`` bytes of "0123456789ABCDEF" repeated, as every ttcp sends."""
    whole, rest = divmod(length, len(PATTERN))
    return _INT32.pack(length) + PATTERN * whole + PATTERN[:rest]


__all__ = [
    "DEFAULT_MAX_LENGTH",
    "LENGTH_LIMIT",
    "NEED_DATA",
    "PATTERN",
    "Ack",
    "ConnectionClosed",
    "Event",
    "Payload",
    "Receiver",
    "ReceiverStatistics",
    "Session",
    "State",
    "Transmitter",
    "TransmitterStatistics",
]

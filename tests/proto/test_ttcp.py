"""The ttcp wire protocol, sans-I/O: captures, splits, validation, garbage.

Every test here is pure: bytes in, events out.  The capture is the one in
``docs/protocols.md`` (``-l 20 -n 2``), byte for byte.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncat_trio.errors import LocalProtocolError, RemoteProtocolError
from ncat_trio.proto import ttcp
from ncat_trio.proto.ttcp import (
    NEED_DATA,
    Ack,
    ConnectionClosed,
    Payload,
    Receiver,
    Session,
    State,
    Transmitter,
)

# docs/protocols.md, "Capture, -l 20 -n 2"
CAPTURE_T_FIRST = bytes.fromhex(
    "00000002 00000014 00000014 30313233343536373839414243444546 30313233".replace(" ", "")
)
CAPTURE_T_SECOND = bytes.fromhex(
    "00000014 30313233343536373839414243444546 30313233".replace(" ", "")
)
CAPTURE_ACK = bytes.fromhex("00000014")


def drain(machine: Receiver | Transmitter) -> list[object]:
    """Every event available now, up to NEED_DATA or ConnectionClosed."""
    events: list[object] = []
    while True:
        event = machine.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def receive_all(receiver: Receiver, chunks: list[bytes], *, eof: bool = True) -> list[object]:
    """Feed chunks (acking each payload at once), then EOF; return every event."""
    events: list[object] = []
    chunks = [chunk for chunk in chunks if chunk]  # b"" would mean EOF
    for chunk in [*chunks, b""] if eof else chunks:
        receiver.receive_data(chunk)
        for event in drain(receiver):
            events.append(event)
            if isinstance(event, Payload):
                receiver.send(Ack(event.length))
    return events


def transmit_stream(number: int, length: int) -> bytes:
    """What a transmitter puts on the wire for a whole session."""
    transmitter = Transmitter()
    out = transmitter.send(Session(number, length))
    for _ in range(number):
        out += transmitter.send(Payload(length))
    return out


# --- the capture, byte for byte ------------------------------------------------------


def test_capture_l20_n2_byte_for_byte() -> None:
    transmitter, receiver = Transmitter(), Receiver()
    first = transmitter.send(Session(2, 20)) + transmitter.send(Payload(20))
    assert first == CAPTURE_T_FIRST
    receiver.receive_data(first)
    assert drain(receiver) == [Session(2, 20), Payload(20)]
    ack = receiver.send(Ack(20))
    assert ack == CAPTURE_ACK
    transmitter.receive_data(ack)
    assert drain(transmitter) == [Ack(20)]

    second = transmitter.send(Payload(20))
    assert second == CAPTURE_T_SECOND
    receiver.receive_data(second)
    assert drain(receiver) == [Payload(20)]
    ack = receiver.send(Ack(20))
    assert ack == CAPTURE_ACK
    transmitter.receive_data(ack)
    assert drain(transmitter) == [Ack(20)]
    assert transmitter.statistics().state is State.DONE
    assert receiver.statistics().state is State.DONE

    # "then EOF both ways (T sent 8 + 2·(4+20) = 56 bytes, R sent 8)"
    assert len(first + second) == 56
    receiver.receive_data(b"")
    transmitter.receive_data(b"")
    assert drain(receiver) == [ConnectionClosed()]
    assert drain(transmitter) == [ConnectionClosed()]
    assert receiver.statistics().state is State.CLOSED
    assert transmitter.statistics().state is State.CLOSED


def test_zero_length_payloads_l0_n3() -> None:
    wire = transmit_stream(3, 0)
    assert wire == bytes.fromhex("00000003 00000000" + " 00000000" * 3)
    receiver = Receiver()
    events = receive_all(receiver, [wire])
    assert events == [Session(3, 0), Payload(0), Payload(0), Payload(0), ConnectionClosed()]
    stats = receiver.statistics()
    assert (stats.payloads_received, stats.acks_sent, stats.data_bytes) == (3, 3, 0)


def test_zero_length_acks_are_zero() -> None:
    receiver = Receiver()
    receiver.receive_data(transmit_stream(1, 0))
    assert drain(receiver) == [Session(1, 0), Payload(0)]
    assert receiver.send(Ack(0)) == b"\0\0\0\0"


def test_number_zero_is_a_session_without_payloads() -> None:
    receiver = Receiver()
    assert receive_all(receiver, [transmit_stream(0, 100)]) == [Session(0, 100), ConnectionClosed()]
    transmitter = Transmitter()
    transmitter.send(Session(0, 100))
    assert transmitter.state is State.DONE


# --- every split point ---------------------------------------------------------------

WHOLE = transmit_stream(3, 20)
EXPECTED = [Session(3, 20), Payload(20), Payload(20), Payload(20), ConnectionClosed()]


@pytest.mark.parametrize("cut", range(len(WHOLE) + 1))
def test_every_split_point_gives_the_same_events(cut: int) -> None:
    assert receive_all(Receiver(), [WHOLE[:cut], WHOLE[cut:]]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    chunks = [WHOLE[i : i + 1] for i in range(len(WHOLE))]
    assert receive_all(Receiver(verify=True), chunks) == EXPECTED


@pytest.mark.parametrize("cut", range(len(CAPTURE_ACK * 3) + 1))
def test_transmitter_acks_split_anywhere(cut: int) -> None:
    transmitter = Transmitter()
    transmitter.send(Session(3, 20))
    for _ in range(3):
        transmitter.send(Payload(20))
    acks = CAPTURE_ACK * 3
    events: list[object] = []
    for chunk in [*(c for c in (acks[:cut], acks[cut:]) if c), b""]:  # b"" is EOF
        transmitter.receive_data(chunk)
        events += drain(transmitter)
    assert events == [Ack(20), Ack(20), Ack(20), ConnectionClosed()]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_chunking_gives_the_same_events(data: st.DataObject) -> None:
    number = data.draw(st.integers(0, 6))
    length = data.draw(st.integers(0, 70))
    wire = transmit_stream(number, length)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    expected = [Session(number, length), *[Payload(length)] * number, ConnectionClosed()]
    assert receive_all(Receiver(verify=True), chunks) == expected


# --- a reused receive buffer -----------------------------------------------------------


def test_a_reused_buffer_is_safe_after_need_data() -> None:
    """A caller may read into one bytearray again once NEED_DATA came back."""
    receiver = Receiver(verify=True)
    buffer = bytearray(len(WHOLE))
    view = memoryview(buffer)
    events: list[object] = []
    for start, end in ((0, 6), (6, 13), (13, 40), (40, len(WHOLE))):  # cuts inside headers
        size = end - start
        buffer[:size] = WHOLE[start:end]
        receiver.receive_data(view[:size])
        for event in drain(receiver):
            events.append(event)
            if isinstance(event, Payload):
                receiver.send(Ack(20))
        buffer[:] = b"\xff" * len(buffer)  # the caller scribbles over its buffer
    receiver.receive_data(b"")
    events += drain(receiver)
    assert events == EXPECTED


# --- what the receiver must refuse -----------------------------------------------------


def session(number: int, length: int) -> bytes:
    return number.to_bytes(4, "big", signed=True) + length.to_bytes(4, "big", signed=True)


def refuse(chunks: list[bytes], match: str, *, receiver: Receiver | None = None) -> None:
    receiver = receiver or Receiver()
    with pytest.raises(RemoteProtocolError, match=match):
        receive_all(receiver, chunks)
    assert receiver.state is State.ERROR
    with pytest.raises(RemoteProtocolError):  # and it stays dead
        receiver.next_event()


def test_negative_number() -> None:
    refuse([session(-1, 20)], "number -1 is negative")


def test_negative_length() -> None:
    refuse([session(1, -20)], "length -20 is negative")


def test_length_above_the_limit_is_refused_before_any_data() -> None:
    receiver = Receiver(max_length=1024)
    receiver.receive_data(session(1, 2**31 - 1))
    with pytest.raises(RemoteProtocolError, match="above the limit of 1024"):
        receiver.next_event()


def test_default_limit_allows_one_mebibyte_and_refuses_absurd_lengths() -> None:
    receiver = Receiver()
    receiver.receive_data(session(64, 1048576))
    assert receiver.next_event() == Session(64, 1048576)
    refuse([session(1, 2**31 - 1)], "above the limit")


def test_payload_length_differs_from_session() -> None:
    refuse([session(2, 20) + (19).to_bytes(4, "big")], "payload 1 of 2 has length 19, expected 20")


def test_second_payload_length_differs() -> None:
    wire = transmit_stream(2, 4)
    bad = wire[: 8 + 8] + (5).to_bytes(4, "big") + b"01234"
    refuse([bad], "payload 2 of 2 has length 5, expected 4")


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (0, "before the session message"),
        (3, r"before the session message \(got 3 of 8 bytes\)"),
        (8, "before the length of payload 1 of 3"),
        (10, r"before the length of payload 1 of 3 \(got 2 of 4 bytes\)"),
        (12, r"in the data of payload 1 of 3 \(got 0 of 20 bytes\)"),
        (30, r"in the data of payload 1 of 3 \(got 18 of 20 bytes\)"),
        (32, "before the length of payload 2 of 3"),
        (len(WHOLE) - 1, r"in the data of payload 3 of 3 \(got 19 of 20 bytes\)"),
    ],
)
def test_eof_in_the_middle_of_a_message(cut: int, match: str) -> None:
    refuse([WHOLE[:cut]], match)


def test_bytes_after_the_last_payload() -> None:
    refuse([WHOLE + b"xyz"], "3 unexpected bytes after the last payload")


def test_bytes_after_a_session_of_zero_payloads() -> None:
    refuse([session(0, 20) + b"\0"], "1 unexpected bytes after the last payload")


def test_pattern_checked_only_when_asked() -> None:
    corrupt = bytearray(WHOLE)
    corrupt[8 + 24 + 4 + 5] = ord("x")  # payload 2, data byte 5
    assert receive_all(Receiver(), [bytes(corrupt)]) == EXPECTED
    refuse(
        [bytes(corrupt[:40]), bytes(corrupt[40:])],
        r"payload 2 of 3: data byte 5 is 0x78, expected 0x35",
        receiver=Receiver(verify=True),
    )


def test_pattern_is_checked_across_chunks_and_large_payloads() -> None:
    length = 200_000  # longer than one 64 KiB comparison
    wire = transmit_stream(2, length)
    chunks = [wire[i : i + 65_000] for i in range(0, len(wire), 65_000)]
    events = receive_all(Receiver(verify=True), chunks)
    assert events == [Session(2, length), Payload(length), Payload(length), ConnectionClosed()]
    corrupt = bytearray(wire)
    corrupt[8 + 4 + 150_000] = 0
    with pytest.raises(RemoteProtocolError, match="data byte 150000 is 0x00"):
        receive_all(Receiver(verify=True), [bytes(corrupt)])


# --- what the transmitter must refuse --------------------------------------------------


def started(number: int = 2, length: int = 20, payloads: int = 1) -> Transmitter:
    transmitter = Transmitter()
    transmitter.send(Session(number, length))
    for _ in range(payloads):
        transmitter.send(Payload(length))
    return transmitter


def test_wrong_ack() -> None:
    transmitter = started()
    transmitter.receive_data((21).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError, match="ack 1 of 2 is 21, expected 20"):
        transmitter.next_event()
    assert transmitter.state is State.ERROR


def test_ack_before_its_payload_was_sent() -> None:
    transmitter = started(payloads=1)
    transmitter.receive_data(CAPTURE_ACK * 2)
    assert transmitter.next_event() == Ack(20)
    with pytest.raises(RemoteProtocolError, match="ack 2 arrived before payload 2 was sent"):
        transmitter.next_event()


def test_eof_before_every_ack() -> None:
    transmitter = started(payloads=2)
    transmitter.receive_data(CAPTURE_ACK + b"\0\0")
    transmitter.receive_data(b"")
    assert transmitter.next_event() == Ack(20)
    with pytest.raises(RemoteProtocolError, match=r"waiting for ack 2 of 2 \(got 2 of 4"):
        transmitter.next_event()


def test_bytes_after_the_last_ack() -> None:
    transmitter = started(number=1)
    transmitter.receive_data(CAPTURE_ACK + b"!")
    assert transmitter.next_event() == Ack(20)
    with pytest.raises(RemoteProtocolError, match="1 unexpected bytes after the last ack"):
        transmitter.next_event()


def test_bytes_before_the_session() -> None:
    transmitter = Transmitter()
    transmitter.receive_data(b"\0")
    with pytest.raises(RemoteProtocolError, match="before the session was sent"):
        transmitter.next_event()


# --- what we may not send --------------------------------------------------------------


def test_local_misuse_is_a_local_protocol_error() -> None:
    transmitter = Transmitter()
    with pytest.raises(LocalProtocolError, match="send the session first"):
        transmitter.send(Payload(1))
    with pytest.raises(LocalProtocolError, match="out of range"):
        transmitter.send(Session(-1, 1))
    with pytest.raises(LocalProtocolError, match="out of range"):
        transmitter.send(Session(1, ttcp.LENGTH_LIMIT + 1))
    transmitter.send(Session(1, 5))
    with pytest.raises(LocalProtocolError, match="already sent"):
        transmitter.send(Session(1, 5))
    with pytest.raises(LocalProtocolError, match="differs"):
        transmitter.send(Payload(6))
    transmitter.send(Payload(5))
    with pytest.raises(LocalProtocolError, match="all 1 payloads were sent"):
        transmitter.send(Payload(5))

    receiver = Receiver()
    receiver.receive_data(transmit_stream(1, 5))
    assert drain(receiver) == [Session(1, 5), Payload(5)]
    with pytest.raises(LocalProtocolError, match="differs"):
        receiver.send(Ack(4))
    receiver.send(Ack(5))
    with pytest.raises(LocalProtocolError, match="no payload is waiting"):
        receiver.send(Ack(5))
    receiver.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="data after EOF"):
        receiver.receive_data(b"more")


def test_payload_bytes_are_built_once() -> None:
    transmitter = started(number=3, payloads=0)
    assert transmitter.send(Payload(20)) is transmitter.send(Payload(20))
    assert transmitter.statistics().payloads_sent == 2
    assert transmitter.statistics().in_flight == 2


# --- garbage and truncation: RemoteProtocolError, never anything else ------------------


def run_to_end(machine: Receiver | Transmitter, chunks: list[bytes]) -> list[object]:
    """Feed chunks and EOF; the machine must end in ConnectionClosed or a RemoteProtocolError."""
    events: list[object] = []
    for chunk in [*(c for c in chunks if c), b""]:
        machine.receive_data(chunk)
        for event in drain(machine):
            events.append(event)
            if isinstance(event, Payload) and isinstance(machine, Receiver):
                machine.send(Ack(event.length))
    assert isinstance(events[-1], ConnectionClosed), "EOF fed but the machine still wants data"
    return events


@settings(max_examples=500, deadline=None)
@given(garbage=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_receiver_garbage_is_a_remote_protocol_error(garbage: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c <= len(garbage)})
    chunks = [garbage[a:b] for a, b in zip([0, *points], [*points, len(garbage)], strict=True)]
    with contextlib.suppress(RemoteProtocolError):
        run_to_end(Receiver(max_length=1 << 20, verify=True), chunks)


@settings(max_examples=300, deadline=None)
@given(
    number=st.integers(0, 5),
    length=st.integers(0, 40),
    keep=st.floats(0, 1),
    tail=st.binary(max_size=8),
)
def test_receiver_truncated_or_extended_sessions(
    number: int, length: int, keep: float, tail: bytes
) -> None:
    wire = transmit_stream(number, length)
    cut = int(len(wire) * keep)
    stream = wire[:cut] + (tail if cut == len(wire) else b"")
    if stream == wire:
        assert run_to_end(Receiver(), [stream])[-1] == ConnectionClosed()
    else:
        with pytest.raises(RemoteProtocolError):
            run_to_end(Receiver(), [stream])


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=40), payloads=st.integers(0, 4))
def test_transmitter_garbage_is_a_remote_protocol_error(garbage: bytes, payloads: int) -> None:
    transmitter = started(number=4, length=20, payloads=payloads)
    try:
        run_to_end(transmitter, [garbage])
    except RemoteProtocolError:
        pass
    else:  # the only way through: exactly four right acks
        assert payloads == 4
        assert garbage == CAPTURE_ACK * 4


# --- the bulk path (receive_payloads / receive_acks) is the event path --------------


def split(wire: bytes, cuts: list[int]) -> list[bytes]:
    """``wire`` cut at ``cuts``, without empty chunks (b"" would mean EOF)."""
    points = sorted({c for c in cuts if 0 < c < len(wire)})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    return [chunk for chunk in chunks if chunk]


Outcome = tuple[list[int], str | None, object]
Machine = TypeVar("Machine", Receiver, Transmitter)


def outcome(
    machine: Machine, feed: Callable[[Machine, list[bytes]], Iterator[int]], chunks: list[bytes]
) -> Outcome:
    """The counts ``feed`` yields per chunk, the error if a RemoteProtocolError ended it,
    and the final statistics."""
    counts: list[int] = []
    try:
        for count in feed(machine, chunks):
            counts.append(count)
    except RemoteProtocolError as exc:
        return counts, str(exc), machine.statistics()
    return counts, None, machine.statistics()


def receive_by_events(receiver: Receiver, chunks: list[bytes]) -> Iterator[int]:
    """Payloads completed per chunk, through the events."""
    for chunk in [*chunks, b""]:
        receiver.receive_data(chunk)
        payloads = [e for e in drain(receiver) if isinstance(e, Payload)]
        for event in payloads:
            receiver.send(Ack(event.length))
        yield len(payloads)


def receive_in_bulk(receiver: Receiver, chunks: list[bytes]) -> Iterator[int]:
    """The same through receive_payloads, each chunk read into one reused buffer."""
    buffer = bytearray(max(map(len, chunks), default=0))
    for chunk in chunks:
        buffer[: len(chunk)] = chunk
        view = memoryview(buffer)[: len(chunk)]
        if receiver.state is State.AWAIT_SESSION:  # the session goes through the events
            receiver.receive_data(view)
            count = sum(isinstance(e, Payload) for e in drain(receiver))
        else:
            count = receiver.receive_payloads(view)
        buffer[:] = b"\xff" * len(buffer)  # the caller reuses its buffer at once
        if count:
            assert len(receiver.acks(count)) == 4 * count
        yield count
    if receiver.state is State.AWAIT_SESSION:
        receiver.receive_data(b"")
        drain(receiver)  # raises: no session
    assert receiver.receive_payloads(b"") == 0  # EOF
    assert receiver.state is State.CLOSED
    yield 0


@settings(max_examples=400, deadline=None)
@given(
    number=st.integers(0, 6),
    length=st.integers(0, 40),
    cuts=st.lists(st.integers(0, 400), max_size=8),
    damage=st.one_of(st.none(), st.tuples(st.integers(0, 400), st.integers(0, 255))),
    tail=st.binary(max_size=6),
    keep=st.floats(0.5, 1),
    verify=st.booleans(),
    aligned=st.booleans(),
)
def test_receive_payloads_matches_the_events(
    number: int,
    length: int,
    cuts: list[int],
    damage: tuple[int, int] | None,
    tail: bytes,
    keep: float,
    verify: bool,
    aligned: bool,
) -> None:
    """Valid, damaged, truncated and extended sessions, cut anywhere: the bulk path
    completes the same payloads per chunk and fails with the same message."""
    whole = transmit_stream(number, length)
    wire = bytearray(whole[: int(len(whole) * keep)])
    if aligned:  # one message per chunk, as stop-and-wait reads them; damage hits a header
        cuts = list(range(8, len(wire) + 1, 4 + length))
        if damage is not None and cuts:
            damage = (cuts[damage[0] % len(cuts)] + 3, damage[1])
    if damage is not None and damage[0] < len(wire):
        wire[damage[0]] = damage[1]
    chunks = split(bytes(wire) + tail, cuts)
    events = outcome(Receiver(verify=verify), receive_by_events, chunks)
    bulk = outcome(Receiver(verify=verify), receive_in_bulk, chunks)
    assert bulk == events


def test_receive_payloads_checks_every_header_of_a_run() -> None:
    wire = bytearray(transmit_stream(4, 10))
    wire[8 + 3 * 14 + 3] = 11  # the fourth payload's length field
    receiver = Receiver()
    receiver.receive_data(bytes(wire[:8]))
    assert drain(receiver) == [Session(4, 10)]
    with pytest.raises(RemoteProtocolError, match="payload 4 of 4 has length 11, expected 10"):
        receiver.receive_payloads(bytes(wire[8:]))
    stats = receiver.statistics()
    assert (stats.state, stats.payloads_received) == (State.ERROR, 3)


def test_bulk_misuse_is_a_local_protocol_error() -> None:
    receiver = Receiver()
    with pytest.raises(LocalProtocolError, match="the session event comes first"):
        receiver.receive_payloads(transmit_stream(2, 3))
    with pytest.raises(LocalProtocolError):
        receiver.acks(1)  # nothing owed
    receiver.receive_data(transmit_stream(2, 3))
    assert drain(receiver) == [Session(2, 3), Payload(3), Payload(3)]
    with pytest.raises(LocalProtocolError, match="3 acks asked, 2 owed"):
        receiver.acks(3)
    assert receiver.acks(2) == (3).to_bytes(4, "big") * 2
    transmitter = Transmitter()
    with pytest.raises(LocalProtocolError):
        transmitter.payloads(1)  # no session yet
    transmitter.send(Session(3, 5))
    assert transmitter.payloads(2) == ttcp.payload_message(5) * 2
    with pytest.raises(LocalProtocolError, match="2 payloads asked, 1 left"):
        transmitter.payloads(2)


def test_bulk_eof() -> None:
    """b"" is EOF in the bulk methods too: CLOSED after a whole session, else the error."""
    receiver = Receiver()
    receiver.receive_data(transmit_stream(1, 3))
    assert drain(receiver) == [Session(1, 3), Payload(3)]
    receiver.acks(1)
    assert receiver.receive_payloads(b"") == 0
    assert receiver.state is State.CLOSED
    transmitter = started(number=2, length=20, payloads=2)
    assert transmitter.receive_acks(CAPTURE_ACK) == 1
    with pytest.raises(RemoteProtocolError, match="closed while waiting for ack 2 of 2"):
        transmitter.receive_acks(b"")


def acks_by_events(transmitter: Transmitter, chunks: list[bytes]) -> Iterator[int]:
    for chunk in [*chunks, b""]:
        transmitter.receive_data(chunk)
        yield sum(isinstance(e, Ack) for e in drain(transmitter))


def acks_in_bulk(transmitter: Transmitter, chunks: list[bytes]) -> Iterator[int]:
    for chunk in chunks:
        yield transmitter.receive_acks(memoryview(bytearray(chunk)))
    assert transmitter.receive_acks(b"") == 0  # EOF
    assert transmitter.state is State.CLOSED
    yield 0


@settings(max_examples=400, deadline=None)
@given(
    payloads=st.integers(0, 6),
    acks=st.integers(0, 8),
    cuts=st.lists(st.integers(0, 40), max_size=6),
    damage=st.one_of(st.none(), st.tuples(st.integers(0, 40), st.integers(0, 255))),
)
def test_receive_acks_matches_the_events(
    payloads: int, acks: int, cuts: list[int], damage: tuple[int, int] | None
) -> None:
    """Right, wrong, early and missing acks, cut anywhere: same counts, same error."""
    wire = bytearray(CAPTURE_ACK * acks)
    if damage is not None and damage[0] < len(wire):
        wire[damage[0]] = damage[1]
    chunks = split(bytes(wire), cuts)
    events = outcome(started(number=6, length=20, payloads=payloads), acks_by_events, chunks)
    bulk = outcome(started(number=6, length=20, payloads=payloads), acks_in_bulk, chunks)
    assert bulk == events


# --- the state table ------------------------------------------------


def test_state_tables_cover_every_state_they_mention() -> None:
    for table in (ttcp.TRANSMITTER_TRANSITIONS, ttcp.RECEIVER_TRANSITIONS):
        for targets in table.values():
            assert targets <= set(table)
        assert table[State.ERROR] == frozenset()

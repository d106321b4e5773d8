"""The file transfer wire format (PROTOCOL.md), tested without I/O.

Every message is fed split at every byte; random chunking and random garbage must
end in events or a RemoteProtocolError, never in another exception, a hang or a
big allocation.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncat_trio.errors import (
    ConnectionLost,
    ExitCode,
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
)
from ncat_trio.proto import transfer_wire as wire
from ncat_trio.proto.transfer import ReceiverState, ShortStream, TransferReceiver, TransferSender
from ncat_trio.proto.transfer_wire import (
    EMPTY_SHA256,
    NEED_DATA,
    PAUSED,
    Ack,
    Closed,
    Data,
    Failure,
    Header,
    Offer,
    Start,
    Trailer,
)

PAYLOAD = bytes(range(256)) * 3 + b"tail"


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sender_stream(
    payload: bytes,
    *,
    known: bool = True,
    offer: Offer | None = None,
    start: int = 0,
    pieces: int = 3,
    name: str = "file.bin",
) -> tuple[bytes, bytes]:
    """Everything a well-behaved sender puts on the wire: (header, rest after the offer)."""
    sender = TransferSender()
    header = sender.send(
        Header(name, len(payload) if known else None, 0o640, 1_700_000_000 * 10**9)
    )
    sender.receive_data(offer_bytes(header, offer or Offer()))
    assert isinstance(sender.next_event(), Offer)
    rest = sender.send(Start(start))
    body = payload[start:]
    step = max(1, len(body) // pieces)
    for i in range(0, len(body), step):
        rest += sender.send(Data(body[i : i + step]))
    rest += sender.send(Trailer(len(payload), sha(payload)))
    return header, rest


def offer_bytes(header: bytes, offer: Offer) -> bytes:
    """A receiver's Offer in answer to ``header``."""
    receiver = TransferReceiver()
    receiver.receive_data(header)
    assert isinstance(receiver.next_event(), Header)
    return receiver.send(offer)


def drive_receiver(
    pieces: list[bytes], *, offer: Offer | None = None, eof: bool = True
) -> tuple[list[object], TransferReceiver]:
    """Feed ``pieces`` (then EOF), answering PAUSED with ``offer`` and then an Ack."""
    receiver = TransferReceiver()
    events: list[object] = []
    # b"" means EOF, so empty pieces are dropped and EOF is appended on request.
    for piece in [*(p for p in pieces if p), *([b""] if eof else [])]:
        receiver.receive_data(piece)
        while True:
            event = receiver.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                if receiver.state is ReceiverState.OFFER:
                    receiver.send(offer or Offer())
                else:
                    trailer = next(e for e in events if isinstance(e, Trailer))
                    receiver.send(Ack(trailer.size, trailer.sha256))
                continue
            events.append(event)
            if isinstance(event, Closed):
                return events, receiver
    return events, receiver


def feed(proto: TransferSender | TransferReceiver, data: bytes) -> None:
    """receive_data, except that no bytes is no call (b"" would mean EOF)."""
    if data:
        proto.receive_data(data)


def data_of(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data))


def kinds(events: list[object]) -> list[type]:
    out: list[type] = []
    for event in events:
        if not out or type(event) is not out[-1] or not isinstance(event, Data):
            out.append(type(event))
    return out


# ---------------------------------------------------------------- whole exchanges


@pytest.mark.parametrize("known", [True, False], ids=["sized", "chunked"])
def test_receiver_sees_the_same_events_at_every_split_point(known: bool) -> None:
    header, rest = sender_stream(PAYLOAD, known=known)
    wire_bytes = header + rest
    for cut in range(len(wire_bytes) + 1):
        events, receiver = drive_receiver([wire_bytes[:cut], wire_bytes[cut:]])
        assert kinds(events) == [Header, Start, Data, Trailer, Closed], cut
        assert data_of(events) == PAYLOAD
        head = events[0]
        assert isinstance(head, Header)
        assert head == Header(
            "file.bin", len(PAYLOAD) if known else None, 0o640, 1_700_000_000 * 10**9
        )
        assert events[-2] == Trailer(len(PAYLOAD), sha(PAYLOAD))
        assert receiver.state is ReceiverState.DONE


@pytest.mark.parametrize("known", [True, False], ids=["sized", "chunked"])
def test_receiver_byte_by_byte(known: bool) -> None:
    header, rest = sender_stream(PAYLOAD, known=known)
    events, _ = drive_receiver([bytes([b]) for b in header + rest])
    assert data_of(events) == PAYLOAD
    assert kinds(events) == [Header, Start, Data, Trailer, Closed]


@pytest.mark.parametrize("size", [0, 1])
@pytest.mark.parametrize("known", [True, False], ids=["sized", "chunked"])
def test_tiny_files(size: int, known: bool) -> None:
    payload = b"x" * size
    header, rest = sender_stream(payload, known=known)
    events, _ = drive_receiver([header + rest])
    assert data_of(events) == payload
    assert events[-2] == Trailer(size, sha(payload))


def test_sender_parses_offer_ack_and_failure_at_every_split_point() -> None:
    digest = sha(PAYLOAD)
    offer = struct.pack(">cQ32s", b"O", 5, sha(PAYLOAD[:5]))
    ack = struct.pack(">cQ32s", b"A", len(PAYLOAD), digest)
    for cut in range(len(offer) + len(ack) + 1):
        sender = TransferSender()
        sender.send(Header("f", len(PAYLOAD)))
        both = offer + ack
        feed(sender, both[:cut])
        seen: list[object] = []

        def drain(sender: TransferSender = sender, seen: list[object] = seen) -> None:
            while (event := sender.next_event()) is not NEED_DATA:
                seen.append(event)
                if isinstance(event, Closed):  # repeated on every later call
                    return
                if isinstance(event, Offer):
                    sender.send(Start(5))
                    sender.send(Data(PAYLOAD[5:]))
                    sender.send(Trailer(len(PAYLOAD), digest))

        drain()
        feed(sender, both[cut:])
        drain()
        sender.receive_data(b"")
        drain()
        assert seen == [Offer(5, sha(PAYLOAD[:5])), Ack(len(PAYLOAD), digest), Closed()], cut

    failure = wire.encode_failure(Failure(ExitCode.INTEGRITY, "sha256 mismatch"))
    for cut in range(len(failure) + 1):
        sender = TransferSender()
        sender.send(Header("f", None))
        feed(sender, failure[:cut])
        first = sender.next_event()
        feed(sender, failure[cut:])
        second = sender.next_event() if first is NEED_DATA else first
        assert second == Failure(ExitCode.INTEGRITY, "sha256 mismatch")


def test_resume_start_skips_the_offered_prefix() -> None:
    offer = Offer(100, sha(PAYLOAD[:100]))
    header, rest = sender_stream(PAYLOAD, offer=offer, start=100)
    events, receiver = drive_receiver([header + rest], offer=offer)
    assert Start(100) in events
    assert data_of(events) == PAYLOAD[100:]
    assert receiver.offset == 100
    assert receiver.data_received == len(PAYLOAD) - 100


def test_sender_may_decline_a_resume_offer() -> None:
    offer = Offer(100, b"\x01" * 32)  # not our prefix: start again
    header, rest = sender_stream(PAYLOAD, offer=offer, start=0)
    events, _ = drive_receiver([header + rest], offer=offer)
    assert Start(0) in events
    assert data_of(events) == PAYLOAD


def test_whole_received_chunks_are_handed_out_without_a_copy() -> None:
    receiver = TransferReceiver()
    sender = TransferSender()
    sender.send(Header("big", 2 * 65536))
    receiver.receive_data(wire.encode_header(Header("big", 2 * 65536)))
    assert isinstance(receiver.next_event(), Header)
    sender.receive_data(receiver.send(Offer()))
    sender.next_event()
    receiver.receive_data(sender.send(Start(0)))
    assert receiver.next_event() == Start(0)
    chunk = bytes(65536)
    receiver.receive_data(sender.send(Data(chunk)))
    event = receiver.next_event()
    assert isinstance(event, Data)
    assert event.data is chunk


def test_a_chunk_larger_than_the_limit_is_split_by_the_sender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire, "MAX_CHUNK", 10)
    sender = TransferSender()
    sender.send(Header("s", None))
    sender.receive_data(offer_bytes(wire.encode_header(Header("s", None)), Offer()))
    sender.next_event()
    sender.send(Start(0))
    encoded = sender.send(Data(b"a" * 25))
    assert (
        encoded == b"\0\0\0\x0a" + b"a" * 10 + b"\0\0\0\x0a" + b"a" * 10 + b"\0\0\0\x05" + b"a" * 5
    )


# ---------------------------------------------------------------- EOF


def test_eof_before_or_inside_the_header_is_a_protocol_error() -> None:
    header = wire.encode_header(Header("f", 3))
    for cut in range(len(header)):
        receiver = TransferReceiver()
        feed(receiver, header[:cut])
        receiver.receive_data(b"")
        with pytest.raises(RemoteProtocolError):
            receiver.next_event()


@pytest.mark.parametrize("known", [True, False], ids=["sized", "chunked"])
def test_eof_after_the_header_and_before_the_trailer_is_a_short_stream(known: bool) -> None:
    header, rest = sender_stream(PAYLOAD, known=known)
    for cut in range(len(rest)):  # everything short of the complete trailer
        events, _ = drive_receiver([header + rest[:cut]], eof=False)
        assert not any(isinstance(e, Trailer) for e in events)
        with pytest.raises(IntegrityError) as caught:
            drive_receiver([header + rest[:cut]], eof=True)
        assert isinstance(caught.value, ShortStream)
        assert caught.value.exit_code == ExitCode.INTEGRITY
        assert "short stream" in caught.value.why


def test_bytes_after_the_trailer_are_refused() -> None:
    header, rest = sender_stream(PAYLOAD)
    with pytest.raises(RemoteProtocolError, match="after the trailer"):
        drive_receiver([header + rest + b"x"])


def test_the_ack_waits_for_the_senders_eof_and_bytes_before_it_are_refused() -> None:
    """Issue 15: the Ack (and so the file's name) comes only after the sender's FIN, so
    whatever it sends after the trailer is refused before anything is accepted."""
    header, rest = sender_stream(PAYLOAD)
    events, receiver = drive_receiver([header + rest], eof=False)
    assert isinstance(events[-1], Trailer)
    assert receiver.next_event() is NEED_DATA  # not PAUSED: the sender may say more
    with pytest.raises(LocalProtocolError, match="FIN"):
        receiver.send(Ack(len(PAYLOAD), sha(PAYLOAD)))
    for junk in (b"x", rest[-41:], b"\0" * 1000):
        _, receiver = drive_receiver([header + rest], eof=False)
        receiver.receive_data(junk)
        with pytest.raises(RemoteProtocolError, match="after the trailer"):
            receiver.next_event()
        assert receiver.state is ReceiverState.ERROR
        receiver.receive_data(b"")
        with pytest.raises(RemoteProtocolError):
            receiver.next_event()


def test_sender_without_an_ack_reports_a_lost_connection() -> None:
    for state_bytes in (b"", struct.pack(">cQ32s", b"O", 0, EMPTY_SHA256)[:10]):
        sender = TransferSender()
        sender.send(Header("f", 1))
        feed(sender, state_bytes)
        sender.receive_data(b"")
        with pytest.raises(ConnectionLost) as caught:
            sender.next_event()
        assert caught.value.exit_code == ExitCode.RESET


def test_eof_after_a_failure_is_a_plain_close() -> None:
    sender = TransferSender()
    sender.send(Header("f", 1))
    sender.receive_data(wire.encode_failure(Failure(ExitCode.LOCAL_IO, "exists")) + b"junk")
    assert sender.next_event() == Failure(ExitCode.LOCAL_IO, "exists")
    sender.receive_data(b"")
    assert sender.next_event() == Closed()


# ---------------------------------------------------------------- strict validation


def raw_header(
    *,
    magic: bytes = b"NCTF",
    version: int = 1,
    flags: int = 1,
    mode: int = 0o644,
    size: int = 3,
    mtime: int = 0,
    name: bytes = b"f",
    name_len: int | None = None,
) -> bytes:
    length = len(name) if name_len is None else name_len
    return struct.pack(">4sBBHQqH", magic, version, flags, mode, size, mtime, length) + name


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (raw_header(magic=b"NCTX"), "magic"),
        (b"GET / HTTP/1.1\r\n", "magic"),
        (raw_header(version=2), "version"),
        (raw_header(flags=0x04), "flags"),
        (raw_header(mode=0o10000), "mode"),
        (raw_header(size=1 << 63), "size"),
        (raw_header(flags=0, size=5), "unknown"),
        (raw_header(mtime=5), "mtime"),
        (raw_header(name=b"", name_len=0), "name length"),
        (raw_header(name=b"a" * 256), "name length"),
        (raw_header(name=b"\xff\xfe"), "UTF-8"),
        (raw_header(name=b"../etc/passwd"), "traversal"),
        (raw_header(name=b"/etc/passwd"), "absolute"),
        (raw_header(name=b"a/b"), "'/'"),
        (raw_header(name=b".."), "traversal"),
        (raw_header(name=b"."), "traversal"),
        (raw_header(name=b"a\x00b"), "NUL"),
        (raw_header(name=b"a\nb"), "control"),
    ],
)
def test_bad_headers_are_refused(raw: bytes, match: str) -> None:
    receiver = TransferReceiver()
    receiver.receive_data(raw)
    with pytest.raises(RemoteProtocolError, match=match):
        receiver.next_event()
    with pytest.raises(RemoteProtocolError):  # and it stays broken
        receiver.next_event()


def test_a_bad_magic_is_refused_before_the_header_is_complete() -> None:
    receiver = TransferReceiver()
    receiver.receive_data(b"NC")
    assert receiver.next_event() is NEED_DATA
    receiver = TransferReceiver()
    receiver.receive_data(b"SSH-2.0")
    with pytest.raises(RemoteProtocolError, match="magic"):
        receiver.next_event()


def receiver_in_data(known: bool, offer: Offer | None = None) -> TransferReceiver:
    receiver = TransferReceiver()
    receiver.receive_data(wire.encode_header(Header("f", 10 if known else None)))
    assert isinstance(receiver.next_event(), Header)
    receiver.send(offer or Offer())
    return receiver


def test_oversized_chunk_is_refused_before_reading_it() -> None:
    receiver = receiver_in_data(False)
    receiver.receive_data(b"S" + bytes(8) + struct.pack(">I", wire.MAX_CHUNK + 1))
    assert receiver.next_event() == Start(0)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        receiver.next_event()


@pytest.mark.parametrize(
    ("known", "after_start", "match"),
    [
        (True, b"0123456789T" + struct.pack(">Q", 11) + bytes(32), "announces 11"),
        (False, b"\0\0\0\x02ab\0\0\0\0T" + struct.pack(">Q", 3) + bytes(32), "announces 3"),
        (True, b"0123456789X" + bytes(40), "trailer"),
        (False, b"\0\0\0\0A" + bytes(40), "trailer"),
    ],
)
def test_bad_trailers_are_refused(known: bool, after_start: bytes, match: str) -> None:
    receiver = receiver_in_data(known)
    receiver.receive_data(b"S" + bytes(8) + after_start)
    events = []
    with pytest.raises(RemoteProtocolError, match=match):  # noqa: PT012 - the error ends the loop
        while (event := receiver.next_event()) is not NEED_DATA:
            events.append(event)
    assert events[0] == Start(0)


def test_start_must_be_zero_or_the_offered_offset() -> None:
    offer = Offer(4, sha(b"abcd"))
    receiver = receiver_in_data(True, offer)
    receiver.receive_data(b"S" + struct.pack(">Q", 3))
    with pytest.raises(RemoteProtocolError, match="neither 0 nor"):
        receiver.next_event()
    receiver = receiver_in_data(True, offer)
    receiver.receive_data(b"D" + bytes(8))
    with pytest.raises(RemoteProtocolError, match="start"):
        receiver.next_event()


def sender_awaiting(state: str) -> TransferSender:
    sender = TransferSender()
    sender.send(Header("f", 3))
    if state == "offer":
        return sender
    sender.receive_data(struct.pack(">cQ32s", b"O", 0, EMPTY_SHA256))
    assert isinstance(sender.next_event(), Offer)
    sender.send(Start(0))
    if state == "data":
        return sender
    sender.send(Data(b"abc"))
    sender.send(Trailer(3, sha(b"abc")))
    return sender


@pytest.mark.parametrize(
    ("state", "raw", "match"),
    [
        ("offer", struct.pack(">cQ32s", b"A", 3, sha(b"abc")), "expected"),
        ("offer", struct.pack(">cQ32s", b"O", 4, bytes(32)), "beyond"),
        ("offer", struct.pack(">cQ32s", b"O", 0, bytes(32)), "sha256 of nothing"),
        ("data", struct.pack(">cQ32s", b"A", 3, sha(b"abc")), "expected"),
        ("ack", struct.pack(">cQ32s", b"A", 3, bytes(32)), "does not match"),
        ("ack", struct.pack(">cQ32s", b"O", 0, EMPTY_SHA256), "expected"),
        ("ack", b"F" + bytes([9]) + b"\0\0", "unknown code"),
        ("ack", b"F\x07" + struct.pack(">H", 1025) + bytes(1025), "too long"),
        ("ack", b"F\x07\0\x02\xff\xfe", "UTF-8"),
        ("ack", b"F\x07\0\x02a\n", "control"),
        ("ack", b"?", "expected"),
    ],
)
def test_sender_refuses_bad_replies(state: str, raw: bytes, match: str) -> None:
    sender = sender_awaiting(state)
    sender.receive_data(raw)
    with pytest.raises(RemoteProtocolError, match=match):
        sender.next_event()


def test_bytes_after_the_ack_are_refused() -> None:
    sender = sender_awaiting("ack")
    sender.receive_data(struct.pack(">cQ32s", b"A", 3, sha(b"abc")) + b"F\x07\0\0")
    assert isinstance(sender.next_event(), Ack)
    with pytest.raises(RemoteProtocolError):
        sender.next_event()


# ---------------------------------------------------------------- what we may send


def test_sender_refuses_to_break_the_protocol_itself() -> None:
    sender = TransferSender()
    with pytest.raises(LocalProtocolError):
        sender.send(Start(0))  # before the header
    with pytest.raises(LocalProtocolError, match="refused"):
        sender.send(Header("../x", 1))
    with pytest.raises(LocalProtocolError, match="mode"):
        sender.send(Header("x", 1, mode=0o17777))
    sender = sender_awaiting("data")
    assert sender.send(Data(b"")) == b""
    with pytest.raises(LocalProtocolError, match="more than"):
        sender.send(Data(b"abcd"))
    sender.send(Data(b"ab"))
    with pytest.raises(LocalProtocolError, match="only 2 of"):
        sender.send(Trailer(2, sha(b"ab")))
    with pytest.raises(LocalProtocolError, match="size 3 but 2"):
        sender.send(Trailer(3, sha(b"abc")))


def test_receiver_refuses_to_send_out_of_turn() -> None:
    receiver = TransferReceiver()
    with pytest.raises(LocalProtocolError):
        receiver.send(Offer())
    receiver.receive_data(wire.encode_header(Header("f", 3)))
    receiver.next_event()
    with pytest.raises(LocalProtocolError, match="beyond"):
        receiver.send(Offer(4, bytes(32)))
    with pytest.raises(LocalProtocolError):
        receiver.send(Ack(3, bytes(32)))
    with pytest.raises(LocalProtocolError, match="cannot be reported"):
        receiver.send(Failure(ExitCode.RESET, "no"))
    receiver.send(Failure(ExitCode.LOCAL_IO, "exists"))
    assert receiver.state is ReceiverState.FAILED
    receiver.receive_data(b"anything at all")  # discarded: we gave up
    assert receiver.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        receiver.send(Failure(ExitCode.LOCAL_IO, "twice"))


def test_clean_reason_makes_any_text_sendable() -> None:
    reason = wire.clean_reason("line one\nline two\x00" + "é" * 2000)
    assert "\n" not in reason
    assert len(reason.encode()) <= wire.MAX_REASON_BYTES
    assert wire.encode_failure(Failure(ExitCode.INTEGRITY, reason))


# ---------------------------------------------------------------- random input


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_chunking_never_changes_the_events(data: st.DataObject) -> None:
    known = data.draw(st.booleans())
    payload = data.draw(st.binary(max_size=2000))
    header, rest = sender_stream(payload, known=known, pieces=data.draw(st.integers(1, 7)))
    stream = header + rest
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    events, _ = drive_receiver(pieces)
    assert data_of(events) == payload
    assert events[-2] == Trailer(len(payload), sha(payload))


garbage = st.one_of(
    st.binary(max_size=400),
    st.binary(max_size=400).map(lambda tail: b"NCTF\x01" + tail),
    st.binary(max_size=400).map(lambda tail: raw_header(flags=0, size=0) + b"S" + bytes(8) + tail),
    st.binary(max_size=400).map(lambda tail: raw_header(size=5) + b"S" + bytes(8) + tail),
)


@settings(max_examples=500, deadline=None)
@given(garbage, st.booleans())
def test_garbage_to_a_receiver_is_only_ever_a_remote_protocol_error(raw: bytes, eof: bool) -> None:
    try:
        events, _ = drive_receiver([raw], eof=eof)
    except ShortStream:
        assert eof  # the header was fine; the stream just ended
    except RemoteProtocolError:
        pass
    else:
        assert all(not isinstance(e, Data) or e.data for e in events)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["offer", "data", "ack"]))
def test_garbage_to_a_sender_is_only_ever_a_remote_protocol_error(raw: bytes, state: str) -> None:
    sender = sender_awaiting(state)
    feed(sender, raw)
    try:
        while sender.next_event() is not NEED_DATA:
            pass
    except RemoteProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_flipped_control_byte_is_an_event_or_a_protocol_error(data: st.DataObject) -> None:
    header, rest = sender_stream(b"abcdefgh", known=data.draw(st.booleans()))
    stream = bytearray(header + rest)
    at = data.draw(st.integers(0, len(stream) - 1))
    stream[at] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(RemoteProtocolError, ShortStream):  # anything else fails
        drive_receiver([bytes(stream)])

"""The receive buffer and sentinels every proto machine shares (proto/receive_buffer.py)."""

from __future__ import annotations

import struct

import pytest

from ncat_trio.errors import LocalProtocolError
from ncat_trio.proto import proxy, roundtrip, transfer, ttcp
from ncat_trio.proto.receive_buffer import NEED_DATA, ReceiveBuffer

STREAM = bytes(range(40))
PAIR = struct.Struct(">HI")


def test_every_machine_shares_one_need_data() -> None:
    assert ttcp.NEED_DATA is transfer.NEED_DATA is roundtrip.NEED_DATA is proxy.NEED_DATA
    assert ttcp.NEED_DATA is NEED_DATA
    assert repr(NEED_DATA) == "NEED_DATA"


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_messages_split_at_every_point_come_out_whole(cut: int) -> None:
    buffer = ReceiveBuffer("test")
    for piece in [p for p in (STREAM[:cut], STREAM[cut:]) if p]:  # b"" would be EOF
        buffer.feed(piece)
    assert len(buffer) == buffer.size == len(STREAM)
    assert buffer.peek(7) == STREAM[:7]
    assert buffer.take(3) == STREAM[:3]
    assert buffer.unpack(PAIR) == PAIR.unpack(STREAM[3:9])
    assert buffer.take_up_to(5) == STREAM[9:14]
    assert buffer.skip(6) == 6
    assert buffer.take(100) is None  # fewer buffered: nothing is removed
    assert buffer.take_up_to(100) == STREAM[20:]
    assert len(buffer) == 0
    assert buffer.take_up_to(1) == b""
    assert buffer.peek(1) == b""


def test_a_whole_received_chunk_is_handed_out_uncopied() -> None:
    buffer = ReceiveBuffer("test")
    chunk = bytes(range(200)) * 10
    buffer.feed(chunk)
    assert buffer.take_up_to(len(chunk)) is chunk


def test_unpack_front_only_looks_into_the_first_chunk() -> None:
    buffer = ReceiveBuffer("test")
    buffer.feed(STREAM[:8])
    buffer.feed(STREAM[8:])
    assert buffer.unpack_front(PAIR, 8) == PAIR.unpack(STREAM[:6])
    assert buffer.unpack_front(PAIR, 9) is None  # the span crosses into the next chunk
    assert len(buffer) == len(STREAM)  # nothing removed
    buffer.drop(8)
    assert buffer.take(4) == STREAM[8:12]


def test_borrowed_views_are_copied_on_detach() -> None:
    caller = bytearray(STREAM)
    buffer = ReceiveBuffer("test", borrow=True)
    buffer.feed(memoryview(caller))
    assert buffer.take(30) == STREAM[:30]
    buffer.detach()
    caller[:] = b"\xff" * len(caller)  # the caller reuses its buffer
    assert buffer.take_up_to(100) == STREAM[30:]


def test_without_borrow_a_bytearray_is_copied_at_once() -> None:
    caller = bytearray(STREAM)
    buffer = ReceiveBuffer("test")
    buffer.feed(caller)
    caller[:] = b"\xff" * len(caller)
    assert buffer.take(len(STREAM)) == STREAM


def test_eof_then_data_is_the_callers_bug() -> None:
    buffer = ReceiveBuffer("test stream")
    buffer.feed(b"ab")
    buffer.feed(b"")
    assert buffer.eof
    assert len(buffer) == 2
    buffer.feed(b"")  # EOF again changes nothing
    with pytest.raises(LocalProtocolError, match="test stream: data after EOF"):
        buffer.feed(b"c")
    buffer.discard()
    assert len(buffer) == 0
    assert buffer.eof


def test_peek_joins_only_the_chunks_it_needs() -> None:
    buffer = ReceiveBuffer("test")
    big = bytes(1000)
    for piece in (b"ab", b"cd", big):
        buffer.feed(piece)
    assert buffer.peek(3) == b"abc"
    assert buffer.take(4) == b"abcd"
    assert buffer.take_up_to(len(big)) is big  # still the chunk as received

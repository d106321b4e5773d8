"""The pump: copies until EOF, holds one chunk, translates failures once."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from ncat_trio.errors import ConnectionLost, LocalIOError, NcatError
from ncat_trio.transport.pump import Side, pump, run_directions, translated

NET = Side("connection to peer", local=False)
OUT = Side("stdout", local=True)


class FailingReceive(trio.abc.ReceiveStream):
    def __init__(self, err: int) -> None:
        self.err = err

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        raise trio.BrokenResourceError("socket failed") from OSError(
            self.err, "Connection reset by peer"
        )

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class FailingSend(trio.abc.SendStream):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        raise trio.BrokenResourceError("write failed") from BrokenPipeError(
            errno.EPIPE, "Broken pipe"
        )

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_copies_everything_until_eof() -> None:
    src_send, src_recv = trio.testing.memory_stream_one_way_pair()
    dst_send, dst_recv = trio.testing.memory_stream_one_way_pair()
    payload = bytes(range(256)) * 5000
    await src_send.send_all(payload)
    await src_send.aclose()
    seen: list[int] = []
    total = await pump(
        src_recv, dst_send, source_side=NET, sink_side=OUT, chunk_size=4096, on_chunk=seen.append
    )
    assert total == len(payload)
    assert sum(seen) == len(payload)
    assert max(seen) <= 4096
    assert await dst_recv.receive_some(len(payload) + 1) == payload


async def test_sink_none_discards_but_counts() -> None:
    src_send, src_recv = trio.testing.memory_stream_one_way_pair()
    await src_send.send_all(b"x" * 1000)
    await src_send.aclose()
    assert await pump(src_recv, None, source_side=NET, sink_side=OUT) == 1000


async def test_clogged_sink_stops_the_reader() -> None:
    # lockstep streams have no buffer: a send completes only when the other side reads.
    upstream_send, upstream_recv = trio.testing.lockstep_stream_one_way_pair()
    sink_send, sink_recv = trio.testing.lockstep_stream_one_way_pair()
    sent_second = trio.Event()

    async def producer() -> None:
        await upstream_send.send_all(b"first")
        await upstream_send.send_all(b"second")
        sent_second.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        nursery.start_soon(lambda: pump(upstream_recv, sink_send, source_side=NET, sink_side=OUT))
        await trio.testing.wait_all_tasks_blocked()
        # The pump holds "first" and waits on the sink, so "second" is not read.
        assert not sent_second.is_set()
        assert await sink_recv.receive_some() == b"first"
        await trio.testing.wait_all_tasks_blocked()
        assert sent_second.is_set()
        assert await sink_recv.receive_some() == b"second"
        nursery.cancel_scope.cancel()


async def test_reset_becomes_connection_lost_naming_the_side() -> None:
    with pytest.raises(ConnectionLost, match="connection to peer: connection reset by peer"):
        await pump(FailingReceive(errno.ECONNRESET), None, source_side=NET, sink_side=OUT)


async def test_broken_stdout_becomes_local_io_error() -> None:
    src_send, src_recv = trio.testing.memory_stream_one_way_pair()
    await src_send.send_all(b"data")
    with pytest.raises(LocalIOError, match="stdout: broken pipe") as info:
        await pump(src_recv, FailingSend(), source_side=NET, sink_side=OUT)
    assert isinstance(info.value.__cause__, trio.BrokenResourceError)


async def test_cancellation_interrupts_a_blocked_pump(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _send, recv = trio.testing.memory_stream_one_way_pair()
    with trio.move_on_after(5) as scope:
        await pump(recv, None, source_side=NET, sink_side=OUT)
    assert scope.cancelled_caught


def test_translated_maps_stream_failures_as_the_pump_does() -> None:
    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    with (
        pytest.raises(
            ConnectionLost, match=r"^connection to peer: connection reset by peer$"
        ) as info,
        translated(NET),
    ):
        raise trio.BrokenResourceError("socket failed") from reset
    assert isinstance(info.value.__cause__, trio.BrokenResourceError)
    with pytest.raises(LocalIOError, match=r"^stdout: broken pipe$"), translated(OUT):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    with pytest.raises(LocalIOError, match=r"^stdout: closed$"), translated(OUT):
        raise trio.ClosedResourceError


def test_translated_lets_everything_else_through() -> None:
    with pytest.raises(ValueError, match="not a stream failure"), translated(NET):
        raise ValueError("not a stream failure")
    with translated(NET):
        pass  # and a block that ends well ends well


async def test_run_directions_returns_the_first_error_and_cancels_the_rest() -> None:
    first = ConnectionLost("connection to peer", "connection reset by peer")
    second_started = trio.Event()
    cancelled: list[bool] = []

    async def fails() -> None:
        await second_started.wait()
        raise first

    async def waits_forever() -> None:
        second_started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(True)

    async def fails_late() -> None:
        await trio.sleep_forever()
        raise LocalIOError("stdout", "never reached")

    failure = await run_directions(fails, waits_forever, fails_late)
    assert failure is first
    assert isinstance(failure, NcatError)
    assert cancelled == [True]


async def test_run_directions_without_failure_returns_none() -> None:
    async def done() -> None:
        await trio.lowlevel.checkpoint()

    assert await run_directions(done, done) is None

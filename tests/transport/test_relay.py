"""The bounded relay (transport/relay.py) as a specification.

* per direction at most ``buffer`` bytes are held, and while the writer lags the
  reader stops (the sender stays blocked): memory streams, deterministic;
* half-close passes through both ways and the other direction keeps flowing, over
  memory streams and real TCP, on the splice path and the user-space pump;
* a reset on one side resets the other (RST, never a clean FIN);
* idle timeout and cancellation close both sides (MockClock where all waits are Trio).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ncat_trio.transport.relay import (
    ConnectionStatistics,
    Ending,
    RelayConnection,
    RelayMeter,
    RelayResult,
    abort,
)

from ..relay_ends import (
    RecordingSink,
    payload,
    receive_all,
    send_in_pieces,
    tcp_pair,
    wait_reset,
)

COPY_PATHS = pytest.mark.parametrize("splice", [True, False], ids=["splice", "pump"])


async def test_chunks_never_exceed_the_buffer() -> None:
    client, relay_side = trio.testing.memory_stream_pair()
    sink = RecordingSink()
    data = payload(0, 100_000)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            connection = RelayConnection(relay_side, sink, buffer=1000)
            nursery.start_soon(connection.run)
            await send_in_pieces(client, data, piece=64 << 10)
            await client.send_eof()
    assert bytes(sink.data) == data
    assert sink.eof
    assert max(sink.sizes) == 1000
    assert connection.statistics().peak_buffered == 1000


async def test_reader_stops_while_the_writer_lags() -> None:
    """Lockstep streams: a send completes only when the other end has received it."""
    client, relay_client = trio.testing.lockstep_stream_pair()
    relay_target, server = trio.testing.lockstep_stream_pair()
    meter = RelayMeter()
    connection = RelayConnection(relay_client, relay_target, buffer=1000, meter=meter)
    data = payload(7, 10_000)
    sent = trio.Event()

    async def send() -> None:
        await client.send_all(data)
        sent.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.run)
            nursery.start_soon(send)
            await trio.testing.wait_all_tasks_blocked()
            # The relay read one chunk, is stuck writing it, and reads no more:
            assert connection.statistics().buffered_up == 1000
            assert meter.statistics().buffered == 1000
            assert not sent.is_set()
            received = b""
            while len(received) < len(data):
                received += await server.receive_some(4096)
            await sent.wait()
            assert received == data
            assert meter.statistics().peak_buffered == 1000
            nursery.cancel_scope.cancel()
    assert connection.statistics().ending is Ending.CANCELLED


async def test_half_close_over_memory_streams() -> None:
    client, relay_client = trio.testing.memory_stream_pair()
    relay_target, server = trio.testing.memory_stream_pair()
    request, reply = payload(1, 300_000), payload(2, 700_000)
    result: list[RelayResult] = []

    async def run() -> None:
        result.append(await RelayConnection(relay_client, relay_target, buffer=4096).run())

    async def serve() -> None:
        assert await receive_all(server) == request  # only after the client's EOF...
        await send_in_pieces(server, reply)  # ...does the reply start, and it still flows
        await server.send_eof()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            nursery.start_soon(serve)
            await send_in_pieces(client, request)
            await client.send_eof()
            assert await receive_all(client) == reply
    assert result[0].ending is Ending.CLOSED
    assert (result[0].bytes_up, result[0].bytes_down) == (len(request), len(reply))


@COPY_PATHS
@pytest.mark.parametrize("first", ["client", "server"])
async def test_half_close_over_tcp(splice: bool, first: str) -> None:
    """Whoever sends FIN first, the other side's answer arrives whole afterwards."""
    client, relay_client = await tcp_pair()
    relay_target, server = await tcp_pair()
    early, late = payload(3, 1 << 20), payload(4, 3 << 20)
    early_end, late_end = (client, server) if first == "client" else (server, client)
    result: list[RelayResult] = []

    async def run() -> None:
        connection = RelayConnection(relay_client, relay_target, splice=splice)
        result.append(await connection.run())

    async def answer() -> None:
        assert await receive_all(late_end) == early  # the answer starts after the FIN...
        await send_in_pieces(late_end, late)
        await late_end.send_eof()

    with trio.fail_after(20):
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(run)
            nursery.start_soon(answer)
            await send_in_pieces(early_end, early)
            await early_end.send_eof()
            assert await receive_all(early_end) == late  # ...and arrives whole
    assert result[0].ending is Ending.CLOSED
    assert result[0].peak_buffered <= 256 * 1024


@COPY_PATHS
@pytest.mark.parametrize("who", ["client", "target"])
async def test_reset_resets_the_other_side(splice: bool, who: str) -> None:
    client, relay_client = await tcp_pair()
    relay_target, server = await tcp_pair()
    resetting, other = (client, server) if who == "client" else (server, client)
    connection = RelayConnection(relay_client, relay_target, splice=splice)
    result: list[RelayResult] = []

    async def run() -> None:
        result.append(await connection.run())

    with trio.fail_after(10):
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await resetting.send_all(b"before the reset")
            assert await other.receive_some(100) == b"before the reset"
            await abort(resetting)  # SO_LINGER 0 + close: an RST
            assert await wait_reset(other) == b""
    expected = Ending.CLIENT_RESET if who == "client" else Ending.TARGET_RESET
    assert result[0].ending is expected
    assert "reset" in result[0].why


async def test_reset_after_a_half_close_still_propagates() -> None:
    """The client sent FIN, the target is replying, then the target resets: the client
    must see the reset, not a clean end that would pass a truncated reply as whole."""
    client, relay_client = await tcp_pair()
    relay_target, server = await tcp_pair()
    with trio.fail_after(10):
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(RelayConnection(relay_client, relay_target).run)
            await client.send_eof()
            assert await receive_all(server) == b""
            await server.send_all(b"partial reply")
            assert await client.receive_some(100) == b"partial reply"
            await abort(server)
            assert await wait_reset(client) == b""


async def test_idle_timeout_closes_both(autojump_clock: trio.testing.MockClock) -> None:
    client, relay_client = trio.testing.memory_stream_pair()
    relay_target, server = trio.testing.memory_stream_pair()
    connection = RelayConnection(relay_client, relay_target, idle_timeout=10)
    result: list[RelayResult] = []

    async def run() -> None:
        result.append(await connection.run())

    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(run)
        await trio.sleep(8)
        await client.send_all(b"ping")  # activity moves the deadline to 18
        assert await server.receive_some(10) == b"ping"
        await trio.sleep(8)
        assert connection.statistics().ending is None  # 16 s in: still open
        assert await server.receive_some(10) == b""  # closed at 18
        assert await client.receive_some(10) == b""
    assert result[0].ending is Ending.IDLE
    assert trio.current_time() - start == pytest.approx(18)


async def test_cancelled_relay_closes_both_and_says_so() -> None:
    client, relay_client = await tcp_pair()
    relay_target, server = await tcp_pair()
    connection = RelayConnection(relay_client, relay_target)
    stats: list[ConnectionStatistics] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.run)
            await client.send_all(b"x")
            assert await server.receive_some(10) == b"x"
            nursery.cancel_scope.cancel()
        stats.append(connection.statistics())
        async with client, server:
            assert await receive_all(server) == b""  # closed (nothing was unread: a FIN)
    assert stats[0].ending is Ending.CANCELLED
    assert stats[0].bytes_up == 1


def test_buffer_must_be_positive() -> None:
    a, b = trio.testing.memory_stream_pair()
    with pytest.raises(ValueError, match="buffer"):
        RelayConnection(a, b, buffer=0)

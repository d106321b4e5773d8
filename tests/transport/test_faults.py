"""Fault injection (transport/faults.py): each fault does what it says, per direction.

Timing is checked on Trio's MockClock where every wait is pure Trio (memory streams),
so "latency adds 0.5 s" is exact; over real sockets only lower bounds are asserted.
Half-close must stay correct under every fault that does not end the connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from ncat_trio.errors import UsageError
from ncat_trio.transport import faults as fault
from ncat_trio.transport.relay import Ending, RelayConnection, RelayResult

from ..relay_ends import (
    RecordingSink,
    connect,
    payload,
    receive_all,
    relay_in_front_of,
    send_in_pieces,
    sha256,
    wait_reset,
)

MockClock = trio.testing.MockClock


class MemoryRelay:
    """client ↔ relay ↔ server over memory streams, with a fault plan."""

    def __init__(self, plan: fault.FaultPlan, buffer: int = 65536) -> None:
        self.client, relay_client = trio.testing.memory_stream_pair()
        relay_target, self.server = trio.testing.memory_stream_pair()
        self.plan = plan
        self.connection = RelayConnection(
            relay_client, relay_target, buffer=buffer, faults=plan.connection()
        )
        self.results: list[RelayResult] = []

    async def run(self) -> None:
        self.results.append(await self.connection.run())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[trio.Nursery]:
        """The relay in a nursery, yielded for more tasks; leaving waits for it to end."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.run)
            yield nursery


async def _arrival_times(stream: trio.abc.ReceiveStream) -> list[tuple[float, bytes]]:
    arrivals = []
    while chunk := await stream.receive_some(1 << 20):
        arrivals.append((trio.current_time(), bytes(chunk)))
    arrivals.append((trio.current_time(), b""))
    return arrivals


async def test_latency_delays_one_direction_only(autojump_clock: MockClock) -> None:
    relay = MemoryRelay(fault.FaultPlan([fault.Latency(0.5, direction="down")]))
    async with relay.running() as nursery:
        start = trio.current_time()
        await relay.server.send_all(b"down")
        assert await relay.client.receive_some(10) == b"down"
        assert trio.current_time() - start == pytest.approx(0.5)
        start = trio.current_time()
        await relay.client.send_all(b"up")
        assert await relay.server.receive_some(10) == b"up"
        assert trio.current_time() - start == 0
        nursery.cancel_scope.cancel()


async def test_latency_jitter_stays_in_its_range(autojump_clock: MockClock) -> None:
    relay = MemoryRelay(fault.FaultPlan([fault.Latency(1.0, 0.25, direction="down")], seed=3))
    delays = []
    async with relay.running() as nursery:
        for _ in range(20):
            start = trio.current_time()
            await relay.server.send_all(b"x")
            assert await relay.client.receive_some(10) == b"x"
            delays.append(trio.current_time() - start)
        nursery.cancel_scope.cancel()
    assert all(0.75 <= d <= 1.25 for d in delays), delays
    assert len(set(delays)) > 1  # it does vary


async def test_bandwidth_paces_the_stream(autojump_clock: MockClock) -> None:
    rate = 256 * 1024
    relay = MemoryRelay(fault.FaultPlan([fault.Bandwidth(rate, direction="up")]))
    data = payload(1, 1 << 20)
    async with relay.running() as nursery:
        start = trio.current_time()
        nursery.start_soon(send_in_pieces, relay.client, data)
        received = b""
        while len(received) < len(data):
            received += await relay.server.receive_some(1 << 20)
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert received == data
    piece = rate // 20  # the first piece goes at once, then the rate holds
    assert (len(data) - piece) / rate <= elapsed <= len(data) / rate


async def test_slicer_cuts_segments_within_its_size() -> None:
    plan = fault.FaultPlan([fault.Slicer(100, variation=30)], seed=1)
    sink = RecordingSink()
    faulty = plan.connection().wrap("down", sink)
    data = payload(2, 10_000)
    await faulty.send_all(data)
    await faulty.send_eof()
    assert bytes(sink.data) == data
    assert sink.eof
    assert max(sink.sizes) <= 130
    assert min(sink.sizes[:-1]) >= 70
    assert len(set(sink.sizes)) > 1


async def test_slow_close_delays_only_the_fin(autojump_clock: MockClock) -> None:
    relay = MemoryRelay(fault.FaultPlan([fault.SlowClose(3, direction="down")]))
    async with relay.running():
        start = trio.current_time()
        await relay.server.send_all(b"last words")
        await relay.server.send_eof()
        arrivals = await _arrival_times(relay.client)
        await relay.client.send_eof()
    assert [(t - start, c) for t, c in arrivals] == [(0, b"last words"), (3, b"")]
    assert relay.results[0].ending is Ending.CLOSED


async def test_stall_holds_everything_then_resumes_without_loss(autojump_clock: MockClock) -> None:
    stall = fault.Stall(direction="down")
    relay = MemoryRelay(fault.FaultPlan([stall]), buffer=1000)
    data = payload(3, 50_000)
    received: list[bytes] = []

    async def read() -> None:
        received.append(await receive_all(relay.client))

    async with relay.running() as nursery:
        nursery.start_soon(read)
        await send_in_pieces(relay.server, data)
        await relay.server.send_eof()
        await trio.sleep(3600)  # an hour of (mock) time: nothing gets through
        assert relay.connection.statistics().bytes_down == 0
        assert relay.connection.statistics().buffered_down <= 1000
        relay.plan.remove(stall)
        await relay.client.send_eof()
    assert received == [data]
    assert relay.results[0].ending is Ending.CLOSED


async def test_stall_with_a_duration_closes_the_connection(autojump_clock: MockClock) -> None:
    relay = MemoryRelay(fault.FaultPlan([fault.Stall(5, direction="up")]))
    async with relay.running():
        start = trio.current_time()
        await relay.client.send_all(b"held")
        assert await relay.server.receive_some(10) == b""
    assert trio.current_time() - start == pytest.approx(5)
    assert relay.results[0].ending is Ending.STALL
    assert relay.results[0].bytes_up == 0


async def test_reset_peer_after_a_delay(autojump_clock: MockClock) -> None:
    relay = MemoryRelay(fault.FaultPlan([fault.ResetPeer(after=2, direction="down")]))
    async with relay.running():
        start = trio.current_time()
        assert await relay.client.receive_some(10) == b""  # memory streams cannot RST
    assert trio.current_time() - start == pytest.approx(2)
    assert relay.results[0].ending is Ending.RESET_PEER


def test_toxicity_is_decided_per_connection_reproducibly() -> None:
    async def chosen(plan: fault.FaultPlan) -> list[bool]:
        return [bool(plan.connection().active("down")) for _ in range(200)]

    half = fault.Latency(1, toxicity=0.5)
    first = trio.run(chosen, fault.FaultPlan([half], seed=7))
    again = trio.run(chosen, fault.FaultPlan([half], seed=7))
    assert first == again
    assert 60 <= sum(first) <= 140
    assert not any(trio.run(chosen, fault.FaultPlan([fault.Latency(1, toxicity=0.0)], seed=7)))
    assert all(trio.run(chosen, fault.FaultPlan([fault.Latency(1, toxicity=1.0)])))
    assert not any(trio.run(chosen, fault.FaultPlan([fault.Latency(1, direction="up")])))


# --- over real sockets, through the relay server ---------------------------------


async def _reply_after_eof(stream: trio.SocketStream) -> None:
    """Read the request to EOF, answer with its sha256 and a payload, then EOF."""
    request = await receive_all(stream)
    await stream.send_all(sha256(request).encode())
    await send_in_pieces(stream, payload(99, 500_000))
    await stream.send_eof()


HALF_CLOSE_SAFE: list[list[fault.AnyFault]] = [
    [fault.Latency(0.05)],
    [fault.Slicer(1000, 200)],
    [fault.Latency(0.02, 0.01), fault.Slicer(700, 300)],
    [fault.Bandwidth(8 << 20)],
    [fault.SlowClose(0.2)],
]


@pytest.mark.parametrize(
    "faults", HALF_CLOSE_SAFE, ids=lambda f: "+".join(type(x).__name__ for x in f)
)
async def test_half_close_stays_correct_under_faults(faults: list[fault.AnyFault]) -> None:
    request = payload(5, 200_000)
    async with relay_in_front_of(_reply_after_eof, 20, faults=faults) as relay:
        client = await connect(relay.port)
        async with client:
            await send_in_pieces(client, request)
            await client.send_eof()
            reply = await receive_all(client)
    assert reply == sha256(request).encode() + payload(99, 500_000)


async def test_latency_adds_at_least_its_value_over_tcp() -> None:
    faults = [fault.Latency(0.2, direction="up"), fault.Latency(0.1, direction="down")]
    async with relay_in_front_of(_reply_after_eof, 10, faults=faults) as relay:
        client = await connect(relay.port)
        async with client:
            start = trio.current_time()
            await client.send_eof()
            first = await client.receive_some(64)
            elapsed = trio.current_time() - start
            assert first
            assert first == sha256(b"").encode()[: len(first)]
    assert elapsed >= 0.3  # the FIN waited 0.2 s up, the reply 0.1 s down


async def test_slicer_over_tcp_delivers_the_bytes_intact() -> None:
    faults = [fault.Slicer(64, variation=32, direction="down")]
    async with relay_in_front_of(_reply_after_eof, 20, faults=faults) as relay:
        client = await connect(relay.port)
        async with client:
            await client.send_eof()
            reply = await receive_all(client)
    assert reply == sha256(b"").encode() + payload(99, 500_000)


@pytest.mark.parametrize("limit", [0, 1, 65536, 100_003])
async def test_limit_data_closes_at_exactly_n(limit: int) -> None:
    lines: list[str] = []
    async with relay_in_front_of(
        _reply_after_eof,
        10,
        faults=[fault.LimitData(limit, direction="down")],
        verbose=True,
        log=lines.append,
    ) as relay:
        client = await connect(relay.port)
        async with client:
            await client.send_eof()
            reply = await receive_all(client)
        await relay.wait_quiet()
    assert reply == (sha256(b"").encode() + payload(99, 500_000))[:limit]
    assert "fault-limit-data" in lines[0]


@pytest.mark.parametrize("splice", [True, False], ids=["splice", "pump"])
async def test_reset_peer_gives_the_client_econnreset(splice: bool) -> None:
    faults = [fault.ResetPeer(after_bytes=50_000, direction="down")]
    async with relay_in_front_of(_reply_after_eof, 10, faults=faults, splice=splice) as relay:
        client = await connect(relay.port)
        async with client:
            await client.send_eof()
            before = await wait_reset(client)
        await relay.wait_quiet()
        assert relay.statistics().bytes_down == 50_000
    assert len(before) <= 50_000
    assert before == (sha256(b"").encode() + payload(99, 500_000))[: len(before)]


async def test_faults_change_while_a_connection_is_live() -> None:
    """No fault at first (the splice path), then a limit counted from the first byte."""
    gate = trio.Event()

    async def two_parts(stream: trio.SocketStream) -> None:
        await stream.send_all(payload(0, 1000))
        await gate.wait()
        await stream.send_all(payload(1000, 1000))
        await receive_all(stream)

    async with relay_in_front_of(two_parts, 10) as relay:
        client = await connect(relay.port)
        async with client:
            first = b""
            while len(first) < 1000:
                first += await client.receive_some(1000)
            relay.faults.set(fault.LimitData(1500, direction="down"))
            gate.set()
            rest = await receive_all(client)
    assert first + rest == payload(0, 1500)


def test_cli_spellings() -> None:
    assert fault.parse_fault("latency", "down:100ms/20ms") == fault.Latency(
        0.1, 0.02, direction="down"
    )
    assert fault.parse_fault("latency", "1") == fault.Latency(1.0)
    assert fault.parse_fault("bandwidth", "up:1M") == fault.Bandwidth(1 << 20, direction="up")
    assert fault.parse_fault("slicer", "64/16/1ms") == fault.Slicer(64, 16, 0.001)
    assert fault.parse_fault("limit-data", "both:100K") == fault.LimitData(100 * 1024)
    assert fault.parse_fault("reset-peer", "2s") == fault.ResetPeer(after=2.0)
    assert fault.parse_fault("reset-peer", "64KB") == fault.ResetPeer(after_bytes=65536)
    assert fault.parse_fault("stall", "0", toxicity=0.5) == fault.Stall(0.0, toxicity=0.5)
    assert fault.parse_fault("slow-close", "down:1.5") == fault.SlowClose(1.5, direction="down")
    for kind, text in [
        ("latency", "sideways:1"),
        ("latency", "1/2/3"),
        ("slicer", "0"),
        ("slicer", "10/10"),
        ("bandwidth", "0"),
        ("limit-data", "x"),
        ("stall", ""),
    ]:
        with pytest.raises(UsageError):
            fault.parse_fault(kind, text)
    with pytest.raises(UsageError):
        fault.Latency(1, toxicity=1.5)

"""--rate: the token bucket's long-run rate is exact and its bursts are small."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ncat_trio.transport.throttle import ThrottledReceiveStream, TokenBucket, chunk_for


async def test_eight_mib_at_two_mib_per_second_takes_four_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(b"x" * (8 << 20))
    await send.aclose()
    stream = ThrottledReceiveStream(receive, 2 << 20)
    start = trio.current_time()
    got = 0
    times: list[tuple[float, int]] = []
    while chunk := await stream.receive_some(1 << 20):
        got += len(chunk)
        times.append((trio.current_time() - start, got))
    assert got == 8 << 20
    assert trio.current_time() - start == pytest.approx(4.0, rel=0.02)
    # Smooth, not bursty: after the first 0.1 s, the amount delivered never runs more
    # than one burst (1/20 s of traffic) ahead of the ideal line.
    for t, total in times:
        assert total <= (2 << 20) * t + 2 * chunk_for(2 << 20) + (2 << 20) / 20


async def test_bucket_allows_a_small_burst_then_paces(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bucket = TokenBucket(1000, burst=100)
    start = trio.current_time()
    await bucket.consume(100)  # paid by the saved credit
    assert trio.current_time() == start
    await bucket.consume(500)
    assert trio.current_time() - start == pytest.approx(0.5)


def test_chunks_are_about_a_twentieth_of_a_second() -> None:
    assert chunk_for(2 << 20) == (2 << 20) // 20
    assert chunk_for(100) == 1024
    assert chunk_for(10e9) == 256 * 1024


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)

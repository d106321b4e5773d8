"""Rate limiting for the pumps (``--rate``): a token bucket, smooth rather than bursty.

The bucket is debt-based: a chunk is taken at once and the pump then sleeps until the
bucket has paid for it, so the long-run rate is exact and no chunk is ever split.
Chunks are kept small (about 1/20 s of traffic) so the rate is smooth at any scale.
Wrapping a stream hides its fd, so a throttled direction always takes the portable
pump (``zerocopy.classify`` does not recognise the wrapper): that is intended.
"""

from __future__ import annotations

import trio

MIN_CHUNK = 1024
MAX_CHUNK = 256 * 1024


class TokenBucket:
    """``rate`` bytes per second, with at most ``burst`` bytes of credit saved up."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else rate / 20
        self._tokens = self.burst
        self._stamp: float | None = None

    async def consume(self, nbytes: int) -> None:
        """Account for ``nbytes`` just moved; sleep until the bucket is back in credit."""
        now = trio.current_time()
        if self._stamp is None:
            self._stamp = now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= nbytes
        if self._tokens < 0:
            await trio.sleep(-self._tokens / self.rate)
        else:
            await trio.lowlevel.checkpoint()


def chunk_for(rate: float) -> int:
    """A chunk size worth about 1/20 s at ``rate``, within [1 KiB, 256 KiB]."""
    return int(min(MAX_CHUNK, max(MIN_CHUNK, rate / 20)))


class ThrottledReceiveStream(trio.abc.ReceiveStream):
    """A ReceiveStream that delivers at most ``rate`` bytes per second on average."""

    def __init__(self, inner: trio.abc.ReceiveStream, rate: float) -> None:
        self.inner = inner
        self.bucket = TokenBucket(rate)
        self.chunk = chunk_for(rate)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        limit = self.chunk if max_bytes is None else min(max_bytes, self.chunk)
        data = await self.inner.receive_some(limit)
        if data:
            await self.bucket.consume(len(data))
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()

"""``-i/--idle-timeout`` for sessions that own a whole stream (send/receive).

:class:`IdleWatch` is a cancel scope whose deadline moves forward each time bytes move;
:class:`WatchedStream` moves it.  Waiting for a peer that hangs without closing — the
receiver's final confirmation that never comes, a sender that stops mid-file — then ends
when the connection has been silent for the given time, not never.  Long local work
(hashing a resumed prefix, fsync) runs inside :meth:`IdleWatch.paused`: it is not
silence of the connection.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from ..errors import NcatError, NcatTimeout


def raise_session_end(
    failure: NcatError | None,
    idle_scope: trio.CancelScope,
    peer_name: str,
    seconds: float | None,
) -> None:
    """The end of a two-direction session: raise its ``failure``, else the ``-i`` timeout
    when ``idle_scope`` (the session's idle deadline) ended it; return when it ended well."""
    if failure is not None:
        raise failure
    if idle_scope.cancelled_caught:
        raise NcatTimeout(peer_name, f"idle for {seconds:g} s (-i)")


class IdleWatch:
    """A cancel scope that fires after ``seconds`` without :meth:`touch`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.scope = trio.CancelScope(deadline=trio.current_time() + seconds)

    def touch(self) -> None:
        self.scope.deadline = trio.current_time() + self.seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No deadline while local work runs; the clock starts again after it."""
        self.scope.deadline = math.inf
        try:
            yield
        finally:
            self.touch()


class WatchedStream(trio.abc.HalfCloseableStream):
    """``stream``, touching ``watch`` whenever a send or a receive completes."""

    def __init__(self, stream: trio.abc.HalfCloseableStream, watch: IdleWatch) -> None:
        self._stream = stream
        self._watch = watch

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)
        self._watch.touch()

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()
        self._watch.touch()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._stream.receive_some(max_bytes)
        self._watch.touch()
        return data

    async def aclose(self) -> None:
        await self._stream.aclose()


__all__ = ["IdleWatch", "WatchedStream"]

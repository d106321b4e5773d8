"""The netcat session's half-close rules (DESIGN.md §3), over in-memory streams.

``conn`` is our end of the connection and ``peer`` the far end; stdin and stdout are
one-way memory streams so each test decides exactly when data and EOFs arrive.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from ncat_trio import (
    ConnectionLost,
    LocalIOError,
    NcatTimeout,
    SessionOptions,
    SessionResult,
    netcat_session,
)

from ..support import read_to_eof


class Harness:
    def __init__(self) -> None:
        self.conn, self.peer = trio.testing.memory_stream_pair()
        self.stdin_writer, self.stdin = trio.testing.memory_stream_one_way_pair()
        self.stdout = trio.testing.MemorySendStream()  # an unbounded sink we can inspect

    @contextlib.asynccontextmanager
    async def running(
        self, options: SessionOptions, seconds: float | None = 5
    ) -> AsyncIterator[list[SessionResult]]:
        """The session in a nursery, under ``fail_after(seconds)`` unless None; yields the
        list its result is appended to.  Leaving waits for the session to end."""
        results: list[SessionResult] = []
        with trio.fail_after(seconds) if seconds is not None else contextlib.nullcontext():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, self, options, results)
                yield results


async def run(h: Harness, options: SessionOptions, into: list[SessionResult]) -> None:
    into.append(await netcat_session(h.conn, h.stdin, h.stdout, options))


async def test_stdin_eof_sends_fin_and_keeps_reading_the_reply() -> None:
    h = Harness()
    async with h.running(SessionOptions()) as results:
        await h.stdin_writer.send_all(b"request")
        await h.stdin_writer.aclose()
        # The peer sees the request, then our FIN ...
        assert await read_to_eof(h.peer) == b"request"
        await trio.testing.wait_all_tasks_blocked()
        assert not results, "the session must not end at stdin EOF"
        # ... and its reply, sent after our EOF, still reaches stdout.
        await h.peer.send_all(b"late reply")
        await h.peer.send_eof()
    assert h.stdout.get_data_nowait() == b"late reply"
    assert results[0] == SessionResult(7, 10, stdin_eof=True, peer_eof=True, lingered_out=False)


async def test_peer_eof_does_not_truncate_a_piped_upload() -> None:
    h = Harness()
    async with h.running(SessionOptions()) as results:
        await h.peer.send_all(b"bye")
        await h.peer.send_eof()
        await trio.testing.wait_all_tasks_blocked()
        assert not results, "peer EOF must not stop the upload of a pipe"
        for _ in range(10):
            await h.stdin_writer.send_all(b"more data ")
        await h.stdin_writer.aclose()
        assert await read_to_eof(h.peer) == b"more data " * 10
    assert results[0].stdin_eof
    assert results[0].peer_eof
    assert results[0].bytes_sent == 100


async def test_tty_stdin_stops_at_peer_eof() -> None:
    h = Harness()
    async with h.running(SessionOptions(exit_on_peer_eof=True)) as results:
        await h.peer.send_eof()
    assert results[0].peer_eof
    assert not results[0].stdin_eof


async def test_no_shutdown_never_sends_fin() -> None:
    h = Harness()
    async with h.running(SessionOptions(shutdown=False)) as results:
        await h.stdin_writer.send_all(b"abc")
        await h.stdin_writer.aclose()
        assert await h.peer.receive_some() == b"abc"
        with trio.move_on_after(0.2) as scope:
            await h.peer.receive_some()  # would return b"" on a FIN
        assert scope.cancelled_caught
        await h.peer.send_eof()
    assert results[0].peer_eof


async def test_recv_only_sends_nothing_and_ends_at_peer_eof() -> None:
    h = Harness()
    await h.stdin_writer.send_all(b"must not be sent")
    async with h.running(SessionOptions(send=False)) as results:
        await h.peer.send_all(b"data")
        await h.peer.send_eof()
    assert results[0].bytes_sent == 0
    assert h.stdout.get_data_nowait() == b"data"
    with trio.move_on_after(0.1):
        assert await h.peer.receive_some() != b"must not be sent"


async def test_send_only_discards_incoming() -> None:
    h = Harness()
    async with h.running(SessionOptions(receive=False)) as results:
        await h.peer.send_all(b"ignored")
        await h.stdin_writer.send_all(b"up")
        await h.stdin_writer.aclose()
        assert await read_to_eof(h.peer) == b"up"
        await h.peer.send_eof()
    with pytest.raises(trio.WouldBlock):  # nothing was ever written to stdout
        h.stdout.get_data_nowait()
    assert results[0].bytes_received == 7


async def test_linger_bounds_the_wait_for_peer_eof(autojump_clock: trio.testing.MockClock) -> None:
    h = Harness()
    async with h.running(SessionOptions(linger=3), seconds=None) as results:
        await h.stdin_writer.aclose()
        start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(3)
    assert results[0].lingered_out
    assert not results[0].peer_eof


async def test_idle_timeout_fires_only_without_traffic(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness()
    start = trio.current_time()
    with pytest.RaisesGroup(pytest.RaisesExc(NcatTimeout, match="idle for 10 s")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                netcat_session, h.conn, h.stdin, h.stdout, SessionOptions(idle_timeout=10)
            )
            for _ in range(5):  # traffic every 8 s keeps it alive
                await trio.sleep(8)
                await h.peer.send_all(b"tick")
    assert trio.current_time() - start == pytest.approx(40 + 10)


async def test_reset_ends_both_directions_with_connection_lost() -> None:
    h = Harness()

    class Resetting(trio.abc.ReceiveStream):
        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            await trio.lowlevel.checkpoint()
            reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            raise trio.BrokenResourceError() from reset

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()

    conn = trio.StapledStream(h.conn.send_stream, Resetting())
    with trio.fail_after(5), pytest.raises(ConnectionLost, match="connection reset by peer"):
        await netcat_session(conn, h.stdin, h.stdout)  # stdin never ends: must be cancelled


async def test_broken_stdout_stops_reading_the_network() -> None:
    h = Harness()

    class ClosedStdout(trio.abc.SendStream):
        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError() from BrokenPipeError(errno.EPIPE, "Broken pipe")

        async def wait_send_all_might_not_block(self) -> None:
            await trio.lowlevel.checkpoint()

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()

    await h.peer.send_all(b"x")
    with trio.fail_after(5), pytest.raises(LocalIOError, match="stdout: broken pipe"):
        await netcat_session(h.conn, h.stdin, ClosedStdout())


async def test_cancellation_while_blocked_everywhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness()
    with trio.move_on_after(100) as scope:
        await netcat_session(h.conn, h.stdin, h.stdout)
    assert scope.cancelled_caught

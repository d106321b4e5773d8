"""listen -k: concurrent clients (ncat), stdin broadcast, whole chunks on stdout,
--max-conns, and --sequential (OpenBSD nc's one at a time).

The broadcast and the chunked stdout are tested in process over memory streams; the
listener end to end with real clients.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess

import pytest
import trio
import trio.testing

from ncat_trio.modes.keep_open import ChunkedStdout, StdinBroadcast

from ..support import (
    NCAT,
    finish,
    one_error_line,
    read_line,
    read_to_eof,
    receive_all,
    spawn_listener,
)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


# --- in process ------------------------------------------------------------------------


async def test_broadcast_gives_every_chunk_to_every_subscriber() -> None:
    writer, stdin = trio.testing.memory_stream_one_way_pair()
    broadcast = StdinBroadcast()
    first, second = broadcast.subscribe(), broadcast.subscribe()
    got: dict[str, bytes] = {}

    async def collect(name: str, stream: trio.abc.ReceiveStream) -> None:
        got[name] = await read_to_eof(stream)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(broadcast.run, stdin)
            nursery.start_soon(collect, "first", first)
            nursery.start_soon(collect, "second", second)
            for n in range(50):
                await writer.send_all(b"chunk %d;" % n)
                await trio.testing.wait_all_tasks_blocked()
            await writer.aclose()
    expected = b"".join(b"chunk %d;" % n for n in range(50))
    assert got == {"first": expected, "second": expected}
    late = broadcast.subscribe()  # after stdin's EOF: EOF at once
    with trio.fail_after(5):
        assert await late.receive_some() == b""


async def test_broadcast_drops_a_subscriber_that_left() -> None:
    writer, stdin = trio.testing.memory_stream_one_way_pair()
    broadcast = StdinBroadcast()
    staying, leaving = broadcast.subscribe(), broadcast.subscribe()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(broadcast.run, stdin)
            await leaving.aclose()  # never reads: must not block the others
            for _ in range(20):  # more than the per-client queue holds
                await writer.send_all(b"x")
                assert await staying.receive_some() == b"x"
            await writer.aclose()
            assert await staying.receive_some() == b""


async def test_chunked_stdout_never_interleaves_two_writers() -> None:
    """A sink that takes one byte per checkpoint would interleave two unguarded writers."""
    written = bytearray()

    class OneByteAtATime(trio.abc.SendStream):
        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            for byte in bytes(data):
                await trio.lowlevel.checkpoint()
                written.append(byte)

        async def wait_send_all_might_not_block(self) -> None:
            await trio.lowlevel.checkpoint()

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()

    stdout = ChunkedStdout(OneByteAtATime())
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for letter in b"abcd":
                nursery.start_soon(stdout.send_all, bytes([letter]) * 100)
    runs = bytes(written)
    assert sorted(runs[i * 100 : (i + 1) * 100] for i in range(4)) == [
        bytes([letter]) * 100 for letter in b"abcd"
    ]


# --- end to end ------------------------------------------------------------------------


def test_two_clients_are_served_at_the_same_time_and_both_get_stdin() -> None:
    listener, port = spawn_listener(["listen", "-k", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    assert listener.stdin is not None
    assert listener.stdout is not None
    with connect(port) as first, connect(port) as second:
        first.sendall(b"from first\n")
        assert read_line(listener.stdout) == b"from first\n"
        second.sendall(b"from second\n")  # while the first is still connected
        assert read_line(listener.stdout) == b"from second\n"
        listener.stdin.write(b"to everyone\n")
        listener.stdin.flush()
        listener.stdin.close()  # stdin EOF: FIN to every client
        assert receive_all(first) == b"to everyone\n"
        assert receive_all(second) == b"to everyone\n"
    listener.terminate()
    assert finish(listener) == 143


def test_max_conns_closes_the_client_beyond_the_limit() -> None:
    listener, port = spawn_listener(["listen", "-k", "--max-conns", "1", "127.0.0.1", "0"])
    assert listener.stdout is not None
    assert listener.stderr is not None
    with connect(port) as first:
        first.sendall(b"in\n")
        assert read_line(listener.stdout) == b"in\n"
        # Closed at once, perhaps with a reset: either way not served.
        with connect(port) as second, contextlib.suppress(ConnectionResetError):
            assert receive_all(second) == b""
        assert b"--max-conns 1" in read_line(listener.stderr)
        first.shutdown(socket.SHUT_WR)
        assert receive_all(first) == b""  # stdin was /dev/null: our FIN came at once
    listener.terminate()
    assert finish(listener) == 143


def test_sequential_serves_the_next_client_only_after_the_first() -> None:
    listener, port = spawn_listener(["listen", "-k", "--sequential", "127.0.0.1", "0"])
    assert listener.stdout is not None
    with connect(port) as first, connect(port) as second:
        first.sendall(b"one\n")
        assert read_line(listener.stdout) == b"one\n"
        second.sendall(b"two\n")  # queued, not served yet
        first.sendall(b"one again\n")
        assert read_line(listener.stdout) == b"one again\n"
        first.shutdown(socket.SHUT_WR)
        assert receive_all(first) == b""
        assert read_line(listener.stdout) == b"two\n"  # served once the first ended
        second.shutdown(socket.SHUT_WR)
        assert receive_all(second) == b""
    listener.send_signal(signal.SIGINT)
    assert finish(listener) == 130


def test_a_client_reset_is_one_line_and_the_others_go_on() -> None:
    listener, port = spawn_listener(["listen", "-k", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    assert listener.stdout is not None
    assert listener.stderr is not None
    with connect(port) as survivor:
        survivor.sendall(b"alive\n")
        assert read_line(listener.stdout) == b"alive\n"
        with connect(port) as doomed:
            doomed.sendall(b"doomed\n")
            assert read_line(listener.stdout) == b"doomed\n"
            doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert b"reset" in read_line(listener.stderr)
        survivor.sendall(b"still here\n")
        assert read_line(listener.stdout) == b"still here\n"
    listener.terminate()
    assert finish(listener) == 143


@pytest.mark.parametrize(
    "args",
    [
        ["listen", "--max-conns", "0", "-k", "0"],
        ["listen", "--max-conns", "x", "-k", "0"],
        ["listen", "--max-conns", "5", "0"],
        ["listen", "--sequential", "0"],
    ],
    ids=["zero", "not-a-number", "without-k", "sequential-without-k"],
)
def test_keep_open_usage_errors(args: list[str]) -> None:
    result = subprocess.run([*NCAT, *args], capture_output=True, timeout=20, check=False)
    assert result.returncode == 2
    one_error_line(result.stderr)

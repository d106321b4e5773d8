"""ttcp sessions and the ttcp command.

* The sessions over ``trio.testing`` memory streams: whole sessions, the window's
  bound, the ack round trip on a ``MockClock``, every peer fault as one clear error.
* The same sessions over real loopback sockets, which take the fd fast path.
* ``ncat-trio ttcp`` in subprocesses: the output lines, ``--json``, the classic
  ``-r`` / ``-t`` spellings, ``-k``, and the exit codes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from contextlib import AbstractContextManager

import pytest
import trio
import trio.testing

from ncat_trio.cli.ttcp import rewrite_classic
from ncat_trio.errors import ConnectionLost, RemoteProtocolError, UsageError
from ncat_trio.modes import ttcp as ttcp_mode
from ncat_trio.modes.ttcp import (
    ReceiveOptions,
    ReceiveResult,
    TransmitOptions,
    TransmitResult,
    receive_session,
    transmit_session,
)
from ncat_trio.proto import ttcp
from ncat_trio.transport.blocking import Wire
from ncat_trio.transport.pump import Side

from ..support import NCAT, finish, ncat_server, read_line, recv_exactly, spawn


async def run_both(
    options: TransmitOptions,
    receive: ReceiveOptions | None = None,
    pair: tuple[trio.abc.Stream, trio.abc.Stream] | None = None,
) -> tuple[TransmitResult, ReceiveResult]:
    left, right = pair or trio.testing.memory_stream_pair()
    receive = receive or ReceiveOptions()
    results: list[ReceiveResult] = []

    async def receiver() -> None:
        results.append(await receive_session(right, receive))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            sent = await transmit_session(left, options)
    return sent, results[0]


def session_bytes(number: int, length: int) -> bytes:
    return number.to_bytes(4, "big", signed=True) + length.to_bytes(4, "big", signed=True)


# --- whole sessions over memory streams ----------------------------------------------


@pytest.mark.parametrize(
    ("number", "length", "window"),
    [(2, 20, 1), (3, 0, 1), (0, 10, 1), (50, 1000, 1), (50, 1000, 4), (40, 100_000, 16)],
)
async def test_session_over_memory_streams(number: int, length: int, window: int) -> None:
    sent, received = await run_both(
        TransmitOptions(number, length, window), ReceiveOptions(verify=True)
    )
    assert (sent.number, sent.length, sent.window) == (number, length, window)
    assert (received.number, received.length, received.verified) == (number, length, True)
    assert sent.data_bytes == received.data_bytes == number * length
    assert (sent.mean_ack_rtt is None) == (number == 0)


async def test_receiver_reports_the_session_as_it_arrives() -> None:
    left, right = trio.testing.memory_stream_pair()
    seen: list[ttcp.Session] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transmit_session, left, TransmitOptions(3, 7))
        await receive_session(right, on_session=seen.append)
    assert seen == [ttcp.Session(3, 7)]


async def test_ack_round_trip_is_measured(autojump_clock: trio.testing.MockClock) -> None:
    """A receiver that takes exactly 1 s per ack: mean RTT 1 s, the session 5 s."""
    left, right = trio.testing.memory_stream_pair()
    results: list[TransmitResult] = []

    async def transmitter() -> None:
        results.append(await transmit_session(left, TransmitOptions(5, 10)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(transmitter)
        receiver = ttcp.Receiver()
        while receiver.state is not ttcp.State.CLOSED:
            receiver.receive_data(await right.receive_some())
            while isinstance(event := receiver.next_event(), ttcp.Session | ttcp.Payload):
                if isinstance(event, ttcp.Payload):
                    await trio.sleep(1)
                    await right.send_all(receiver.send(ttcp.Ack(10)))
    assert results[0].mean_ack_rtt == pytest.approx(1.0)
    assert results[0].seconds == pytest.approx(5.0)
    assert results[0].mib_per_s == pytest.approx(50 / 5 / 2**20)


# --- the window --------------------------------------------------------------------------


class HeldAcks:
    """The far end of a transmitter: counts payloads, sends acks only when told."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.receiver = ttcp.Receiver()
        self.payloads = 0

    async def payloads_until_quiet(self) -> int:
        """Read until the transmitter stops sending (nothing for 1 virtual second)."""
        before = self.payloads
        while True:
            with trio.move_on_after(1):
                data = await self.stream.receive_some()
                self.receiver.receive_data(data)
                while (event := self.receiver.next_event()) is not ttcp.NEED_DATA:
                    if isinstance(event, ttcp.Payload):
                        self.payloads += 1
                continue
            return self.payloads - before

    async def ack(self, count: int) -> None:
        await self.stream.send_all(
            b"".join(self.receiver.send(ttcp.Ack(100)) for _ in range(count))
        )


async def test_window_keeps_at_most_w_payloads_unacked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    far = HeldAcks(right)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transmit_session, left, TransmitOptions(10, 100, window=3))
        assert await far.payloads_until_quiet() == 3  # a full window, then it waits
        await far.ack(1)
        assert await far.payloads_until_quiet() == 1  # one ack frees exactly one slot
        await far.ack(2)
        assert await far.payloads_until_quiet() == 2
        await far.ack(3)
        assert await far.payloads_until_quiet() == 3
        await far.ack(3)
        assert await far.payloads_until_quiet() == 1  # the tenth and last
        await far.ack(1)
    assert far.payloads == 10


async def test_window_one_is_stop_and_wait(autojump_clock: trio.testing.MockClock) -> None:
    left, right = trio.testing.memory_stream_pair()
    far = HeldAcks(right)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transmit_session, left, TransmitOptions(3, 100))
        for _ in range(3):
            assert await far.payloads_until_quiet() == 1
            await far.ack(1)


# --- peer faults: one clear error each -----------------------------------------------------


async def receive_from(wire: bytes, options: ReceiveOptions | None = None) -> None:
    """Run a receive session against a transmitter that sends ``wire`` and closes."""
    left, right = trio.testing.memory_stream_pair()
    await left.send_all(wire)
    await left.send_eof()
    with trio.fail_after(5):
        await receive_session(right, options or ReceiveOptions())


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (session_bytes(-3, 10), "number -3 is negative"),
        (session_bytes(1, 2**31 - 1), "above the limit"),
        (session_bytes(1, 10) + (9).to_bytes(4, "big"), "payload 1 of 1 has length 9"),
        (session_bytes(1, 10) + (10).to_bytes(4, "big") + b"01234", "in the data of payload 1"),
        (session_bytes(1, 2) + (2).to_bytes(4, "big") + b"01" + b"junk", "4 unexpected bytes"),
        (b"\0\0\0", "before the session message"),
    ],
)
async def test_receiver_refuses(wire: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        await receive_from(wire)


async def test_receiver_max_length_option() -> None:
    with pytest.raises(RemoteProtocolError, match="above the limit of 100"):
        await receive_from(session_bytes(1, 101), ReceiveOptions(max_length=100))


async def test_receiver_closes_the_connection_after_a_fault() -> None:
    left, right = trio.testing.memory_stream_pair()
    await left.send_all(session_bytes(-1, 0))
    with pytest.raises(RemoteProtocolError):
        await receive_session(right)
    assert await left.receive_some() == b""  # the transmitter sees EOF


@pytest.mark.parametrize("window", [1, 4])
async def test_transmitter_refuses_a_wrong_ack(window: int) -> None:
    left, right = trio.testing.memory_stream_pair()

    async def bad_receiver() -> None:
        await right.receive_some()
        await right.send_all((99).to_bytes(4, "big"))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bad_receiver)
            with pytest.raises(RemoteProtocolError, match="ack 1 of 5 is 99, expected 10"):
                await transmit_session(left, TransmitOptions(5, 10, window))


@pytest.mark.parametrize("window", [1, 4])
async def test_transmitter_sees_a_receiver_that_hangs_up(window: int) -> None:
    left, right = trio.testing.memory_stream_pair()

    async def quitter() -> None:
        await right.receive_some()
        await right.aclose()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(quitter)
            with pytest.raises((RemoteProtocolError, ConnectionLost)):
                await transmit_session(left, TransmitOptions(5, 10, window))


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="window"):
        TransmitOptions(window=0)
    with pytest.raises(UsageError, match="length"):
        TransmitOptions(length=-1)
    with pytest.raises(UsageError, match="number"):
        TransmitOptions(number=2**31)


# --- real sockets: the fd fast path ----------------------------------------------------


async def loopback_pair(
    *, sndbuf: int | None = None, rcvbuf: int | None = None
) -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    port = listener.socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listener.accept()
    await listener.aclose()
    if sndbuf is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    if rcvbuf is not None:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return client, server


@pytest.mark.parametrize(
    ("number", "length", "window"),
    [
        (1000, 1, 1),
        (1000, 1, 8),  # one task sends and reads acks (_windowed)
        (3, 0, 1),
        (6000, 1, ttcp_mode.DIRECT_WINDOW_LIMIT + 1),  # above: two tasks (_pipelined)
    ],
)
async def test_session_over_loopback(number: int, length: int, window: int) -> None:
    pair = await loopback_pair()
    sent, received = await run_both(
        TransmitOptions(number, length, window), ReceiveOptions(verify=True), pair
    )
    assert received.number == sent.number == number


@pytest.mark.parametrize("window", [1, 4])
async def test_large_payloads_through_small_socket_buffers(window: int) -> None:
    """Partial writes and partial reads on the fd path; --verify checks every byte."""
    # Smaller than a payload, but not below one loopback MSS (~64 KiB): a receive
    # window under one MSS stalls TCP on its persist timer (silly-window avoidance).
    pair = await loopback_pair(sndbuf=65536, rcvbuf=131072)
    _, received = await run_both(
        TransmitOptions(8, 1 << 20, window), ReceiveOptions(verify=True), pair
    )
    assert received.data_bytes == 8 << 20


async def test_exclusive_waits_fall_back_to_trio_when_the_peer_is_this_thread() -> None:
    """Both ends in one Trio thread: every blocking read times out (the peer cannot
    run meanwhile) and the wait is handed to Trio, so the session still completes."""
    client, server = await loopback_pair()
    results: list[ReceiveResult] = []

    async def receiver() -> None:
        results.append(await receive_session(server, exclusive_thread=True))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            sent = await transmit_session(client, TransmitOptions(5, 100), exclusive_thread=True)
    assert results[0].number == sent.number == 5


def blocking_transmitter(sock: socket.socket, number: int, length: int) -> None:
    """A C-style transmitter on a blocking socket: payload, then wait for its ack."""
    with sock:
        sock.sendall(session_bytes(number, length))
        message = length.to_bytes(4, "big") + ttcp.PATTERN * (length // 16)
        for _ in range(number):
            sock.sendall(message)
            ack = b""
            while len(ack) < 4:
                ack += sock.recv(4 - len(ack))
            assert ack == length.to_bytes(4, "big")


async def test_exclusive_receiver_against_a_peer_in_another_thread() -> None:
    """The blocking-read path proper: the peer answers while we sit in readv()."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    peer = socket.create_connection(("127.0.0.1", port), timeout=30)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, blocking_transmitter, peer, 2000, 64)
            result = await receive_session(
                server, ReceiveOptions(verify=True), exclusive_thread=True
            )
    assert (result.number, result.data_bytes) == (2000, 128_000)


def blocking_receiver(sock: socket.socket) -> int:
    """A C-style receiver on a blocking socket: read a payload, ack it; count them."""

    with sock:
        header = recv_exactly(sock, 8)
        number, length = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")
        for _ in range(number):
            assert int.from_bytes(recv_exactly(sock, 4), "big") == length
            recv_exactly(sock, length)
            sock.sendall(length.to_bytes(4, "big"))
        assert sock.recv(1) == b""  # then the transmitter closes
    return number


@pytest.mark.parametrize(("window", "length"), [(8, 64), (4, 1 << 20)])
async def test_exclusive_windowed_transmitter_against_a_peer_in_another_thread(
    window: int, length: int
) -> None:
    """One task sends the window and then blocks reading acks; with 1 MiB payloads
    and a small send buffer its writes also time out and wait in Trio."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    peer = socket.socket(fileno=os.dup(server.socket.fileno()))
    peer.setblocking(True)
    await server.aclose()
    counted: list[int] = []

    async def far_end() -> None:
        counted.append(await trio.to_thread.run_sync(blocking_receiver, peer))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(far_end)
            sent = await transmit_session(
                client, TransmitOptions(200, length, window), exclusive_thread=True
            )
    assert counted == [sent.number] == [200]


async def test_fd_path_still_checkpoints_when_nothing_blocks() -> None:
    """Writes that never block are no checkpoints on the fd path, so every
    ``YIELD_EVERY``-th call yields: a cancelled scope ends the loop within that many."""
    client, server = await loopback_pair()
    wire = Wire(client, Side("test", local=False))
    assert wire.direct
    sent = 0
    with trio.CancelScope() as scope:
        scope.cancel()
        for _ in range(1000):
            await wire.send_all(b"x")  # 1 byte: the socket buffer never fills
            sent += 1
    assert scope.cancelled_caught  # the cancel arrived although no write blocked ...
    assert sent < wire.YIELD_EVERY  # ... within YIELD_EVERY calls
    await client.aclose()
    await server.aclose()


async def test_an_exclusive_wire_gives_the_socket_back_non_blocking() -> None:
    """Blocking with timeouts only inside ``with wire:``; Trio's socket as it was after."""
    client, server = await loopback_pair()
    fd = client.socket.fileno()
    wire = Wire(client, Side("test", local=False), exclusive=True)
    no_timeout = client.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
    with wire:
        assert os.get_blocking(fd)
        timeout = client.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
        assert timeout != no_timeout
    assert not os.get_blocking(fd)
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        assert client.socket.getsockopt(socket.SOL_SOCKET, option, 16) == no_timeout
    await client.aclose()
    await server.aclose()


async def test_memory_streams_use_the_stream_methods() -> None:
    left, _right = trio.testing.memory_stream_pair()
    assert not Wire(left, Side("test", local=False)).direct


# --- the command ---------------------------------------------------------------------------

HUMAN_TRANSMIT = (
    r"port = (?P<port>\d+)\n"
    r"buffer length = 1000\n"
    r"number of buffers = 50\n"
    r"0\.048 MiB in total\n"
    r"\d+\.\d{3} seconds\n"
    r"\d+\.\d{3} MiB/s\n"
)
HUMAN_RECEIVE = (
    r"port = (?P<port>\d+)\n"
    r"receive number = 50\n"
    r"receive length = 1000\n"
    r"0\.048 MiB in total\n"
    r"\d+\.\d{3} seconds\n"
    r"\d+\.\d{3} MiB/s\n"
)


def started_receiver(*args: str) -> AbstractContextManager[tuple[subprocess.Popen[bytes], int]]:
    """``ncat-trio ttcp …`` with its real port; killed if still running, pipes closed."""
    return ncat_server(["ttcp", *args])


def transmit(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*NCAT, "ttcp", *args], capture_output=True, timeout=60, check=False)


def test_receive_and_transmit_print_the_original_lines() -> None:
    with started_receiver("receive", "-p", "0", "-b", "127.0.0.1") as (receiver, port):
        sent = transmit("transmit", "127.0.0.1", "-p", str(port), "-l", "1000", "-n", "50")
        assert finish(receiver) == 0
        assert sent.returncode == 0, sent.stderr
        assert receiver.stdout is not None
        out = receiver.stdout.read().decode()
    assert re.fullmatch(HUMAN_TRANSMIT, sent.stdout.decode())
    match = re.fullmatch(HUMAN_RECEIVE, out)
    assert match is not None, out
    assert int(match["port"]) == port


def test_classic_spellings_and_json() -> None:
    with started_receiver("-r", "-p", "0", "-b", "127.0.0.1", "--json") as (receiver, port):
        sent = transmit(
            "-t", "127.0.0.1", "-p", str(port), "-l", "64K", "-n", "10", "--window", "4", "--json"
        )
        assert sent.returncode == 0, sent.stderr
        assert finish(receiver) == 0
        assert receiver.stdout is not None
        received = json.loads(receiver.stdout.read())
    report = json.loads(sent.stdout)
    assert report["role"] == "transmit"
    assert (report["bytes"], report["messages"], report["length"]) == (655360, 10, 65536)
    assert (report["window"], report["nodelay"]) == (4, False)
    assert report["mean_ack_rtt"] > 0
    assert report["mib_per_s"] > 0
    assert report["messages_per_s"] > 0
    assert (received["role"], received["bytes"], received["messages"]) == ("receive", 655360, 10)


def test_readiness_line_on_stdout_and_stderr() -> None:
    with started_receiver("-r", "-p", "0", "-b", "127.0.0.1") as (proc, port):
        assert proc.stdout is not None
        assert read_line(proc.stdout).decode() == f"port = {port}\n"


def test_a_bad_session_exits_6_with_one_line() -> None:
    with started_receiver("receive", "-p", "0", "-b", "127.0.0.1") as (receiver, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(session_bytes(-1, 5))
        assert finish(receiver) == 6
        assert receiver.stderr is not None
        assert receiver.stderr.read() == b"ncat-trio: ttcp: session number -1 is negative\n"


def test_keep_open_reports_a_bad_session_and_serves_the_next() -> None:
    with started_receiver("receive", "-k", "-p", "0", "-b", "127.0.0.1") as (receiver, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(session_bytes(1, 4) + (5).to_bytes(4, "big"))
        assert receiver.stderr is not None
        assert b"payload 1 of 1 has length 5, expected 4" in read_line(receiver.stderr)
        for _ in range(2):
            sent = transmit("transmit", "127.0.0.1", "-p", str(port), "-l", "10", "-n", "3")
            assert sent.returncode == 0, sent.stderr
        assert receiver.poll() is None  # still serving
        receiver.terminate()
        assert finish(receiver) == 143
        assert receiver.stdout is not None
        assert receiver.stdout.read().decode().count("receive number = 3\n") == 2


SIGNALS = pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
DEADLINE = 1.0  # the bound on exiting after a signal


def signal_and_wait(proc: subprocess.Popen[bytes], signum: int) -> tuple[int, float, bytes]:
    """Deliver ``signum``; the exit code, the seconds until exit, and stderr."""
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        _out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("no exit within 10 s of the signal") from None
    return proc.returncode, time.monotonic() - sent, err


@SIGNALS
def test_a_signal_stops_a_receiver_blocked_inside_a_payload(
    signum: signal.Signals, code: int
) -> None:
    """The CLI receiver waits for data in a blocking read (exclusive_thread): a
    signal still ends it promptly, with its exit code and one line."""
    with (
        started_receiver("receive", "-p", "0", "-b", "127.0.0.1") as (receiver, port),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(session_bytes(2, 1000) + (1000).to_bytes(4, "big") + b"0123")
        assert receiver.stdout is not None
        assert read_line(receiver.stdout).startswith(b"port = ")
        assert read_line(receiver.stdout) == b"receive number = 2\n"  # in the session
        got, elapsed, err = signal_and_wait(receiver, signum)
    assert got == code
    assert elapsed < DEADLINE
    assert err.endswith(f"ncat-trio: interrupted by {signum.name}\n".encode()), err


@SIGNALS
@pytest.mark.parametrize("length", ["10", "4M"])
def test_a_signal_stops_a_transmitter_blocked_on_its_peer(
    signum: signal.Signals, code: int, length: str
) -> None:
    """A receiver that reads the session and then nothing: at 10 bytes the
    transmitter waits for an ack (a blocking read), at 4 MiB it waits to write."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        cmd = ["transmit", "127.0.0.1", "-p", str(port), "-l", length, "-n", "3"]
        with spawn([*NCAT, "ttcp", *cmd]) as proc:
            try:
                server.settimeout(10)
                conn, _ = server.accept()
                with conn:
                    conn.settimeout(10)
                    assert len(conn.recv(8, socket.MSG_WAITALL)) == 8  # it is in the session
                    got, elapsed, err = signal_and_wait(proc, signum)
            finally:
                if proc.poll() is None:
                    proc.kill()
    assert got == code
    assert elapsed < DEADLINE
    assert err == f"ncat-trio: interrupted by {signum.name}\n".encode(), err


def test_transmit_to_a_closed_port_exits_1() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sent = transmit("transmit", "127.0.0.1", "-p", str(port), "-n", "1")
    assert sent.returncode == 1
    assert sent.stderr.startswith(b"ncat-trio: connect to 127.0.0.1:")


@pytest.mark.parametrize(
    "args",
    [
        ["-r", "-t", "127.0.0.1"],
        ["-t"],
        ["transmit", "h", "-n", "-5"],
        ["transmit", "h", "--window", "0"],
        ["transmit", "h", "-l", "3G"],
        ["receive", "-p", "70000"],
        ["receive", "--max-length", "lots"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = transmit(*args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(b"ncat-trio: ")
    assert done.stdout == b""


@pytest.mark.parametrize(
    ("classic", "rewritten"),
    [
        (["-r"], ["receive"]),
        (["-r", "-p", "0", "-k"], ["receive", "-p", "0", "-k"]),
        (["-rk", "-p", "0"], ["receive", "-k", "-p", "0"]),
        (["-p", "9", "-r"], ["receive", "-p", "9"]),
        (["-t", "host", "-l", "10"], ["transmit", "host", "-l", "10"]),
        (["-thost", "-n", "5"], ["transmit", "host", "-n", "5"]),
        (["-D", "-t", "h"], ["transmit", "h", "-D"]),
        (["-Dt", "h"], ["transmit", "h", "-D"]),
        (["transmit", "-t"], ["transmit", "-t"]),
        (["--help"], ["--help"]),
        (["-r", "--", "-t"], ["receive", "--", "-t"]),
    ],
)
def test_rewrite_classic(classic: list[str], rewritten: list[str]) -> None:
    assert rewrite_classic(classic) == rewritten

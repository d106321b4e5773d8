"""Every stdio fast path and its portable twin, end to end, sha256-checked.

ncat-trio connects to a server thread that sends a payload while reading everything we
upload.  Stdin and stdout are each a pipe, a regular file, /dev/null or a socket;
each combination runs with the splice/sendfile paths and with ``--no-zerocopy``, and
the flags of the descriptions the test shares with ncat-trio must not change.
The relay's socket → pipe → socket (``splice_sockets``) is held to its contract: at most
a chunk in flight, metered, and not one byte taken once its caller says stop.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import trio
import trio.testing

from ncat_trio.errors import ConnectionLost, LocalIOError, OutOfResources
from ncat_trio.transport import zerocopy
from ncat_trio.transport.pump import Side
from ncat_trio.transport.stdio import FileSendStream, open_stdin, open_stdout
from ncat_trio.transport.zerocopy import FdEnd, Spliced, classify, copy, splice_sockets
from tests.relay_ends import payload, receive_all, tcp_pair
from tests.support import NCAT

SIZE = 3 * 1024 * 1024 + 17
UP = os.urandom(SIZE)
DOWN = os.urandom(SIZE)


@dataclass
class Server:
    port: int
    received: bytearray = field(default_factory=bytearray)
    thread: threading.Thread | None = None


@contextlib.contextmanager
def server(reply: bytes) -> Iterator[Server]:
    listener = socket.create_server(("127.0.0.1", 0))
    state = Server(listener.getsockname()[1])

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            sender = threading.Thread(target=send_then_fin, args=(conn, reply))
            sender.start()
            while chunk := conn.recv(1 << 16):
                state.received += chunk
            sender.join()

    state.thread = threading.Thread(target=serve, daemon=True)
    state.thread.start()
    try:
        yield state
    finally:
        listener.close()
        state.thread.join(10)


def send_then_fin(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)


def write_then_close(fd: int, data: bytes) -> None:
    os.write(fd, data)
    os.close(fd)


def flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


@dataclass
class End:
    """One stdio end: what to pass to Popen, the fd whose flags we watch, how to finish."""

    popen_arg: Any
    watched_fd: int | None
    finish: Callable[[], bytes | None]  # returns what stdout received (None: not checked)
    cleanup: Callable[[], None]


def stdin_end(kind: str, tmp: str) -> End:
    if kind == "pipe":
        r, w = os.pipe()
        writer = threading.Thread(target=write_then_close, args=(w, UP))
        writer.start()

        def joined() -> None:
            writer.join()

        return End(r, r, joined, lambda: os.close(r))
    if kind == "file":
        f: IO[bytes] = open(os.path.join(tmp, "up"), "w+b")  # noqa: SIM115
        f.write(UP)
        f.seek(0)
        return End(f, f.fileno(), lambda: None, f.close)
    if kind == "devnull":
        return End(subprocess.DEVNULL, None, lambda: None, lambda: None)
    a, b = socket.socketpair()
    writer = threading.Thread(target=send_then_fin, args=(b, UP))
    writer.start()

    def close() -> None:
        writer.join()
        a.close()
        b.close()

    return End(a.fileno(), a.fileno(), lambda: None, close)


def stdout_end(kind: str, tmp: str) -> End:
    if kind == "pipe":
        r, w = os.pipe()
        got = bytearray()

        def drain() -> None:
            while chunk := os.read(r, 1 << 16):
                got.extend(chunk)

        reader = threading.Thread(target=drain)
        reader.start()

        def collected() -> bytes:
            os.close(w)  # our copy of the write end: the reader sees EOF once ncat-trio's is gone
            reader.join()
            return bytes(got)

        return End(w, w, collected, lambda: os.close(r))
    if kind == "file":
        path = os.path.join(tmp, "down")
        f: IO[bytes] = open(path, "w+b")  # noqa: SIM115
        return End(f, f.fileno(), Path(path).read_bytes, f.close)
    if kind == "devnull":
        return End(subprocess.DEVNULL, None, lambda: None, lambda: None)
    a, b = socket.socketpair()
    got2 = bytearray()

    def drain_socket() -> None:
        while chunk := b.recv(1 << 16):
            got2.extend(chunk)

    reader2 = threading.Thread(target=drain_socket)
    reader2.start()

    def finish() -> bytes:
        a.close()  # our copy; ncat-trio's copy closed when it exited
        reader2.join()
        return bytes(got2)

    return End(a.fileno(), a.fileno(), finish, b.close)


COMBOS = [
    ("pipe", "pipe"),
    ("file", "file"),
    ("devnull", "devnull"),
    ("socket", "socket"),
    ("pipe", "file"),
    ("file", "pipe"),
]


@pytest.mark.parametrize("zerocopy", [True, False], ids=["zerocopy", "portable"])
@pytest.mark.parametrize(("stdin_kind", "stdout_kind"), COMBOS, ids=["-".join(c) for c in COMBOS])
def test_connect_moves_everything_both_ways(
    stdin_kind: str, stdout_kind: str, zerocopy: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp, server(DOWN) as srv:
        up, down = stdin_end(stdin_kind, tmp), stdout_end(stdout_kind, tmp)
        watched = [fd for fd in (up.watched_fd, down.watched_fd) if fd is not None]
        before = [flags(fd) for fd in watched]
        try:
            argv = [*NCAT, "127.0.0.1", str(srv.port)] + ([] if zerocopy else ["--no-zerocopy"])
            proc = subprocess.run(
                argv,
                stdin=up.popen_arg,
                stdout=down.popen_arg,
                stderr=subprocess.PIPE,
                timeout=30,
                check=False,
            )
            after = [flags(fd) for fd in watched]
            up.finish()
            got = down.finish()
            assert after == before
        finally:
            up.cleanup()
            down.cleanup()
        assert srv.thread is not None
        srv.thread.join(10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    expected_up = b"" if stdin_kind == "devnull" else UP
    assert hashlib.sha256(srv.received).hexdigest() == hashlib.sha256(expected_up).hexdigest()
    if got is not None:
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(DOWN).hexdigest()


def test_append_mode_stdout_falls_back_and_appends() -> None:
    with tempfile.NamedTemporaryFile() as f, server(DOWN) as srv:
        f.write(b"existing\n")
        f.flush()
        with open(f.name, "ab") as out:
            # written with write(), which appends (splice into O_APPEND would fail)
            assert classify(FileSendStream(out.fileno())) == FdEnd(out.fileno(), "regfile")
            proc = subprocess.run(
                [*NCAT, "-d", "127.0.0.1", str(srv.port)],
                stdout=out,
                stderr=subprocess.PIPE,
                timeout=30,
                check=False,
            )
        assert proc.returncode == 0, proc.stderr
        assert Path(f.name).read_bytes() == b"existing\n" + DOWN


async def test_broken_stdout_pipe_is_local_io_on_the_splice_path() -> None:
    a, b = trio.socket.socketpair()
    r, w = os.pipe()
    os.close(r)
    try:
        async with open_stdout(w) as sink:
            src = trio.SocketStream(a)
            await b.send(b"x" * 1000)
            with pytest.raises(LocalIOError, match="stdout: broken pipe"):
                await copy(
                    src, sink, source_side=Side("net", False), sink_side=Side("stdout", True)
                )
    finally:
        os.close(w)
        a.close()
        b.close()


async def test_reset_on_the_splice_path_is_connection_lost() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = trio.socket.socket()
    await client.connect(listener.getsockname())
    server_sock, _ = await listener.accept()
    r, w = os.pipe()
    try:
        async with open_stdin(r) as stdin:
            os.write(w, b"y" * 1000)
            # RST from the far end: SO_LINGER 0 then close.
            server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            server_sock.close()
            with trio.fail_after(10), pytest.raises(ConnectionLost, match="net: connection reset"):
                await copy(
                    stdin,
                    trio.SocketStream(client),
                    source_side=Side("stdin", True),
                    sink_side=Side("net", False),
                )
    finally:
        os.close(w)
        listener.close()
        client.close()


@pytest.mark.parametrize("zerocopy", [True, False], ids=["zerocopy", "portable"])
def test_tty_stdin_takes_the_safe_path(zerocopy: bool) -> None:
    """A terminal is never spliced: typed lines and Ctrl-D go through the reopened TTY."""
    master, slave = os.openpty()
    listener = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while chunk := conn.recv(4096):  # until our FIN (Ctrl-D)
                received.extend(chunk)
            conn.sendall(b"reply after EOF\n")

    thread = threading.Thread(target=serve)
    thread.start()
    before = flags(slave)
    try:
        os.write(master, b"typed line\n\x04")  # a line, then Ctrl-D at the start of a line
        argv = [*NCAT, "127.0.0.1", str(listener.getsockname()[1])]
        proc = subprocess.run(
            argv + ([] if zerocopy else ["--no-zerocopy"]),
            stdin=slave,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert flags(slave) == before
    finally:
        thread.join(10)
        listener.close()
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, proc.stderr
    assert bytes(received) == b"typed line\n"
    assert proc.stdout == b"reply after EOF\n"


@pytest.mark.parametrize("zerocopy", [True, False], ids=["zerocopy", "portable"])
def test_devnull_stdout_counts_every_byte_it_discards(zerocopy: bool) -> None:
    """stdout /dev/null: the zero-copy path drops the bytes in the kernel (MSG_TRUNC),
    yet the count in the summary is exact, and the peer's FIN still ends the session."""
    with server(DOWN) as srv:
        argv = [*NCAT, "--json", "127.0.0.1", str(srv.port)]
        proc = subprocess.run(
            argv + ([] if zerocopy else ["--no-zerocopy"]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
        assert srv.thread is not None
        srv.thread.join(10)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stderr)
    assert (record["bytes_received"], record["peer_eof"]) == (len(DOWN), True)


async def send_exclusively(stdin: trio.abc.ReceiveStream, client: trio.socket.SocketType) -> int:
    """stdin to ``client`` as the single-session sender copies it (``exclusive``)."""
    return await copy(
        stdin,
        trio.SocketStream(client),
        source_side=Side("stdin", True),
        sink_side=Side("net", False),
        exclusive=True,
    )


async def connected_pair() -> tuple[trio.socket.SocketType, socket.socket]:
    """A Trio TCP socket (our sending end) and the plain socket it is connected to."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = trio.socket.socket()
        await client.connect(listener.getsockname())
        peer, _ = listener.accept()
    return client, peer


def feed(fd: int, data: bytes, piece: int) -> None:
    """Write ``data`` to a pipe in pieces, then close it (EOF for the copy)."""
    view = memoryview(data)
    for at in range(0, len(data), piece):
        os.write(fd, view[at : at + piece])
    os.close(fd)


def drain(peer: socket.socket, into: bytearray, pause: float) -> None:
    """Read to EOF, ``pause`` seconds between reads: a receiver slower than the sender."""
    while chunk := peer.recv(1 << 16):
        into += chunk
        time.sleep(pause)


def pipe_and_socket_threads(
    w: int, data: bytes, piece: int, peer: socket.socket, got: bytearray, pause: float
) -> tuple[threading.Thread, threading.Thread]:
    """(feeder, reader), not started: ``data`` into the pipe's write end ``w`` in pieces,
    and the peer's socket drained into ``got`` with ``pause`` between reads."""
    feeder = threading.Thread(target=feed, args=(w, data, piece))
    reader = threading.Thread(target=drain, args=(peer, got, pause))
    return feeder, reader


async def fin_and_join(client: trio.socket.SocketType, reader: threading.Thread) -> None:
    """Our FIN after the upload, then wait for the peer's reader thread to see it."""
    client.shutdown(socket.SHUT_WR)
    await trio.to_thread.run_sync(reader.join, 30)


def clean_up(
    feeder: threading.Thread, r: int, client: trio.socket.SocketType, peer: socket.socket
) -> None:
    """The end of every pipe-to-socket test, pass or fail: no thread or fd left over."""
    feeder.join(30)
    os.close(r)
    client.close()
    peer.close()


@pytest.mark.parametrize("exclusive", [True, False], ids=["poll-waits", "trio-waits"])
async def test_pipe_to_socket_sender_waits_both_ways_and_moves_everything(
    exclusive: bool,
) -> None:
    """The pipe → socket copy with its waits in poll(2) (one session per process) and in
    Trio (any other caller): a feeder slower than the copy makes it wait for the pipe,
    a receiver slower than the copy makes it wait for the socket; every byte arrives,
    in order, counted once, and the pipe's shared description keeps its flags."""
    client, peer = await connected_pair()
    r, w = os.pipe()
    before = flags(r)
    got = bytearray()
    counted: list[int] = []
    feeder, reader = pipe_and_socket_threads(w, UP, 50_000, peer, got, 0.0005)
    try:
        async with open_stdin(r) as stdin:
            feeder.start()
            reader.start()
            with trio.fail_after(60):
                moved = await copy(
                    stdin,
                    trio.SocketStream(client),
                    source_side=Side("stdin", True),
                    sink_side=Side("net", False),
                    on_chunk=counted.append,
                    exclusive=exclusive,
                )
            await fin_and_join(client, reader)
        assert flags(r) == before
    finally:
        clean_up(feeder, r, client, peer)
    assert moved == sum(counted) == len(UP)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(UP).hexdigest()


async def test_exclusive_sender_still_lets_trio_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting in poll(2) must not starve the rest of the process: with the byte bound
    out of the way, a receiver that keeps taking data (so no poll times out) still lets
    another task run every EXCLUSIVE_YIELD_SECONDS or so (signals, progress, the other
    direction all run in such tasks)."""
    monkeypatch.setattr(zerocopy, "EXCLUSIVE_YIELD_EVERY", 1 << 60)
    data = bytes(16 << 20)
    client, peer = await connected_pair()
    r, w = os.pipe()
    got = bytearray()
    ticks = 0
    feeder, reader = pipe_and_socket_threads(w, data, 1 << 20, peer, got, 0.002)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    try:
        async with open_stdin(r) as stdin, trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.testing.wait_all_tasks_blocked()
            feeder.start()
            reader.start()
            started = time.monotonic()
            with trio.fail_after(120):
                await send_exclusively(stdin, client)
            took = time.monotonic() - started
            nursery.cancel_scope.cancel()
        await fin_and_join(client, reader)
    finally:
        clean_up(feeder, r, client, peer)
    assert len(got) == len(data)
    # 16 MiB at <= 64 KiB per 2 ms takes >= 0.5 s: ~25 yields at 20 ms; none without them.
    assert ticks >= 5, f"the ticker ran {ticks} times in {took:.2f} s"


async def test_exclusive_sender_lets_the_other_direction_read_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Data arriving for the other direction ends the sender's poll: that direction's
    task runs at once, not when the poll times out (two ncat-trio sending to each
    other at once took 1.36x as long without this).  A poll here would last 5 s."""
    monkeypatch.setattr(zerocopy, "EXCLUSIVE_WAIT_MS", 5000)
    monkeypatch.setattr(zerocopy, "EXCLUSIVE_YIELD_SECONDS", 60.0)
    monkeypatch.setattr(zerocopy, "EXCLUSIVE_YIELD_EVERY", 1 << 60)
    data = bytes(32 << 20)
    client, peer = await connected_pair()
    r, w = os.pipe()
    got = bytearray()
    pinged = threading.Event()

    def ping_then_drain() -> None:
        peer.sendall(b"ping")  # for our other direction; no reading until it arrived
        pinged.wait(60)
        drain(peer, got, 0)

    feeder = threading.Thread(target=feed, args=(w, data, 1 << 20))
    reader = threading.Thread(target=ping_then_drain)
    moved = 0
    try:
        async with open_stdin(r) as stdin, trio.open_nursery() as nursery:

            async def upload() -> None:
                nonlocal moved
                moved = await send_exclusively(stdin, client)

            feeder.start()
            reader.start()
            started = trio.current_time()
            nursery.start_soon(upload)
            with trio.fail_after(30):
                await trio.lowlevel.wait_readable(client)  # the upload runs meanwhile
            took = trio.current_time() - started
            assert os.read(client.fileno(), 16) == b"ping"
            pinged.set()
        await fin_and_join(client, reader)
    finally:
        pinged.set()
        clean_up(feeder, r, client, peer)
    assert moved == len(got) == len(data)
    assert took < 3, f"the other direction waited {took:.2f} s"


async def test_exclusive_sender_keeps_polling_after_the_peers_fin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once only the peer's FIN is left (the other direction has read everything), the
    sender stops watching for incoming data: that FIN is always readable, and watching
    it would send every wait back to Trio."""
    trio_waits = 0
    real_wait = trio.lowlevel.wait_writable

    async def counted(fd: int) -> None:
        nonlocal trio_waits
        trio_waits += 1
        await real_wait(fd)

    monkeypatch.setattr(trio.lowlevel, "wait_writable", counted)
    data = bytes(16 << 20)
    client, peer = await connected_pair()
    peer.shutdown(socket.SHUT_WR)  # FIN at once, as `nc -l < /dev/null` does
    assert await client.recv(1) == b""  # the other direction has read it
    r, w = os.pipe()
    got = bytearray()
    feeder, reader = pipe_and_socket_threads(w, data, 1 << 20, peer, got, 0.0005)
    try:
        async with open_stdin(r) as stdin:
            feeder.start()
            reader.start()
            with trio.fail_after(120):
                await send_exclusively(stdin, client)
            await fin_and_join(client, reader)
    finally:
        clean_up(feeder, r, client, peer)
    assert len(got) == len(data)
    # A reader slower than the sender: hundreds of waits, each one a poll that returns
    # within 10 ms.  Only one that timed out would have gone to Trio.
    assert trio_waits < 20, trio_waits


# --- splice_sockets: the relay's socket → pipe → socket -------------------------------

NET_A, NET_B = Side("client", False), Side("target", False)


class Hooks:
    """Records what :func:`splice_sockets` reports; stops when told to."""

    def __init__(self) -> None:
        self.stop = False
        self.held: list[int] = []
        self.in_pipe = 0
        self.chunks: list[int] = []

    def stopped(self) -> bool:
        assert self.in_pipe == 0  # asked only with the pipe empty
        return self.stop

    def hold(self, nbytes: int) -> None:
        assert self.in_pipe == 0  # one chunk in flight at a time
        self.in_pipe = nbytes
        self.held.append(nbytes)

    def release(self, nbytes: int) -> None:
        assert nbytes == self.in_pipe
        self.in_pipe = 0


async def splice(
    source: trio.abc.ReceiveStream, sink: trio.abc.SendStream, hooks: Hooks, chunk: int = 4096
) -> Spliced:
    on_chunk = hooks.chunks.append
    return await splice_sockets(
        source, sink, source_side=NET_A, sink_side=NET_B, chunk_size=chunk, on_chunk=on_chunk,
        hooks=hooks,
    )  # fmt: skip


async def test_splice_sockets_moves_everything_a_chunk_at_a_time() -> None:
    sender, source = await tcp_pair()
    sink, receiver = await tcp_pair()
    data = payload(3, 3 * 1024 * 1024 + 17)
    hooks = Hooks()
    got: list[bytes] = []
    result: list[Spliced] = []

    async def relay() -> None:
        # 10000: the kernel rounds the pipe up to 16 KiB; the splice must not fill it
        result.append(await splice(source, sink, hooks, chunk=10000))
        await sink.send_eof()

    async def send() -> None:
        await sender.send_all(data)
        await sender.send_eof()

    async def receive() -> None:
        got.append(await receive_all(receiver))

    with trio.fail_after(60):
        async with sender, source, sink, receiver, trio.open_nursery() as nursery:
            nursery.start_soon(relay)
            nursery.start_soon(send)
            nursery.start_soon(receive)
    assert got == [data]
    assert result == [Spliced(len(data), at_eof=True)]
    assert hooks.chunks == hooks.held  # each chunk counted once it was delivered
    assert sum(hooks.held) == len(data)
    assert max(hooks.held) <= 10000
    assert hooks.in_pipe == 0


async def test_splice_sockets_takes_nothing_once_stopped() -> None:
    """Stopped while waiting for data (a fault set meanwhile): the bytes that then arrive
    stay in the source socket for the caller's pump; none is held in a pipe."""
    sender, source = await tcp_pair()
    sink, receiver = await tcp_pair()
    hooks = Hooks()
    result: list[Spliced] = []
    done = trio.Event()

    async def relay() -> None:
        result.append(await splice(source, sink, hooks))
        done.set()

    with trio.fail_after(30):
        async with sender, source, sink, receiver, trio.open_nursery() as nursery:
            nursery.start_soon(relay)
            await sender.send_all(b"a" * 1000)
            first = b""
            while len(first) < 1000:
                first += await receiver.receive_some(1000)
            await trio.testing.wait_all_tasks_blocked()  # the splice waits for data
            hooks.stop = True
            await sender.send_all(b"b" * 500)
            await done.wait()
            left = b""
            while len(left) < 500:
                left += await source.receive_some(500)
    assert first == b"a" * 1000
    assert result == [Spliced(1000, at_eof=False)]
    assert left == b"b" * 500


@pytest.mark.parametrize("failure", ["no pipe", "pipe too small"])
async def test_splice_sockets_leaves_it_to_the_pump_without_a_pipe(
    failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of fds, or a pipe that cannot be sized to the chunk (over
    fs.pipe-user-pages-soft): nothing taken, nothing raised; the caller's pump goes on."""
    if failure == "no pipe":

        def no_pipe(flags: int) -> tuple[int, int]:
            raise OSError(errno.EMFILE, "Too many open files")

        monkeypatch.setattr(os, "pipe2", no_pipe)
    else:
        monkeypatch.setattr(zerocopy, "_F_SETPIPE_SZ", -1)  # fcntl answers EINVAL
    sender, source = await tcp_pair()
    sink, receiver = await tcp_pair()
    with trio.fail_after(30):
        async with sender, source, sink, receiver:
            await sender.send_all(b"x" * 100)
            assert await splice(source, sink, Hooks()) == Spliced(0, at_eof=False)
            assert await source.receive_some(100) == b"x" * 100


async def test_splice_sockets_declines_streams_that_are_not_sockets() -> None:
    a, b = trio.testing.memory_stream_pair()
    hooks = Hooks()
    with trio.fail_after(10):
        assert await splice(a, b, hooks) == Spliced(0, at_eof=False)
    assert hooks.held == []


async def test_copy_between_sockets_without_a_pipe_is_out_of_resources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``copy`` (netcat, exec) has no pump to fall back on there: EMFILE for its private
    pipe drops that connection as out of resources, as before the relay shared the loop."""

    def no_pipe(flags: int) -> tuple[int, int]:
        raise OSError(errno.EMFILE, "Too many open files")

    sender, source = await tcp_pair()
    sink, receiver = await tcp_pair()
    with trio.fail_after(30):
        async with sender, source, sink, receiver:
            monkeypatch.setattr(os, "pipe2", no_pipe)
            with pytest.raises(OutOfResources, match="client: too many open files"):
                await copy(source, sink, source_side=NET_A, sink_side=NET_B)

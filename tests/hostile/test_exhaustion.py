"""Exhaustion: out of file descriptors, a thousand idle clients, a peer that never reads.

* EMFILE: the listener (``listen -k``, ``relay``) must never die when ``accept`` runs out
  of fds; it logs once per burst and serves everyone once fds free up.  Deterministic
  version: its soft RLIMIT_NOFILE is lowered (``prlimit``) to exactly the fds it has open,
  clients queue in the backlog, the one log line proves it met EMFILE, then the limit is
  raised and every queued client must be served.  Load version: started under
  ``ulimit -n 64`` with 200 concurrent clients.
* 1000 idle clients through ``relay --idle-timeout 2``: all reclaimed (each client sees
  its connection end), the relay's fds back to idle.
* A peer that never reads (zero window): ``connect`` blocks in send, stays cancellable
  (SIGINT → 130 within 1 s), ``-i`` fires (exit 4) and ``-q`` ends a session whose peer
  stays silent (exit 0); the relay's ``--idle-timeout`` closes such a connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import resource
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import pytest
import trio

from tests.support import (
    NCAT,
    Drain,
    failure_shows_stderr,
    read_line,
    spawn,
    wait_for_port,
)

PAYLOAD = hashlib.sha256(b"exhaustion").digest() * 2048  # 64 KiB


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def lowest_free_fd(pid: int) -> int:
    """A soft limit equal to this makes the process's next open() fail with EMFILE."""
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


def limit_fds(soft: int) -> Callable[[], None]:
    """preexec_fn: ``ulimit -n soft`` (hard limit too) in the child."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, soft))

    return apply


def start(args: list[str], **kwargs: object) -> tuple[subprocess.Popen[bytes], int]:
    proc = spawn([*NCAT, *args], **kwargs)
    assert proc.stderr is not None
    with failure_shows_stderr(proc):
        return proc, wait_for_port(proc.stderr)


def stderr_lines(proc: subprocess.Popen[bytes]) -> list[str]:
    assert proc.stderr is not None
    return proc.stderr.read().decode("utf-8", "replace").splitlines()


async def upload(port: int, data: bytes = PAYLOAD) -> bytes:
    """Connect, send ``data``, FIN, return everything the server sends until its FIN."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        got = bytearray()
        while chunk := await stream.receive_some(1 << 16):
            got += chunk
        return bytes(got)


@asynccontextmanager
async def digest_target() -> AsyncIterator[int]:
    """A relay target: reads everything, answers sha256 of it, closes."""

    async def handle(stream: trio.SocketStream) -> None:
        digest = hashlib.sha256()
        async with stream:
            try:
                while chunk := await stream.receive_some(1 << 16):
                    digest.update(chunk)
                await stream.send_all(digest.digest())
            except trio.BrokenResourceError:
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@contextmanager
def soft_limit(pid: int, soft: int) -> Iterator[None]:
    """Lower ``pid``'s soft fd limit for the block, then put it back."""
    old_soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (old_soft, hard))


def line_arrives(proc: subprocess.Popen[bytes], needle: str) -> Callable[[], str]:
    def wait() -> str:
        assert proc.stderr is not None
        while True:
            line = read_line(proc.stderr, 15).decode()
            if needle in line:
                return line

    return wait


# --- EMFILE at accept, deterministically ---------------------------------------


async def exhaust_then_serve(
    proc: subprocess.Popen[bytes], port: int, needle: str, clients: int = 20
) -> list[bytes]:
    """Queue ``clients`` while ``proc`` has no fd to spare; wait for its log line
    (``needle``); check nobody was served; lift the limit; return what each got."""
    results: list[bytes] = []

    async def one() -> None:
        results.append(await upload(port))

    with failure_shows_stderr(proc), trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            with soft_limit(proc.pid, lowest_free_fd(proc.pid)):
                for _ in range(clients):
                    nursery.start_soon(one)
                line = await trio.to_thread.run_sync(line_arrives(proc, needle))
                assert "too many open files" in line.lower()
                assert results == []  # they wait in the backlog while the limit holds
                assert proc.poll() is None
    return results


async def test_listen_k_waits_out_emfile_and_serves_the_queue() -> None:
    proc, port = start(["listen", "-k", "-d", "127.0.0.1", "0"])
    drain = Drain(proc.stdout, keep=False)  # type: ignore[arg-type]
    results = await exhaust_then_serve(proc, port, "accept")
    assert results == [b""] * 20  # each got the listener's FIN after its own
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 143
    drain.wait()
    assert drain.count == 20 * len(PAYLOAD)
    rest = stderr_lines(proc)
    assert not any("accept" in line for line in rest)  # once per burst: the line read above
    assert not any("Traceback" in line for line in rest)


async def test_relay_waits_out_emfile_and_serves_the_queue() -> None:
    async with digest_target() as target:
        proc, port = start(["relay", "127.0.0.1:0", f"127.0.0.1:{target}"])
        results = await exhaust_then_serve(proc, port, "accept")
        assert results == [hashlib.sha256(PAYLOAD).digest()] * 20
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(proc.wait, 10) == 143
    rest = stderr_lines(proc)
    assert not any("accept" in line for line in rest)
    assert not any("Traceback" in line for line in rest)


# --- ulimit -n 64 and 200 clients ------------------------------------------------

LOW_LIMIT = 64
CROWD = 200


async def crowd(port: int) -> list[bytes]:
    results: list[bytes] = []

    async def one() -> None:
        results.append(await upload(port))

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            for _ in range(CROWD):
                nursery.start_soon(one)
    return results


def accept_lines(lines: list[str]) -> int:
    return sum("accept" in line and "too many open files" in line.lower() for line in lines)


@pytest.mark.slow
async def test_listen_k_under_ulimit_64_serves_200_clients() -> None:
    proc, port = start(["listen", "-k", "-d", "127.0.0.1", "0"], preexec_fn=limit_fds(LOW_LIMIT))
    drain = Drain(proc.stdout, keep=False)  # type: ignore[arg-type]
    assert await crowd(port) == [b""] * CROWD
    assert proc.poll() is None  # still serving
    assert await upload(port) == b""
    proc.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(proc.wait, 10) == 143
    drain.wait()
    assert drain.count == (CROWD + 1) * len(PAYLOAD)
    lines = stderr_lines(proc)
    assert not any("Traceback" in line for line in lines)
    assert accept_lines(lines) <= CROWD // 10  # once per burst, not once per retry


@pytest.mark.slow
async def test_relay_under_ulimit_64_serves_200_clients() -> None:
    async with digest_target() as target:
        proc, port = start(
            ["relay", "127.0.0.1:0", f"127.0.0.1:{target}"], preexec_fn=limit_fds(LOW_LIMIT)
        )
        want = hashlib.sha256(PAYLOAD).digest()
        assert await crowd(port) == [want] * CROWD
        assert proc.poll() is None
        assert await upload(port) == want
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(proc.wait, 10) == 143
    lines = stderr_lines(proc)
    assert not any("Traceback" in line for line in lines), lines
    assert accept_lines(lines) <= CROWD // 10


# --- 1000 idle clients, --idle-timeout 2 ---------------------------------------------

IDLE_CLIENTS = int(os.environ.get("NCAT_IDLE_CLIENTS", "1000"))


def client_budget(wanted: int) -> int:
    """How many idle clients this process can hold (two fds each: client + target side);
    raises our soft fd limit towards the hard one first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * wanted + 200
    if soft < need and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return min(wanted, (soft - 200) // 2)


def settled_fds(pid: int, want: int, timeout: float = 20.0) -> int:
    """Poll /proc until ``pid`` is back to ``want`` fds (or the timeout: a leak)."""
    deadline = time.monotonic() + timeout
    while (count := fds_of(pid)) > want and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


@pytest.mark.slow
async def test_relay_reclaims_1000_idle_clients() -> None:
    count = client_budget(IDLE_CLIENTS)
    if count < IDLE_CLIENTS:
        pytest.skip(f"the fd limit here allows {count} idle clients, not {IDLE_CLIENTS}")
    async with digest_target() as target:
        proc, port = start(
            ["relay", "--idle-timeout", "2", "-v", "127.0.0.1:0", f"127.0.0.1:{target}"]
        )
        idle = fds_of(proc.pid)
        log = Drain(proc.stderr)  # type: ignore[arg-type]  # 1000 log lines: keep reading
        ended: list[bytes] = []

        async def idle_client() -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                try:  # send nothing, read: the relay must end it (FIN) after 2 s idle
                    ended.append(await stream.receive_some(1))
                except trio.BrokenResourceError:
                    ended.append(b"RST")

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(idle_client)
        assert ended == [b""] * count  # every one reclaimed, none left hanging
        assert await trio.to_thread.run_sync(settled_fds, proc.pid, idle) == idle
        assert await upload(port) == hashlib.sha256(PAYLOAD).digest()  # still serving
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(proc.wait, 10) == 143
    lines = log.wait().decode().splitlines()
    assert sum("idle-timeout" in line for line in lines) == count
    assert not any("Traceback" in line for line in lines)


# --- a peer that never reads ------------------------------------------------------

BIG = 64 << 20


def feed_forever(fd: int) -> None:
    """Write zeros to a pipe until the reader goes away (a thread)."""
    block = bytes(1 << 20)
    try:
        while True:
            os.write(fd, block)
    except OSError:
        pass
    finally:
        os.close(fd)


def inq(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue (SIOCINQ)."""
    (count,) = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))
    return int(count)


@contextmanager
def silent_peer() -> Iterator[tuple[int, Callable[[], socket.socket]]]:
    """A server that accepts and then never reads nor writes (a zero window)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(15)
        taken: list[socket.socket] = []

        def accept() -> socket.socket:
            conn, _ = server.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            taken.append(conn)
            return conn

        try:
            yield server.getsockname()[1], accept
        finally:
            for conn in taken:
                conn.close()


def connect_with_endless_stdin(
    args: list[str], port: int
) -> tuple[subprocess.Popen[bytes], threading.Thread]:
    read_end, write_end = os.pipe()
    proc = spawn([*NCAT, *args, "127.0.0.1", str(port)], stdin=read_end)
    os.close(read_end)
    feeder = threading.Thread(target=feed_forever, args=(write_end,), daemon=True)
    feeder.start()
    return proc, feeder


def wait_until_stuck(conn: socket.socket) -> None:
    """Data arrived and the queue stopped growing: the sender is blocked in send."""
    deadline = time.monotonic() + 15
    last = -1
    while time.monotonic() < deadline:
        now = inq(conn)
        if now > 0 and now == last:
            return
        last = now
        time.sleep(0.1)  # polling the kernel's queue, not waiting for the program
    raise AssertionError(f"the receive queue never settled ({last} bytes)")


def test_sender_to_a_peer_that_never_reads_stays_cancellable() -> None:
    with silent_peer() as (port, accept):
        proc, _feeder = connect_with_endless_stdin(["connect", "-v"], port)
        conn = accept()
        wait_until_stuck(conn)
        assert proc.poll() is None  # blocked, not failed
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
        assert time.monotonic() - sent < 1.0
    lines = stderr_lines(proc)
    assert lines[-1] == "ncat-trio: interrupted by SIGINT"
    assert not any("Traceback" in line for line in lines)


def test_idle_timeout_fires_while_blocked_on_a_peer_that_never_reads() -> None:
    with silent_peer() as (port, accept):
        proc, _feeder = connect_with_endless_stdin(["connect", "-i", "1"], port)
        accept()
        assert proc.wait(15) == 4  # -i: nothing moved for 1 s while blocked in send
    lines = stderr_lines(proc)
    assert len(lines) == 1
    assert "idle for 1 s" in lines[0]


def test_linger_ends_a_session_whose_peer_stays_silent() -> None:
    with silent_peer() as (port, accept):
        proc = spawn([*NCAT, "connect", "-q", "0.5", "127.0.0.1", str(port)], stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(b"hello\n")
        proc.stdin.close()  # stdin EOF: FIN, then wait at most 0.5 s for the peer's EOF
        conn = accept()
        assert proc.wait(15) == 0
        assert conn.recv(100) == b"hello\n"


async def test_relay_idle_timeout_fires_when_the_client_never_reads() -> None:
    async def flood(stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                while True:
                    await stream.send_all(bytes(1 << 20))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, flood, 0, host="127.0.0.1"))
        target = listeners[0].socket.getsockname()[1]
        proc, port = start(
            ["relay", "--idle-timeout", "1", "-v", "127.0.0.1:0", f"127.0.0.1:{target}"]
        )
        client = await trio.open_tcp_stream("127.0.0.1", port)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        line = await trio.to_thread.run_sync(line_arrives(proc, "idle-timeout"))
        assert "no data either way for 1 s" in line
        assert proc.poll() is None  # the relay goes on
        await trio.aclose_forcefully(client)
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(proc.wait, 10) == 143
        nursery.cancel_scope.cancel()

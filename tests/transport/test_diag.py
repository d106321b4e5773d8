"""Diagnostics never stop the program: a stderr pipe nobody reads costs log lines, not service.

* :class:`ncat_trio.diag.StderrWriter` inside Trio: lines that do not fit in the pipe
  wait in a bounded queue; beyond it the oldest are dropped and counted; a system task
  writes the queue out as soon as the reader catches up, the gap marked by one
  ``N log lines dropped`` line.  The inherited description is never made non-blocking.
* End to end: ``relay -v`` and ``listen -k -v`` whose stderr is a 4 KiB pipe that
  nobody reads serve 1 000 connections each; every log line is then either on stderr or
  counted as dropped, and the last line is still ``interrupted by SIGTERM``.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

from ncat_trio import diag
from tests.support import NCAT, Drain, accept_loop, finish, reaped, wait_for_port

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
DROPPED = re.compile(rb"^ncat-trio: (\d+) log lines dropped \(stderr was full\)$")


def small_pipe(size: int = 4096) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, size)
    return read_end, write_end


def lines(count: int) -> list[bytes]:
    return [f"ncat-trio: log line {i:05d} {'x' * 40}\n".encode() for i in range(count)]


def read_available(fd: int) -> bytes:
    """Everything in the pipe now, without blocking (our own read end: ours to set)."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)


def accounted(text: bytes, sent: list[bytes]) -> tuple[list[bytes], int]:
    """(the log lines that arrived, lines reported dropped), checking that they are in
    order and that each gap is exactly as long as the dropped count next to it."""
    arrived, dropped, index = [], 0, 0
    for line in text.splitlines(keepends=True):
        match = DROPPED.match(line.rstrip(b"\n"))
        if match:
            dropped += int(match[1])
            index += int(match[1])
            continue
        assert line == sent[index], f"line {index}: {line!r}"
        arrived.append(line)
        index += 1
    assert index == len(sent)
    return arrived, dropped


async def test_full_pipe_queues_then_drops_oldest_then_drains_without_a_writer() -> None:
    read_end, write_end = small_pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    try:
        writer = diag.StderrWriter(write_end, limit=2048)
        assert writer.usable
        sent = lines(400)  # 400 x 64 B = 25 KiB: 4 KiB pipe + 2 KiB queue overflow
        for line in sent:
            writer.write_nowait(line)  # a blocking write here would hang the test
        stats = writer.statistics()
        assert 0 < stats.bytes_queued <= 2048 + len(sent[0])
        assert stats.lines_dropped_unreported > 0
        assert fcntl.fcntl(write_end, fcntl.F_GETFL) == flags  # inherited: untouched

        received = b""
        with trio.fail_after(10):  # the system task writes the rest as we read
            while not received.endswith(sent[-1]):
                await trio.lowlevel.wait_readable(read_end)
                received += read_available(read_end)
        arrived, dropped = accounted(received, sent)
        assert dropped == stats.lines_dropped_unreported > 0
        assert arrived[-1] == sent[-1]  # the newest line (a final error, say) is kept
        assert writer.statistics() == diag.StderrStatistics(0, 0, dropped, 0)
        writer.close()
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_lines_that_fit_are_written_at_once_in_order() -> None:
    read_end, write_end = small_pipe()
    try:
        writer = diag.StderrWriter(write_end)
        sent = lines(20)
        for line in sent:
            writer.write_nowait(line)
        assert writer.statistics().bytes_queued == 0
        assert read_available(read_end) == b"".join(sent)
        writer.close()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_flush_blocking_writes_the_queue_and_the_gap_outside_trio() -> None:
    read_end, write_end = small_pipe()
    try:
        writer = diag.StderrWriter(write_end, limit=2048)
        sent = lines(200)
        for line in sent:
            writer.write_nowait(line)  # outside Trio: no drain task, nothing blocks
        assert writer.statistics().lines_dropped_unreported > 0
        reader = Drain(os.fdopen(os.dup(read_end), "rb"))
        flusher = threading.Thread(target=writer.flush_blocking, daemon=True)
        flusher.start()
        flusher.join(10)
        assert not flusher.is_alive()
        writer.close()
        os.close(write_end)
        write_end = -1
        accounted(reader.wait(10), sent)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


async def test_a_socket_stderr_uses_msg_dontwait_and_keeps_its_blocking_flag() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        assert theirs.getblocking()
        writer = diag.StderrWriter(theirs.fileno(), limit=2048)
        assert writer.usable
        sent = lines(2000)
        for line in sent:
            writer.write_nowait(line)
        assert writer.statistics().lines_dropped_unreported > 0
        assert theirs.getblocking()
        assert os.get_blocking(theirs.fileno())  # O_NONBLOCK on the shared description: off
        received = b""
        ours.setblocking(False)
        with trio.fail_after(10):
            while not received.endswith(sent[-1]):
                await trio.lowlevel.wait_readable(ours)
                received += ours.recv(1 << 16)
        accounted(received, sent)
        writer.close()


def test_dev_null_is_not_taken_over() -> None:
    with open(os.devnull, "wb") as devnull:
        writer = diag.StderrWriter(devnull.fileno())
        assert not writer.usable
        writer.close()


async def test_a_pipe_without_a_reader_drops_lines_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        writer = diag.StderrWriter(write_end)
        for line in lines(10):
            writer.write_nowait(line)  # EPIPE: stderr is gone, not a second failure
        assert writer.statistics().bytes_queued == 0
        writer.close()
    finally:
        os.close(write_end)


# --- end to end -------------------------------------------------------------------


@contextmanager
def echo_server() -> Iterator[int]:
    def echo(conn: socket.socket, _stop: threading.Event) -> None:
        with conn:
            conn.settimeout(10)
            while data := conn.recv(1 << 16):
                conn.sendall(data)

    with accept_loop(echo) as port:
        yield port


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(1 << 16):
            reply += chunk
        return reply


def run_with_unread_stderr(
    args: list[str], connections: int, talk: Callable[[int, int], None], **kwargs: Any
) -> list[bytes]:
    """Start ncat-trio with stderr on a 4 KiB pipe, read only its readiness line, make
    ``connections`` connections through ``talk(port, i)``, then read stderr, SIGTERM."""
    read_end, write_end = small_pipe()
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen([*NCAT, *args], stderr=write_end, **kwargs)
    os.close(write_end)
    with reaped(proc), os.fdopen(read_end, "rb", buffering=0) as err:
        port = wait_for_port(err)  # then nobody reads stderr
        for i in range(connections):
            talk(port, i)
        drain = Drain(os.fdopen(os.dup(read_end), "rb"))
        proc.send_signal(signal.SIGTERM)
        assert finish(proc, 30) == 143
        output = drain.wait(30)
    assert b"Traceback" not in output
    text = output.splitlines()
    assert text[-1] == b"ncat-trio: interrupted by SIGTERM"
    assert all(line.startswith(b"ncat-trio: ") for line in text)
    return text


def dropped_count(text: list[bytes]) -> int:
    return sum(int(m[1]) for line in text if (m := DROPPED.match(line)))


def test_relay_with_unread_verbose_stderr_keeps_forwarding() -> None:
    with echo_server() as target:

        def talk(port: int, i: int) -> None:
            payload = f"connection {i}".encode()
            assert exchange(port, payload) == payload

        text = run_with_unread_stderr(
            ["relay", "-v", "--drain-timeout", "1", "127.0.0.1:0", f"127.0.0.1:{target}"],
            1000,
            talk,
        )
    logged = [line for line in text if b" -> 127.0.0.1:" in line]
    dropped = dropped_count(text)
    assert dropped > 0  # the pipe did fill: the test tested something
    assert len(logged) + dropped == 1000  # every connection line: written or counted


def test_listen_k_with_unread_verbose_stderr_keeps_serving() -> None:
    stdout_r, stdout_w = os.pipe()
    received = Drain(os.fdopen(stdout_r, "rb"), keep=False)

    def talk(port: int, i: int) -> None:
        assert exchange(port, f"connection {i:04d}\n".encode()) == b""

    try:
        text = run_with_unread_stderr(
            ["listen", "-k", "-v", "127.0.0.1", "0"], 1000, talk, stdout=stdout_w
        )
    finally:
        os.close(stdout_w)
    received.wait(10)
    assert received.count == 1000 * len(b"connection 0000\n")
    per_connection = [
        line
        for line in text
        if line.startswith(b"ncat-trio: connection from ") or b": 0 bytes sent, 16 received" in line
    ]
    assert len(per_connection) + dropped_count(text) == 2000
    assert dropped_count(text) > 0


def test_say_keeps_peer_text_on_one_line_without_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reason phrase or name from a peer (NUL, newline, an ANSI escape) stays one line."""
    diag.say("transfer refused: disk\nfull\x00\x1b[2J\u202e")
    assert (
        capsys.readouterr().err
        == "ncat-trio: transfer refused: disk\\x0afull\\x00\\x1b[2J\\u202e\n"
    )

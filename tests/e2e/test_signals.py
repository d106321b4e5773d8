"""Ctrl-C and SIGTERM while blocked: exit 130/143 promptly, one line, stdio untouched.

Each test blocks ncat-trio somewhere different (accept, a TTY read, a pipe read, a
write to a stdout pipe nobody reads), waits for a line on stderr proving it got there,
delivers the signal, and checks the exit code, the single diagnostic line, and that
the open file descriptions it shares with the test never gained O_NONBLOCK.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support import NCAT, read_line, send_until_stopped, spawn_listener

DEADLINE = 1.0  # the bound on exiting after a signal


def flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


def signal_and_wait(proc: subprocess.Popen[bytes], signum: int) -> tuple[int, float, bytes]:
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        _out, rest = proc.communicate(timeout=10)  # also closes our ends of its pipes
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("no exit within 10 s of the signal") from None
    elapsed = time.monotonic() - sent
    return proc.returncode, elapsed, rest or b""


def assert_one_clean_line(err: bytes, signame: str) -> None:
    assert b"Traceback" not in err, err
    assert err == f"ncat-trio: interrupted by {signame}\n".encode(), err


def assert_ends_promptly(proc: subprocess.Popen[bytes], signum: signal.Signals, code: int) -> None:
    """Deliver ``signum``: exit ``code`` within DEADLINE, one clean line on stderr."""
    got, elapsed, err = signal_and_wait(proc, signum)
    assert got == code, err
    assert elapsed < DEADLINE
    assert_one_clean_line(err, signum.name)


def connected_ncat(port: int, stdin: int) -> subprocess.Popen[bytes]:
    """``ncat-trio -v 127.0.0.1 PORT`` reading ``stdin``, once it says it is connected."""
    proc = subprocess.Popen(
        [*NCAT, "-v", "127.0.0.1", str(port)],
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    assert b"connected to" in read_line(proc.stderr)
    return proc


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A loopback listener that accepts (via the backlog) but never reads or writes."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_accepting(signum: signal.Signals, code: int) -> None:
    proc, _port = spawn_listener(["listen", "127.0.0.1", "0"])
    assert_ends_promptly(proc, signum, code)


def test_a_signal_ignored_at_start_stays_ignored() -> None:
    """``nohup ncat-trio listen``: SIGHUP was ignored when it started, so it stays ignored
    (the runner takes only the signals it finds live); a SIGTERM after it ends the run."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited across exec, as nohup
    try:
        proc, _port = spawn_listener(["listen", "127.0.0.1", "0"])
    finally:
        signal.signal(signal.SIGHUP, previous)
    # Were SIGHUP watched, it would be pending first and win: exit 129, "SIGHUP" in the line.
    proc.send_signal(signal.SIGHUP)
    assert_ends_promptly(proc, signal.SIGTERM, 143)


def signal_leaves_stdin_blocking(
    silent_server: socket.socket, stdin: int, signum: signal.Signals, code: int
) -> None:
    """ncat-trio connected, reading ``stdin`` (blocking), is signalled: while it is blocked
    reading and after it has ended, the file description we share is unchanged."""
    before = flags(stdin)
    assert not before & os.O_NONBLOCK
    proc = connected_ncat(silent_server.getsockname()[1], stdin)
    assert flags(stdin) == before
    assert not flags(stdin) & os.O_NONBLOCK
    assert_ends_promptly(proc, signum, code)
    assert flags(stdin) == before


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_reading_a_shared_stdin_pipe(
    signum: signal.Signals, code: int, silent_server: socket.socket
) -> None:
    read_end, write_end = os.pipe()
    try:
        # a concurrent reader of this pipe would not get EAGAIN
        signal_leaves_stdin_blocking(silent_server, read_end, signum, code)
        # The pipe still works for the next reader.
        os.write(write_end, b"still here")
        assert os.read(read_end, 100) == b"still here"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_sigint_while_writing_to_a_stdout_pipe_nobody_reads() -> None:
    read_end, write_end = os.pipe()
    before = flags(write_end)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [*NCAT, "-v", "-d", "127.0.0.1", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
        try:
            conn, _ = server.accept()
            with conn:
                # Fill the pipe (64 KiB) and both socket buffers until our send is stuck.
                conn.settimeout(1.0)
                sent = send_until_stopped(conn, 256 << 20, TimeoutError)
                assert sent > 1 << 20  # stuck: ncat-trio is blocked writing stdout
                assert flags(write_end) == before
                got, elapsed, err = signal_and_wait(proc, signal.SIGINT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(read_end)
            os.close(write_end)
    assert got == 130
    assert elapsed < DEADLINE
    assert b"connected to" in err or err.startswith(b"ncat-trio: interrupted")
    assert err.splitlines()[-1] == b"ncat-trio: interrupted by SIGINT"
    assert b"Traceback" not in err


def test_sigterm_while_reading_a_tty_leaves_it_blocking(silent_server: socket.socket) -> None:
    master, slave = os.openpty()
    try:
        signal_leaves_stdin_blocking(silent_server, slave, signal.SIGTERM, 143)
    finally:
        os.close(master)
        os.close(slave)


def test_closed_stdio_fds_at_start_are_handled() -> None:
    """Started with fds 0 and 1 closed: no crash, and Trio's own fds don't land on them."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            ["bash", "-c", 'exec "$@" <&- >&-', "-", *NCAT, "127.0.0.1", str(port)],
            stderr=subprocess.PIPE,
        )
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"to a closed stdout")
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(10) == b""  # stdin was /dev/null: immediate FIN
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert err == b""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_sending_to_a_peer_that_never_reads(
    signum: signal.Signals, code: int, silent_server: socket.socket
) -> None:
    """The single-session sender waits in poll(2) (transport/zerocopy.py, ``exclusive``):
    a signal still ends it within the bound, and the stdin pipe keeps its flags."""
    read_end, write_end = os.pipe()
    before = flags(read_end)
    port = silent_server.getsockname()[1]
    try:
        proc = connected_ncat(port, read_end)
        # Feed stdin until it stays full for a second: the socket buffers are full and
        # ncat-trio is waiting to send.  Only our write end is non-blocking.
        os.set_blocking(write_end, False)
        blob = b"z" * 65536
        fed = 0
        while select.select([], [write_end], [], 1.0)[1] and fed < 1 << 30:
            with contextlib.suppress(BlockingIOError):
                fed += os.write(write_end, blob)
        assert fed > 1 << 20, fed  # more than the pipe holds: ncat-trio sent some
        assert flags(read_end) == before
        assert_ends_promptly(proc, signum, code)
        assert flags(read_end) == before
    finally:
        os.close(read_end)
        os.close(write_end)

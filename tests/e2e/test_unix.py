"""-U PATH: Unix stream and datagram sockets; the listener's socket file lifecycle.

The listener removes a stale socket file (nobody serves it) and nothing else: a live
socket is "in use", a regular file is refused, and on exit it removes its own file.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from ..support import (
    NCAT,
    Drain,
    Feed,
    finish,
    one_error_line,
    read_line,
    receive_all,
    sha256,
    spawn,
)


def start_unix_listener(
    path: str, *flags: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    proc = spawn([*NCAT, "listen", *flags, "-U", path], stdin=stdin)
    assert proc.stderr is not None
    line = read_line(proc.stderr)
    assert line.startswith(f"ncat-trio: listening on {path}".encode()), line
    return proc


def test_stream_both_ways_and_the_file_is_removed_on_exit(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    up, down = os.urandom(2 << 20), os.urandom(2 << 20)
    listener = start_unix_listener(path, stdin=subprocess.PIPE)
    assert listener.stdin is not None
    assert listener.stdout is not None
    feed, received = Feed(listener.stdin, down), Drain(listener.stdout)
    client = subprocess.run(
        [*NCAT, "-U", path], input=up, capture_output=True, timeout=30, check=False
    )
    feed.wait()
    assert sha256(received.wait()) == sha256(up)
    assert finish(listener) == 0
    assert (client.returncode, client.stderr) == (0, b"")
    assert sha256(client.stdout) == sha256(down)
    assert not os.path.exists(path)


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)  # closed without unlinking: a leftover nobody serves
    assert os.path.exists(path)
    listener = start_unix_listener(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(path)
        client.sendall(b"fresh\n")
        client.shutdown(socket.SHUT_WR)
        assert receive_all(client) == b""
    assert finish(listener) == 0
    assert listener.stdout is not None
    assert listener.stdout.read() == b"fresh\n"


def test_a_live_socket_is_not_taken_over(tmp_path: Path) -> None:
    path = str(tmp_path / "live.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(path)
        live.listen(1)
        result = subprocess.run(
            [*NCAT, "listen", "-U", path], capture_output=True, timeout=20, check=False
        )
        assert os.path.exists(path)
    assert result.returncode == 1
    assert "in use" in one_error_line(result.stderr)


def test_a_regular_file_is_never_removed(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    result = subprocess.run(
        [*NCAT, "listen", "-U", str(path)], capture_output=True, timeout=20, check=False
    )
    assert result.returncode == 1
    assert "not a socket" in one_error_line(result.stderr)
    assert path.read_text() == "keep me"


@pytest.mark.parametrize("udp", [[], ["-u"]], ids=["stream", "datagram"])
def test_connecting_to_a_missing_path_is_a_clear_error(udp: list[str], tmp_path: Path) -> None:
    path = str(tmp_path / "nobody.sock")
    result = subprocess.run(
        [*NCAT, "connect", *udp, "-U", path], capture_output=True, timeout=20, check=False
    )
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert path in line
    assert "no such file" in line.lower()


def test_datagram_exchange_both_ways(tmp_path: Path) -> None:
    path = str(tmp_path / "d.sock")
    listener = start_unix_listener(path, "-u", stdin=subprocess.PIPE)
    assert listener.stdin is not None
    assert listener.stdout is not None
    client = spawn([*NCAT, "connect", "-u", "-U", path], stdin=subprocess.PIPE)
    assert client.stdin is not None
    assert client.stdout is not None
    client.stdin.write(b"ping\n")
    client.stdin.flush()
    assert read_line(listener.stdout) == b"ping\n"
    listener.stdin.write(b"pong\n")  # to the (abstract) address the client bound
    listener.stdin.flush()
    assert read_line(client.stdout) == b"pong\n"
    client.terminate()
    listener.terminate()
    assert (finish(client, 10), finish(listener, 10)) == (143, 143)
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "args",
    [
        ["connect", "-U", "/tmp/x.sock", "127.0.0.1", "80"],
        ["listen", "-U", "/tmp/x.sock", "0"],
        ["connect", "-U", "/tmp/x.sock", "--tos", "lowdelay"],
        ["connect", "-U", ""],
    ],
    ids=["connect-host-port", "listen-port", "tos", "empty"],
)
def test_unix_usage_errors(args: list[str]) -> None:
    result = subprocess.run([*NCAT, *args], capture_output=True, timeout=20, check=False)
    assert result.returncode == 2
    one_error_line(result.stderr)

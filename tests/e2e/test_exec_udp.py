"""``-u`` with ``-e/-c``: a child attached to a datagram peer (as ``ncat -u -e``).

Listen locks onto the first sender and then starts the child; each datagram goes to
the child's stdin, each read from its stdout comes back as one datagram; the session
ends when the child is done (exit 0) or at ``-i``; signals stop the child too.  Python
UDP sockets are the peers; every wait is bounded (socket timeouts, ``finish``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from ..support import (
    NCAT,
    finish,
    one_error_line,
    pid_gone,
    read_line,
    spawn,
    wait_for_port,
)

# A line-by-line conversation that ends itself: the same script as the interop test.
CONVERSATION = (
    'while read line; do [ "$line" = quit ] && { echo bye; exit 3; }; echo "got $line"; done'
)


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    return sock


def udp_listener(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = spawn([*NCAT, "listen", "-u", *args, "127.0.0.1", "0"])
    assert proc.stderr is not None
    return proc, wait_for_port(proc.stderr)


def stderr_lines(proc: subprocess.Popen[bytes]) -> list[str]:
    assert proc.stderr is not None
    return proc.stderr.read().decode().splitlines()


def test_echo_through_cat_one_datagram_each_and_only_the_first_sender() -> None:
    listener, port = udp_listener("-v", "-i", "1", "-e", "cat")
    with udp_socket() as peer, udp_socket() as stranger:
        peer.sendto(b"one", ("127.0.0.1", port))
        assert peer.recv(65536) == b"one"
        stranger.sendto(b"not you", ("127.0.0.1", port))  # dropped: locked onto peer
        peer.sendto(b"two", ("127.0.0.1", port))
        assert peer.recv(65536) == b"two"
        big = os.urandom(60_000)  # cat reads a pipe's worth at once: one datagram back
        peer.sendto(big, ("127.0.0.1", port))
        assert peer.recv(65536) == big
        assert finish(listener, 20) == 0  # -i 1: then cat reads EOF and exits
        stranger.settimeout(0.2)
        with pytest.raises(TimeoutError):
            stranger.recv(65536)
    lines = stderr_lines(listener)
    assert lines[0].startswith("ncat-trio: datagram from 127.0.0.1:")  # after "listening on"
    assert lines[0].endswith(": starting cat")
    assert lines[1:] == [
        "ncat-trio: idle for 1 s: session over",
        "ncat-trio: cat: exit status 0",
        "ncat-trio: 60006 bytes sent, 60006 received",
    ]


def test_the_child_ending_ends_the_session_with_0_and_sees_ncat_variables() -> None:
    listener, port = udp_listener(
        "-v", "-c", 'read line; echo "$line $NCAT_PROTO $NCAT_REMOTE_ADDR $NCAT_REMOTE_PORT"'
    )
    with udp_socket() as peer:
        peer.sendto(b"hello\n", ("127.0.0.1", port))
        reply = peer.recv(65536)
        assert reply == f"hello UDP 127.0.0.1 {peer.getsockname()[1]}\n".encode()
        assert finish(listener, 20) == 0  # no -i: the child's exit ended it
    assert "ncat-trio: sh -c: exit status 0" in stderr_lines(listener)


def test_our_udp_client_through_our_exec_listener() -> None:
    listener, port = udp_listener("-i", "2", "-c", CONVERSATION)
    client = spawn(
        [*NCAT, "connect", "-u", "-q", "0", "127.0.0.1", str(port)], stdin=subprocess.PIPE
    )
    assert client.stdin is not None
    assert client.stdout is not None
    for line, answer in ((b"one\n", b"got one\n"), (b"two\n", b"got two\n"), (b"quit\n", b"bye\n")):
        client.stdin.write(line)
        client.stdin.flush()
        assert read_line(client.stdout) == answer
    client.stdin.close()
    assert finish(listener, 20) == 0  # the script exited (status 3: logged only with -v)
    assert finish(client, 20) == 0  # -q 0: done at its stdin's EOF


def test_connect_with_exec_sends_the_childs_output_to_the_target() -> None:
    with udp_socket() as server:
        client = spawn(
            [*NCAT, "connect", "-u", "-i", "1", "-c", "echo hello; cat",
             "127.0.0.1", str(server.getsockname()[1])]
        )  # fmt: skip
        first, address = server.recvfrom(65536)
        assert first == b"hello\n"
        server.sendto(b"ping", address)
        assert server.recv(65536) == b"ping"  # through the child's cat
        assert finish(client, 20) == 0
    assert stderr_lines(client) == []


def test_a_signal_stops_the_child_too() -> None:
    listener, port = udp_listener("-c", "echo $$; exec sleep 60")
    with udp_socket() as peer:
        peer.sendto(b"start", ("127.0.0.1", port))
        pid = int(peer.recv(65536))
        assert not pid_gone(pid)
        listener.send_signal(signal.SIGTERM)
        assert finish(listener, 20) == 143
    assert pid_gone(pid)


def test_a_child_that_stops_reading_has_the_rest_discarded() -> None:
    """The session goes on (its output still arrives), as TCP exec does."""
    listener, port = udp_listener(
        "-i", "1", "-c", "exec 0<&-; echo closed; sleep 0.5; echo still here"
    )
    with udp_socket() as peer:
        peer.sendto(b"first", ("127.0.0.1", port))
        assert peer.recv(65536) == b"closed\n"
        peer.sendto(b"into a closed pipe", ("127.0.0.1", port))
        assert peer.recv(65536) == b"still here\n"
        assert finish(listener, 20) == 0
    assert stderr_lines(listener) == []


def test_keep_open_with_udp_exec_is_a_usage_error() -> None:
    done = subprocess.run(
        [*NCAT, "listen", "-u", "-k", "-e", "cat", "0"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "-k with -u -e/-c" in one_error_line(done.stderr)

"""-u: one datagram per stdin read, listen locks onto the first peer (or, with -k,
replies to the last), -i/-q end a session, oversize datagrams are reported.

End to end over loopback with ``python -m ncat_trio`` and Python UDP sockets as peers;
every wait is bounded (socket timeouts, readiness lines, ``finish``).
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from ..support import NCAT, finish, one_error_line, read_line, spawn, spawn_listener


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(10)
    return sock


def test_connect_sends_one_datagram_per_stdin_write_and_prints_replies() -> None:
    with udp_socket() as server:
        client = spawn(
            [*NCAT, "connect", "-u", "127.0.0.1", str(server.getsockname()[1])],
            stdin=subprocess.PIPE,
        )
        assert client.stdin is not None
        assert client.stdout is not None
        client.stdin.write(b"one\n")
        client.stdin.flush()
        first, address = server.recvfrom(65536)
        client.stdin.write(b"two\n")
        client.stdin.flush()
        second, _ = server.recvfrom(65536)
        assert (first, second) == (b"one\n", b"two\n")  # two writes, two datagrams
        server.sendto(b"reply\n", address)
        assert read_line(client.stdout) == b"reply\n"
        client.send_signal(signal.SIGINT)
        assert finish(client, 10) == 130


def test_linger_after_stdin_eof_ends_the_session_with_0() -> None:
    with udp_socket() as server:
        result = subprocess.run(
            [*NCAT, "connect", "-u", "-q", "0.2", "127.0.0.1", str(server.getsockname()[1])],
            input=b"ping\n",
            capture_output=True,
            timeout=20,
            check=False,
        )
        assert server.recv(65536) == b"ping\n"
    assert (result.returncode, result.stderr) == (0, b"")


def test_port_unreachable_is_a_connect_error() -> None:
    """An ICMP port unreachable (nobody bound there) comes back on the connected socket."""
    with udp_socket() as closed:
        port = closed.getsockname()[1]
    result = subprocess.run(
        [*NCAT, "connect", "-u", "-q", "10", "127.0.0.1", str(port)],
        input=b"anyone?\n",
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1
    assert "port unreachable" in one_error_line(result.stderr)


def heard(listener: subprocess.Popen[bytes], port: int, sock: socket.socket, line: bytes) -> None:
    """``sock`` sends ``line`` to the listener, which writes it to its stdout next."""
    assert listener.stdout is not None
    sock.sendto(line, ("127.0.0.1", port))
    assert read_line(listener.stdout) == line


def reply_reaches_only(
    listener: subprocess.Popen[bytes], reply: bytes, to: socket.socket, not_to: socket.socket
) -> None:
    """A line on the listener's stdin goes out as one datagram to ``to``, none to ``not_to``."""
    assert listener.stdin is not None
    listener.stdin.write(reply)
    listener.stdin.flush()
    assert to.recv(65536) == reply
    not_to.setblocking(False)
    with pytest.raises(BlockingIOError):
        not_to.recv(65536)


def test_listen_locks_onto_the_first_peer() -> None:
    listener, port = spawn_listener(["listen", "-u", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    with udp_socket() as first, udp_socket() as other:
        heard(listener, port, first, b"from first\n")
        other.sendto(b"from other\n", ("127.0.0.1", port))
        heard(listener, port, first, b"first again\n")  # the other's was dropped
        reply_reaches_only(listener, b"reply\n", first, other)
    listener.terminate()
    assert finish(listener, 10) == 143


def test_keep_open_hears_everyone_and_replies_to_the_last_sender() -> None:
    listener, port = spawn_listener(["listen", "-u", "-k", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    with udp_socket() as first, udp_socket() as last:
        heard(listener, port, first, b"a\n")
        heard(listener, port, last, b"b\n")
        reply_reaches_only(listener, b"to the last\n", last, first)
    listener.send_signal(signal.SIGINT)
    assert finish(listener, 10) == 130


def test_idle_timeout_ends_a_udp_session_with_0() -> None:
    """UDP has no EOF: -i is how a session ends normally."""
    listener, port = spawn_listener(
        ["listen", "-u", "-i", "0.5", "127.0.0.1", "0"], stdin=subprocess.PIPE
    )
    assert listener.stdout is not None
    with udp_socket() as peer:
        peer.sendto(b"hi\n", ("127.0.0.1", port))
        assert read_line(listener.stdout) == b"hi\n"
    assert finish(listener, 20) == 0


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_ends_a_waiting_udp_listener(signum: signal.Signals, code: int) -> None:
    listener, _ = spawn_listener(["listen", "-u", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    listener.send_signal(signum)
    assert finish(listener, 10) == code
    assert listener.stderr is not None
    assert listener.stderr.read().endswith(f"interrupted by {signum.name}\n".encode())


def test_oversize_datagram_is_reported_not_truncated(tmp_path: Path) -> None:
    """A Unix datagram can exceed our 64 KiB receive buffer; MSG_TRUNC gives it away."""
    path = str(tmp_path / "dgram.sock")
    listener = spawn([*NCAT, "listen", "-u", "-U", path])
    assert listener.stderr is not None
    assert read_line(listener.stderr) == f"ncat-trio: listening on {path} (datagrams)\n".encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        peer.sendto(b"x" * 100_000, path)
    assert finish(listener, 10) == 7
    assert listener.stdout is not None
    assert listener.stdout.read() == b""  # nothing written cut short
    line = listener.stderr.read().decode()
    assert "100000 bytes, larger than the 65536-byte receive buffer" in line


def test_datagram_too_large_to_send_is_exit_6(tmp_path: Path) -> None:
    path = str(tmp_path / "dgram.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        result = subprocess.run(
            [*NCAT, "connect", "-u", "-U", path, "--sndbuf", "4K", "-q", "0"],
            input=b"y" * 60_000,
            capture_output=True,
            timeout=20,
            check=False,
        )
    assert result.returncode == 6
    assert "too large" in one_error_line(result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["listen", "-u", "-k", "-e", "cat", "0"],  # -u -e works; with -k it is refused
        ["connect", "--keepalive", "-u", "127.0.0.1", "9"],
        ["connect", "--broadcast", "127.0.0.1", "9"],
    ],
    ids=["keep-open-exec", "keepalive", "broadcast-on-tcp"],
)
def test_udp_flag_combinations_that_make_no_sense_are_usage_errors(args: list[str]) -> None:
    result = subprocess.run([*NCAT, *args], capture_output=True, timeout=20, check=False)
    assert result.returncode == 2
    one_error_line(result.stderr)


async def test_the_one_udp_connect_binds_the_source_and_names_a_taken_one() -> None:
    """``datagram.connect_udp`` (netcat's -u -s/-p, clock's client): the datagram leaves
    from ``source``; a source port already bound is a ConnectError naming the bind."""
    import trio

    from ncat_trio.errors import ConnectError
    from ncat_trio.transport.datagram import connect_udp
    from ncat_trio.transport.endpoint import Endpoint

    with udp_socket() as server, udp_socket() as taken:
        target = Endpoint("127.0.0.1", server.getsockname()[1], numeric=True)
        with trio.fail_after(10):
            with await connect_udp(target, source=Endpoint("127.0.0.2", 0, numeric=True)) as sock:
                assert sock.getsockname()[0] == "127.0.0.2"
                await sock.send(b"hello")
            data, address = server.recvfrom(64)
            assert (data, address[0]) == (b"hello", "127.0.0.2")
            port = taken.getsockname()[1]
            with pytest.raises(ConnectError, match=f"bind to 127.0.0.1:{port}: address already"):
                await connect_udp(target, source=Endpoint("127.0.0.1", port, numeric=True))

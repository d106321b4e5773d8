"""-e/--exec and -c/--sh-exec: a supervised child attached to each connection.

Half-close both ways (peer FIN → child EOF, child closes stdout → our FIN), the child
is terminated when the connection dies or we are signalled, NCAT_* variables, the
exit status logged with -v, and no shell unless -c.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess

import pytest

from ..support import (
    NCAT,
    ServeOnce,
    finish,
    one_error_line,
    pid_gone,
    receive_all,
    run_ncat,
    sha256,
    spawn_listener,
)


def talk(port: int, message: bytes) -> bytes:
    """Send ``message``, half-close, return everything until the listener's FIN."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(message)
        client.shutdown(socket.SHUT_WR)
        return receive_all(client)


def stderr_of(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    return proc.stderr.read().decode()


def test_echo_through_cat_both_ways() -> None:
    payload = os.urandom(4 << 20)
    listener, port = spawn_listener(["listen", "-e", "cat", "127.0.0.1", "0"])
    echoed = talk(port, payload)
    assert finish(listener) == 0
    assert sha256(echoed) == sha256(payload)
    assert stderr_of(listener) == ""


def test_peer_half_close_is_the_childs_eof() -> None:
    """wc -c answers only at EOF: the answer proves the child saw our FIN as EOF."""
    listener, port = spawn_listener(["listen", "-e", "wc -c", "127.0.0.1", "0"])
    assert talk(port, b"x" * 12345).strip() == b"12345"
    assert finish(listener) == 0


def test_child_closing_stdout_sends_fin_while_it_still_runs() -> None:
    """The child closes stdout and keeps running: the client gets EOF at once; after
    both directions are done the child gets its grace period, then SIGTERM (-v says so)."""
    listener, port = spawn_listener(
        ["listen", "-v", "-c", "echo bye; exec >&-; exec sleep 60", "127.0.0.1", "0"]
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        assert receive_all(client) == b"bye\n"  # FIN arrived while the child sleeps on
        client.shutdown(socket.SHUT_WR)
    assert finish(listener, 20) == 0
    assert "sh -c: killed by SIGTERM" in stderr_of(listener)


def test_child_is_terminated_when_the_connection_is_reset() -> None:
    listener, port = spawn_listener(["listen", "-c", "echo $$; exec sleep 60", "127.0.0.1", "0"])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        pid = int(client.makefile("rb").readline())
        assert not pid_gone(pid)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert finish(listener, 20) == 3  # the reset: data may be lost
    assert pid_gone(pid)
    assert "reset" in stderr_of(listener)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_listener_and_child(signum: signal.Signals, code: int) -> None:
    listener, port = spawn_listener(["listen", "-c", "echo $$; exec sleep 60", "127.0.0.1", "0"])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        pid = int(client.makefile("rb").readline())
        listener.send_signal(signum)
        assert finish(listener, 20) == code
    assert pid_gone(pid)
    assert stderr_of(listener) == f"ncat-trio: interrupted by {signum.name}\n"


def test_environment_names_both_ends() -> None:
    listener, port = spawn_listener(
        [
            "listen",
            "-c",
            "echo $NCAT_REMOTE_ADDR $NCAT_REMOTE_PORT $NCAT_LOCAL_ADDR $NCAT_LOCAL_PORT $NCAT_PROTO",
            "127.0.0.1",
            "0",
        ]
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.shutdown(socket.SHUT_WR)
        words = receive_all(client).split()
        expected = [b"127.0.0.1", str(client.getsockname()[1]).encode()]
        expected += [b"127.0.0.1", str(port).encode(), b"TCP"]
    assert words == expected
    assert finish(listener) == 0


def test_exit_status_is_logged_with_verbose_and_does_not_change_ours() -> None:
    listener, port = spawn_listener(["listen", "-v", "-c", "exit 3", "127.0.0.1", "0"])
    assert talk(port, b"") == b""
    assert finish(listener) == 0
    assert "ncat-trio: sh -c: exit status 3" in stderr_of(listener)


def test_exec_uses_no_shell() -> None:
    listener, port = spawn_listener(["listen", "-e", "echo '$HOME' `id`", "127.0.0.1", "0"])
    assert talk(port, b"") == b"$HOME `id`\n"  # quotes group words; nothing is expanded
    assert finish(listener) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "no-such-program-ncat-trio"], "not found on PATH"),
        (["-e", "/no/such/program"], "no such file"),
        (["-e", ""], "empty command"),
        (["-e", "cat", "-c", "cat"], "choose one"),
        (["-e", "'unterminated"], "invalid --exec"),
    ],
)
def test_bad_exec_commands_are_usage_errors(args: list[str], message: str) -> None:
    result = subprocess.run(
        [*NCAT, "listen", *args, "127.0.0.1", "0"], capture_output=True, timeout=20, check=False
    )
    assert result.returncode == 2
    assert message in one_error_line(result.stderr)


def test_keep_open_gives_each_client_its_own_child() -> None:
    listener, port = spawn_listener(["listen", "-k", "-c", "echo $$", "127.0.0.1", "0"])
    first, second = talk(port, b""), talk(port, b"")
    assert first.strip().isdigit()
    assert second.strip().isdigit()
    assert first != second
    listener.terminate()
    assert finish(listener) == 143


def test_connect_mode_attaches_the_child_to_the_outgoing_connection() -> None:
    def server(conn: socket.socket) -> bytes:
        conn.sendall(b"hello child\n")
        conn.shutdown(socket.SHUT_WR)
        return receive_all(conn)

    with ServeOnce(server) as peer:
        result = run_ncat(["connect", "-e", "tr a-z A-Z", "127.0.0.1", str(peer.port)], timeout=20)
        assert peer.result() == b"HELLO CHILD\n"
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_child_that_stops_reading_does_not_stall_the_peer() -> None:
    """head -c 5 exits after 5 bytes: the rest of a 4 MiB upload has nowhere to go, so
    the listener stops reading and closes (possibly with a reset): never a hang, and
    exit 0 because the child's whole output was delivered."""
    payload = os.urandom(4 << 20)
    listener, port = spawn_listener(["listen", "-e", "head -c 5", "127.0.0.1", "0"])
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        try:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            reply = receive_all(client)
        except OSError as exc:
            # The listener closed with our data unread: a reset is allowed, seen as EPIPE
            # or ECONNRESET from send, or ENOTCONN from shutdown once the reset arrived.
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                raise
    assert finish(listener, 20) == 0
    assert reply == payload[: len(reply)]
    assert len(reply) <= 5

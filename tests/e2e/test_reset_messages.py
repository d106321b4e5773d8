"""A reset is one sentence, and a peer's clean close after taking everything is exit 0.

Issue 15 §4: a ``--deny``'d client saw "transport endpoint is not connected", "connection
reset by peer" or "broken pipe" at random (whichever call met the reset first), and a
session through ncat's HTTP proxy received the whole reply and then exited 3 with
ENOTCONN from its own FIN, after the proxy had closed cleanly.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import threading

import pytest

from ..support import NCAT, ServeOnce, finish, one_error_line, read_line, reaped, spawn_listener


def test_a_denied_client_always_reads_connection_reset_by_peer() -> None:
    listener, port = spawn_listener(["listen", "-k", "--deny", "127.0.0.1", "127.0.0.1", "0"])
    with reaped(listener):
        for _ in range(6):
            client = subprocess.run(
                [*NCAT, "127.0.0.1", str(port)],
                input=b"hi\n",
                capture_output=True,
                timeout=30,
                check=False,
            )
            assert client.returncode == 3, client.stderr
            assert one_error_line(client.stderr) == (
                f"ncat-trio: connection to 127.0.0.1:{port}: connection reset by peer"
            )


@pytest.mark.parametrize("fin", [["-N"], []], ids=["fin-now", "fin-idle"])
def test_reset_after_a_clean_close_that_took_everything_exits_0(fin: list[str]) -> None:
    """The peer reads our bytes, replies, closes (FIN), then resets; our FIN comes after."""
    replied = threading.Event()

    def serve(conn: socket.socket) -> bytes:
        got = conn.recv(100)
        conn.sendall(b"reply\n")
        conn.shutdown(socket.SHUT_WR)
        assert replied.wait(30)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return got  # leaving the handler closes: SO_LINGER 0 makes it a reset

    with ServeOnce(serve) as server:
        proc = subprocess.Popen(
            [*NCAT, *fin, "127.0.0.1", str(server.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        with reaped(proc):
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(b"hi\n")
            proc.stdin.flush()
            assert read_line(proc.stdout, 30) == b"reply\n"
            replied.set()
            assert server.result() == b"hi\n"  # the reset is out
            proc.stdin.close()  # now stdin ends, and the FIN meets a reset connection
            code = finish(proc, 30)
            assert proc.stderr is not None
            err = proc.stderr.read()
            assert proc.stdout.read() == b""
    assert code == 0, err
    assert err == b""


def test_reset_of_bytes_not_taken_is_still_exit_3() -> None:
    """The peer closes without reading what we send after its FIN: that is data lost."""
    closed = threading.Event()

    def serve(conn: socket.socket) -> None:
        conn.shutdown(socket.SHUT_WR)
        closed.wait(30)

    with ServeOnce(serve) as server:
        r, w = os.pipe()
        proc = subprocess.Popen(
            [*NCAT, "127.0.0.1", str(server.port)],
            stdin=r,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(r)
        with reaped(proc):
            closed.set()
            server.result()  # closed, not having read a byte
            # certainly met by a reset; BrokenPipeError: ncat-trio already ended, fine
            with os.fdopen(w, "wb", buffering=0) as stdin, contextlib.suppress(BrokenPipeError):
                stdin.write(b"x" * (1 << 20))
            code = finish(proc, 30)
            assert proc.stderr is not None
            err = proc.stderr.read()
    assert code == 3, err
    assert one_error_line(err).endswith(": connection reset by peer")

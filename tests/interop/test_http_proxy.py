"""The HTTP CONNECT proxy of ncat.  (TLS interop with ``ncat --ssl`` and ``socat
OPENSSL`` lives in ``test_tls.py``.)

* ncat prints the port it was *asked* for (``:0``): its real port comes from /proc.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from ..support import (
    NCAT,
    ServeOnce,
    finish,
    peer_port,
    require_program,
    spawn,
)

pytestmark = pytest.mark.interop


def code_of(proc: subprocess.Popen[bytes]) -> int:
    with proc:
        return finish(proc)


# --- ncat's HTTP CONNECT proxy ------------------------------------------------------------


def answer_first_line(conn: socket.socket) -> bytes:
    """Reply to the first line at once, then close (ncat's proxy ends both ways at
    the client's FIN, so the client here uses --no-shutdown and waits for this close)."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = conn.recv(1)
        assert chunk
        line += chunk
    conn.sendall(line.upper())
    return line


def start_ncat_http_proxy(*extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """``-4``: in proxy mode ncat binds ``::`` and ``0.0.0.0`` separately (two ports for
    port 0, and the IPv4 one after the ready line), so one family keeps the port clear."""
    proxy = spawn(
        [require_program("ncat"), "-4", "-v", "-l", "--proxy-type", "http", *extra,
         "127.0.0.1", "0"]
    )  # fmt: skip
    return proxy, peer_port(proxy, b"Listening on")


def test_through_ncat_http_proxy_with_auth() -> None:
    proxy, port = start_ncat_http_proxy("--proxy-auth", "user:secret")
    with ServeOnce(answer_first_line) as target:
        done = subprocess.run(
            [*NCAT, "connect", "--no-shutdown", "--proxy", f"127.0.0.1:{port}", "--proxy-type", "http",
             "--proxy-auth", "user:secret", "127.0.0.1", str(target.port)],
            input=b"via http connect\n",
            capture_output=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        assert (done.returncode, done.stderr) == (0, b"")
        assert target.result() == b"via http connect\n"
    assert done.stdout == b"VIA HTTP CONNECT\n"
    proxy.kill()
    code_of(proxy)


def test_ncat_http_proxy_that_refuses_is_exit_1() -> None:
    proxy, port = start_ncat_http_proxy("--proxy-auth", "user:secret")
    done = subprocess.run(
        [*NCAT, "connect", "--proxy", f"127.0.0.1:{port}", "127.0.0.1", "9"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "refused CONNECT: HTTP 407" in done.stderr.decode()
    proxy.kill()
    code_of(proxy)

"""TLS with ``ncat --ssl`` and ``socat OPENSSL``, and the HTTP CONNECT proxy of ncat.

Peer habits checked on this machine (ncat 7.93, socat 1.7.4):

* ``ncat --ssl`` ends a TLS connection with a plain TCP FIN, never a close_notify
  (at its stdin EOF, and at once with ``--recv-only``): by our policy that is a
  truncation, so ncat-trio writes everything and exits 7 with a "TLS truncated" line.
  ncat does not verify servers by default; as a server it gets a trustme certificate.
* socat sends close_notify at its stdin EOF and then waits ``-t`` seconds for the
  other direction; ``verify=0`` on the client side since our generated certificate is
  self-signed.
* ncat prints the port it was *asked* for (``:0``): its real port comes from /proc.

ncat-trio's side follows its TLS policy: it keeps reading until the peer's
close_notify, so each test lets the peer close first, or uses ``-q 0`` to close
right after our upload.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from .support import (
    NCAT,
    Drain,
    Feed,
    ServeOnce,
    finish,
    listening_port_of,
    read_line,
    reap_children,
    require_program,
    sha256,
    spawn,
    spawn_listener,
)

pytestmark = pytest.mark.interop

SIZE = 1 << 20


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    yield
    reap_children()


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA file, server certificate, server key) from trustme."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(paths[0]))
    leaf.cert_chain_pems[0].write_to_path(str(paths[1]))
    leaf.private_key_pem.write_to_path(str(paths[2]))
    return paths


def peer_port(proc: subprocess.Popen[bytes], ready: bytes) -> int:
    assert proc.stderr is not None
    while True:
        line = read_line(proc.stderr)
        if ready in line:
            match = re.search(rb"listening on AF=\d+ \S+:(\d+)", line)
            return int(match.group(1)) if match else listening_port_of(proc.pid)


def code_of(proc: subprocess.Popen[bytes]) -> int:
    with proc:
        return finish(proc)


# --- ncat --ssl ---------------------------------------------------------------------------


def test_ncat_ssl_server_to_verifying_ncat_trio_client(pki: tuple[Path, Path, Path]) -> None:
    """ncat sends a file and closes (close_notify); we verify it against the CA."""
    ca, cert, key = pki
    down = os.urandom(SIZE)
    server = spawn(
        [require_program("ncat"), "-v", "--ssl", "--ssl-cert", str(cert), "--ssl-key", str(key),
         "--send-only", "-l", "127.0.0.1", "0"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    port = peer_port(server, b"Listening on")
    assert server.stdin is not None
    Feed(server.stdin, down)
    client = subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca), "localhost", str(port)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert sha256(client.stdout) == sha256(down)  # all of it, then ncat's bare FIN:
    assert client.returncode == 7
    assert b"TLS truncated" in client.stderr
    code_of(server)


def test_ncat_trio_client_upload_to_ncat_ssl_server(pki: tuple[Path, Path, Path]) -> None:
    """Our close_notify (``-q 0``: right after the upload) ends ncat's session.

    ncat's stdin stays open: with ``--recv-only`` or at its stdin EOF it would send a
    bare FIN, our session would end as truncated (exit 7), and trio's SSLStream cannot
    send after that, so the rest of the upload would be lost.
    """
    ca, cert, key = pki
    up = os.urandom(SIZE)
    server = spawn(
        [require_program("ncat"), "-v", "--ssl", "--ssl-cert", str(cert), "--ssl-key", str(key),
         "-l", "127.0.0.1", "0"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    port = peer_port(server, b"Listening on")
    assert server.stdout is not None
    received = Drain(server.stdout)
    client = subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca), "-q", "0", "127.0.0.1", str(port)],
        input=up,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (client.returncode, client.stderr) == (0, b"")
    assert sha256(received.wait()) == sha256(up)
    assert code_of(server) == 0


def test_ncat_ssl_client_to_ncat_trio_listener() -> None:
    """Our generated certificate (ncat does not verify by default).

    One way only: with both ways at once, ncat 7.93 left the last 8 KiB of our 1 MiB
    reply undelivered to its stdout for as long as its own stdin stayed open.
    """
    up = os.urandom(SIZE)
    listener, port = spawn_listener(
        ["listen", "--ssl", "--recv-only", "127.0.0.1", "0"], stdout=subprocess.PIPE
    )
    assert listener.stdout is not None
    at_listener = Drain(listener.stdout)
    client = subprocess.run(
        [require_program("ncat"), "--ssl", "127.0.0.1", str(port)],
        input=up,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert client.returncode == 0
    assert sha256(at_listener.wait()) == sha256(up)
    assert listener.stderr is not None
    err = listener.stderr.read()
    assert code_of(listener) == 7
    assert b"TLS truncated" in err


# --- socat OPENSSL -----------------------------------------------------------------------


def test_socat_openssl_client_to_ncat_trio_listener_both_ways() -> None:
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    listener, port = spawn_listener(
        ["listen", "--ssl", "127.0.0.1", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    client = spawn(
        [require_program("socat"), "-t", "30", "STDIO",
         f"OPENSSL:127.0.0.1:{port},verify=0"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert listener.stdin is not None
    assert listener.stdout is not None
    assert client.stdin is not None
    assert client.stdout is not None
    Feed(listener.stdin, down)
    Feed(client.stdin, up)  # socat: close_notify at its stdin EOF, then waits for ours
    at_client = Drain(client.stdout)
    at_listener = Drain(listener.stdout)
    assert sha256(at_listener.wait()) == sha256(up)
    assert sha256(at_client.wait()) == sha256(down)
    assert code_of(listener) == 0
    assert code_of(client) == 0


def test_ncat_trio_client_to_socat_openssl_listen(pki: tuple[Path, Path, Path]) -> None:
    ca, cert, key = pki
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    (Path(cert).parent / "down").write_bytes(down)
    with (Path(cert).parent / "down").open("rb") as stdin:
        server = spawn(
            [require_program("socat"), "-d", "-d", "-t", "30",
             f"OPENSSL-LISTEN:0,bind=127.0.0.1,cert={cert},key={key},verify=0", "STDIO"],
            stdin=stdin,
        )  # fmt: skip
    port = peer_port(server, b"listening on")
    assert server.stdout is not None
    at_server = Drain(server.stdout)
    client = subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca), "127.0.0.1", str(port)],
        input=up,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert client.returncode == 0, client.stderr
    assert sha256(client.stdout) == sha256(down)
    assert sha256(at_server.wait()) == sha256(up)
    code_of(server)


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

"""TLS with ``ncat --ssl`` and ``socat OPENSSL``, both roles: exact exit codes, sha256 of
the data both ways.

Peer habits checked on this machine (ncat 7.93, socat 1.7.4, OpenSSL 3.0, TLS 1.3):

* ``ncat --ssl`` ends its sending side with a **bare TCP FIN**, never a close_notify: at
  its stdin EOF (both roles; it keeps reading after it) and at once with
  ``--recv-only``.  By our policy that is a truncation: exit 7 with a "TLS truncated"
  line, or with ``--ssl-allow-truncation`` one line and exit 0, and our upload goes on.
* ncat as a client takes our close_notify as a half-close and keeps sending; ncat as a
  server (``-l``) answers it with its own close_notify and closes, as it closes at a
  plain FIN (what it has not sent yet is dropped: its choice, in TCP too).
* ``ncat --send-only`` never reads: a close_notify of ours would lie unread and turn its
  close into a reset that can destroy its last data.  Use ``--recv-only`` with it.
* socat sends close_notify at its stdin EOF, keeps the other direction open for ``-t``
  seconds, and answers ours the same way: sessions end with exit 0 both sides.
* ncat does not verify servers by default; as a server it gets a trustme certificate.
  ncat prints the port it was *asked* for (``:0``): its real port comes from /proc.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from ..support import (
    NCAT,
    Drain,
    Feed,
    Pki,
    finish,
    peer_port,
    read_line,
    reply_after_eof,
    require_program,
    sha256,
    spawn,
    spawn_listener,
)

pytestmark = pytest.mark.interop

SIZE = 1 << 20
TRUNCATED = b"TLS truncated: the peer closed without close_notify"
ALLOWED = b"[--ssl-allow-truncation: taken as its EOF]"


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA file, server certificate, server key) from trustme."""
    files = Pki(tmp_path)
    return files.ca_file, files.cert_file, files.key_file


def tls_client(ca: Path, port: int, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """``ncat-trio connect --ssl`` to 127.0.0.1:port trusting ``ca``, sending ``data``."""
    return subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca), "127.0.0.1", str(port)],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )


def code_of(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    with proc:
        return finish(proc, timeout)


def error_lines(stderr: bytes) -> list[bytes]:
    """Our stderr without the informational lines (certificate, readiness)."""
    return [
        line
        for line in stderr.splitlines()
        if b"generated a temporary" not in line and b"listening on" not in line
    ]


def ncat_server(cert: Path, key: Path, *extra: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return spawn(
        [require_program("ncat"), "-v", "--ssl", "--ssl-cert", str(cert), "--ssl-key", str(key),
         *extra, "-l", "127.0.0.1", "0"],
        **kwargs,
    )  # fmt: skip


# --- ncat --ssl as the server ---------------------------------------------------------------


@pytest.mark.parametrize("allow", [False, True], ids=["strict", "allow-truncation"])
def test_ncat_send_only_server_to_our_recv_only_client(
    pki: tuple[Path, Path, Path], allow: bool
) -> None:
    """ncat sends a file and ends with a bare FIN: all of it arrives, then exit 7 (or 0)."""
    ca, cert, key = pki
    down = os.urandom(SIZE)
    server = ncat_server(cert, key, "--send-only", stdin=subprocess.PIPE)
    port = peer_port(server, b"Listening on")
    assert server.stdin is not None
    Feed(server.stdin, down)
    flag = ["--ssl-allow-truncation"] if allow else []
    client = subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca), *flag, "--recv-only",
         "localhost", str(port)],
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert sha256(client.stdout) == sha256(down)
    lines = error_lines(client.stderr)
    assert len(lines) == 1
    assert TRUNCATED in lines[0]
    assert (ALLOWED in lines[0]) is allow
    assert client.returncode == (0 if allow else 7)
    assert code_of(server) == 0


def test_our_client_ends_first_and_ncat_server_answers_close_notify(
    pki: tuple[Path, Path, Path],
) -> None:
    """No -q: our close_notify after the upload, ncat (stdin still open) answers with
    its own and both exit 0."""
    ca, cert, key = pki
    up = os.urandom(SIZE)
    server = ncat_server(cert, key, stdin=subprocess.PIPE)
    port = peer_port(server, b"Listening on")
    assert server.stdout is not None
    assert server.stdin is not None
    received = Drain(server.stdout)
    client = tls_client(ca, port, up)
    assert (client.returncode, client.stdout, client.stderr) == (0, b"", b"")
    assert sha256(received.wait()) == sha256(up)
    assert code_of(server) == 0  # ended by our close_notify, not by its stdin
    server.stdin.close()


@pytest.mark.parametrize("allow", [False, True], ids=["strict", "allow-truncation"])
def test_both_ways_with_ncat_server_whose_stdin_ends_first(
    pki: tuple[Path, Path, Path], allow: bool
) -> None:
    """ncat's reply ends with a bare FIN while our stdin is still open: exit 7 strict;
    allowed, one line, then our stdin's EOF sends close_notify and both exit 0."""
    ca, cert, key = pki
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    upload_arrived, truncation_seen = threading.Event(), threading.Event()
    server = ncat_server(cert, key, stdin=subprocess.PIPE)
    port = peer_port(server, b"Listening on")
    assert server.stdin is not None
    assert server.stdout is not None
    Feed(server.stdin, down, close_after=upload_arrived)
    flag = ["--ssl-allow-truncation"] if allow else []
    client = spawn(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca), *flag, "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
    )
    assert client.stdin is not None
    assert client.stdout is not None
    assert client.stderr is not None
    at_server = Drain(server.stdout)
    at_client = Drain(client.stdout)
    Feed(client.stdin, up, close_after=truncation_seen)
    at_server.wait_count(SIZE)
    upload_arrived.set()  # ncat's stdin ends: the rest of its reply, then a bare FIN
    line = read_line(client.stderr, timeout=30)
    assert TRUNCATED in line
    assert (ALLOWED in line) is allow
    if not allow:
        assert finish(client, 30) == 7  # with our stdin still open
    truncation_seen.set()  # allowed: our stdin's EOF, so our close_notify, ends it
    assert sha256(at_client.wait()) == sha256(down)
    assert sha256(at_server.wait()) == sha256(up)
    assert client.stderr.read() == b""  # nothing after that one line
    assert code_of(client) == (0 if allow else 7)
    assert code_of(server) == 0


# --- ncat --ssl as the client -----------------------------------------------------------------


def test_ncat_client_to_our_listener_both_ways_with_allow_truncation() -> None:
    """Our reply goes on after ncat's bare FIN; our close_notify then ends ncat."""
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    listener, port = spawn_listener(
        ["listen", "--ssl", "--ssl-allow-truncation", "127.0.0.1", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    client = spawn(
        [require_program("ncat"), "--ssl", "127.0.0.1", str(port)], stdin=subprocess.PIPE
    )
    assert listener.stderr is not None
    errors = Drain(listener.stderr)
    reply_after_eof(client, listener, up, down)  # ncat's EOF is a bare FIN
    assert code_of(client) == 0
    assert code_of(listener) == 0
    lines = error_lines(errors.wait())
    assert len(lines) == 1
    assert TRUNCATED in lines[0]
    assert ALLOWED in lines[0]


def test_ncat_client_to_our_strict_listener_is_exit_7_with_everything_written() -> None:
    up = os.urandom(SIZE)
    listener, port = spawn_listener(
        ["listen", "--ssl", "--recv-only", "127.0.0.1", "0"], stdout=subprocess.PIPE
    )
    assert listener.stdout is not None
    assert listener.stderr is not None
    at_listener = Drain(listener.stdout)
    errors = Drain(listener.stderr)
    client = subprocess.run(
        [require_program("ncat"), "--ssl", "127.0.0.1", str(port)],
        input=up,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert client.returncode == 0
    assert sha256(at_listener.wait()) == sha256(up)
    assert code_of(listener) == 7
    lines = error_lines(errors.wait())
    assert len(lines) == 1
    assert TRUNCATED in lines[0]


# --- socat OPENSSL ------------------------------------------------------------------------------


def test_socat_openssl_client_to_our_listener_with_a_reply_after_its_eof() -> None:
    """socat's close_notify at its stdin EOF; our reply follows; both exit 0, strict."""
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    listener, port = spawn_listener(
        ["listen", "--ssl", "127.0.0.1", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    client = spawn(
        [require_program("socat"), "-t", "30", "STDIO", f"OPENSSL:127.0.0.1:{port},verify=0"],
        stdin=subprocess.PIPE,
    )
    reply_after_eof(client, listener, up, down)
    assert code_of(listener) == 0
    assert code_of(client) == 0


def test_our_client_to_socat_openssl_listen_with_a_reply_after_our_eof(
    pki: tuple[Path, Path, Path],
) -> None:
    """Our close_notify at stdin EOF (no -q); socat's reply comes after it."""
    ca, cert, key = pki
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    server = spawn(
        [require_program("socat"), "-d", "-d", "-t", "30",
         f"OPENSSL-LISTEN:0,bind=127.0.0.1,cert={cert},key={key},verify=0", "STDIO"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    port = peer_port(server, b"listening on")
    client = spawn(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca), "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
    )
    reply_after_eof(client, server, up, down)
    assert code_of(client) == 0
    assert code_of(server) == 0


def test_socat_openssl_both_ways_at_once(pki: tuple[Path, Path, Path]) -> None:
    """Both uploads at once, our client against socat's server."""
    ca, cert, key = pki
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    (cert.parent / "down").write_bytes(down)
    with (cert.parent / "down").open("rb") as stdin:
        server = spawn(
            [require_program("socat"), "-d", "-d", "-t", "30",
             f"OPENSSL-LISTEN:0,bind=127.0.0.1,cert={cert},key={key},verify=0", "STDIO"],
            stdin=stdin,
        )  # fmt: skip
    port = peer_port(server, b"listening on")
    assert server.stdout is not None
    at_server = Drain(server.stdout)
    client = tls_client(ca, port, up)
    assert (client.returncode, client.stderr) == (0, b"")
    assert sha256(client.stdout) == sha256(down)
    assert sha256(at_server.wait()) == sha256(up)
    assert code_of(server) == 0

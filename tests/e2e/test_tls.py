"""``--ssl``: verification on by default, the closing policy, truncation, SNI and ALPN.

Certificates come from ``trustme`` (a throwaway CA and a leaf for localhost,
127.0.0.1 and ::1).  The closing policy (README, "TLS"): under TLS 1.3 stdin EOF sends
``close_notify`` at once and receiving goes on until the peer's (a half-close; its
details and the TLS 1.2 fallback are in ``tests/transport/test_tls_halfclose.py``).  Everything sent
before a ``close_notify`` arrives (TLS keeps order), so ``-q 0`` is a deterministic
"send and close", not a race.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ncat_trio.errors import UsageError
from ncat_trio.transport import tls

from ..support import (
    NCAT,
    Drain,
    Feed,
    Pki,
    ServeOnce,
    finish,
    one_error_line,
    read_line,
    run_ncat,
    spawn,
    spawn_listener,
    wait_for_port,
)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def outcome(proc: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, bytes, bytes]:
    with proc:
        drains = [
            None if pipe is None or pipe.closed else Drain(pipe)
            for pipe in (proc.stdout, proc.stderr)
        ]
        code = finish(proc, timeout)
        out, err = (b"" if d is None else d.wait(timeout) for d in drains)
    return code, out, err


# --- both ways, verified --------------------------------------------------------------


def test_both_ways_verified_with_the_ca(pki: Pki) -> None:
    """Listener with a CA-issued certificate, client trusting that CA: 1 MiB each way.

    The client keeps its stdin open until the listener's whole reply has arrived, then
    closes it with ``-q 0``: its close_notify ends the listener's session too.
    """
    up, down = os.urandom(1 << 20), os.urandom(1 << 20)
    listener, port = spawn_listener(
        ["listen", *pki.server_args(), "127.0.0.1", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    client = spawn(
        [
            *NCAT,
            "connect",
            "--ssl",
            "--ssl-ca",
            str(pki.ca_file),
            "-q",
            "0",
            "127.0.0.1",
            str(port),
        ],
        stdin=subprocess.PIPE,
    )
    assert listener.stdin
    assert listener.stdout
    assert client.stdin
    assert client.stdout
    reply_arrived = threading.Event()
    Feed(listener.stdin, down)
    client_feed = Feed(client.stdin, up, close_after=reply_arrived)
    at_client = Drain(client.stdout)
    at_listener = Drain(listener.stdout)
    at_client.wait_count(len(down))
    reply_arrived.set()
    client_feed.wait()
    assert at_client.wait() == down
    assert at_listener.wait() == up
    assert outcome(client)[0] == 0
    assert outcome(listener)[0] == 0


def test_generated_certificate_prints_its_fingerprint_and_no_verify_warns() -> None:
    listener = spawn([*NCAT, "listen", "--ssl", "127.0.0.1", "0"])
    assert listener.stderr is not None
    first = read_line(listener.stderr).decode()  # the fingerprint comes before readiness
    port = wait_for_port(listener.stderr)
    client = run_ncat(
        ["connect", "-v", "--ssl-no-verify", "-q", "0", "127.0.0.1", str(port)], b"hello over tls\n"
    )
    code, out, err = outcome(listener)
    assert (client.returncode, code) == (0, 0), (client.stderr, err)
    assert out == b"hello over tls\n"
    assert "generated a temporary self-signed certificate" in first
    fingerprint = first.split("SHA-256 fingerprint ")[1].split()[0]
    assert len(fingerprint) == 32 * 3 - 1
    text = client.stderr.decode()
    assert "--ssl-no-verify: the server's certificate is NOT checked" in text
    assert f"peer certificate SHA-256 {fingerprint}" in text  # the one the listener printed


# --- verification failures: exit 1, the reason named ---------------------------------------
# The listener logs the failed handshake and goes on waiting: a client that never became
# a session does not consume a single-shot listener (issue 15).


def _handshake_failure_logged(listener: subprocess.Popen[bytes]) -> str:
    assert listener.stderr is not None
    line = read_line(listener.stderr).decode()
    assert "TLS handshake" in line, line
    assert listener.poll() is None, "a failed handshake ended the single-shot listener"
    return line


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ([], "certificate verify failed: unable to get local issuer certificate"),
        (["--ssl-servername", "other.example"], "certificate verify failed: hostname mismatch"),
    ],
    ids=["unknown-ca", "wrong-name"],
)
def test_certificate_that_does_not_verify_is_exit_1_naming_the_reason(
    pki: Pki, extra: list[str], reason: str
) -> None:
    ca = [] if not extra else ["--ssl-ca", str(pki.ca_file)]
    listener, port = spawn_listener(["listen", *pki.server_args(), "127.0.0.1", "0"])
    client = run_ncat(["connect", "--ssl", *ca, *extra, "127.0.0.1", str(port)], b"secret")
    assert client.returncode == 1
    line = one_error_line(client.stderr)
    assert "TLS handshake" in line
    assert reason in line.lower()
    _handshake_failure_logged(listener)
    good = run_ncat(["connect", "--ssl-ca", str(pki.ca_file), "127.0.0.1", str(port)], b"secret")
    code, out, err = outcome(listener)
    assert (good.returncode, code) == (0, 0), (good.stderr, err)
    assert out == b"secret"  # only from the client whose handshake succeeded


def test_self_signed_listener_is_refused_without_no_verify() -> None:
    listener, port = spawn_listener(["listen", "--ssl", "127.0.0.1", "0"])
    client = run_ncat(["connect", "--ssl", "127.0.0.1", str(port)], stdin=subprocess.DEVNULL)
    assert client.returncode == 1
    assert "certificate verify failed: self-signed certificate" in one_error_line(client.stderr)
    _handshake_failure_logged(listener)
    good = run_ncat(
        ["connect", "--ssl-no-verify", "127.0.0.1", str(port)], stdin=subprocess.DEVNULL
    )
    code, _, err = outcome(listener)
    assert (good.returncode, code) == (0, 0), (good.stderr, err)


# --- truncation ----------------------------------------------------------------------------


def test_peer_closing_without_close_notify_is_a_truncation_exit_7(pki: Pki) -> None:
    """What arrived is written out; then exit 7 and a line that says 'truncated'."""
    context = pki.server_context()
    payload = os.urandom(100_000)

    def truncating_server(conn: socket.socket) -> None:
        secure = context.wrap_socket(conn, server_side=True)
        secure.sendall(payload)
        # Close the TCP connection under TLS: no close_notify (no unwrap()).
        raw = socket.socket(fileno=secure.detach())
        raw.shutdown(socket.SHUT_RDWR)
        raw.close()

    with ServeOnce(truncating_server) as server:
        client = subprocess.run(
            [
                *NCAT,
                "connect",
                "--ssl",
                "--ssl-ca",
                str(pki.ca_file),
                "127.0.0.1",
                str(server.port),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        server.result()
    assert client.stdout == payload
    assert client.returncode == 7
    assert "truncated" in one_error_line(client.stderr)


# --- SNI and ALPN ---------------------------------------------------------------------------


def test_sni_sends_the_servername_and_verifies_it(pki: Pki) -> None:
    context = pki.server_context()
    seen: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)

    def server(conn: socket.socket) -> bytes:
        with context.wrap_socket(conn, server_side=True) as secure:
            chunks = []
            while chunk := secure.recv(65536):  # b"": the client's close_notify
                chunks.append(chunk)
        return b"".join(chunks)

    with ServeOnce(server) as srv:
        client = subprocess.run(
            [*NCAT, "connect", "--ssl", "--ssl-ca", str(pki.ca_file),
             "--ssl-servername", "localhost", "-q", "0", "127.0.0.1", str(srv.port)],
            input=b"sni",
            capture_output=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        assert srv.result() == b"sni"
    assert client.returncode == 0, client.stderr
    assert seen == ["localhost"]


def test_alpn_is_negotiated_and_logged(pki: Pki) -> None:
    listener, port = spawn_listener(
        ["listen", "-v", *pki.server_args(), "--ssl-alpn", "h2,http/1.1", "127.0.0.1", "0"]
    )
    client = subprocess.run(
        [*NCAT, "connect", "-v", "--ssl", "--ssl-ca", str(pki.ca_file), "--ssl-alpn", "http/1.1",
         "-q", "0", "localhost", str(port)],
        input=b"x",
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    code, _out, err = outcome(listener)
    assert (client.returncode, code) == (0, 0), (client.stderr, err)
    assert "ALPN http/1.1" in client.stderr.decode()
    assert "ALPN http/1.1" in err.decode()


# --- the pieces ------------------------------------------------------------------------------


def test_generated_certificate_needs_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(UsageError, match="--ssl-cert FILE --ssl-key FILE"):
        tls.self_signed_certificate()


def test_bad_flag_combinations_are_usage_errors(tmp_path: Path) -> None:
    for args in (
        ["connect", "--ssl-key", "k.pem", "127.0.0.1", "1"],
        ["connect", "--ssl-no-verify", "--ssl-ca", "ca.pem", "127.0.0.1", "1"],
        ["connect", "--ssl", "--ssl-alpn", "h2,,x", "127.0.0.1", "1"],
        ["connect", "--ssl", "--ssl-ca", str(tmp_path / "missing.pem"), "127.0.0.1", "1"],
    ):
        done = subprocess.run([*NCAT, *args], capture_output=True, timeout=30, check=False)
        assert done.returncode == 2, (args, done.stderr)
        one_error_line(done.stderr)

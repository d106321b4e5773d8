"""``--ssl-ca`` replaces the system trust store (as ncat and curl's ``--cacert`` do);
``--ssl-system-ca`` adds the system store back.

The "system store" is made testable offline: OpenSSL's default verify paths honour
``SSL_CERT_FILE``, so a client started with ``SSL_CERT_FILE=ca-b.pem`` has CA-B as its
system trust.  A server whose certificate CA-B issued is then accepted with no flag,
refused with ``--ssl-ca ca-a.pem`` (before issue 15 it was accepted: the file was
*added*), and accepted again with ``--ssl-ca ca-a.pem --ssl-system-ca``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trustme

from ..support import (
    NCAT,
    Pki,
    finish,
    one_error_line,
    read_line,
    reaped,
    spawn_listener,
)


@pytest.fixture
def ca_a(tmp_path: Path) -> Path:
    path = tmp_path / "ca-a.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def pki_b(tmp_path: Path) -> Pki:
    folder = tmp_path / "b"
    folder.mkdir()
    return Pki(folder)  # CA-B and a localhost certificate it issued


def connect(port: int, flags: list[str], system_ca: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SSL_CERT_FILE": str(system_ca)}
    env.pop("SSL_CERT_DIR", None)
    return subprocess.run(
        [*NCAT, "connect", "--ssl", *flags, "localhost", str(port)],
        input=b"hello\n", capture_output=True, timeout=30, check=False, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "accepted"),
    [
        ([], True),  # the "system" store (CA-B) alone
        (["--ssl-ca", "CA-A"], False),  # replaces it: CA-B is no longer trusted
        (["--ssl-ca", "CA-A", "--ssl-system-ca"], True),  # adds it back
    ],
    ids=["system-store", "ssl-ca-replaces", "ssl-system-ca-adds"],
)
def test_ssl_ca_replaces_the_system_store(
    pki_b: Pki, ca_a: Path, flags: list[str], accepted: bool
) -> None:
    listener, port = spawn_listener(
        ["listen", *pki_b.server_args(), "127.0.0.1", "0"], stdout=subprocess.PIPE
    )
    with reaped(listener):
        done = connect(port, [str(ca_a) if f == "CA-A" else f for f in flags], pki_b.ca_file)
        if accepted:
            assert done.returncode == 0, done.stderr
            assert listener.stdout is not None
            assert listener.stdout.read() == b"hello\n"
            assert finish(listener) == 0
        else:
            assert done.returncode == 1, done.stderr
            assert "certificate verify failed" in one_error_line(done.stderr)


def test_a_listeners_ssl_ca_never_trusts_the_system_store(pki_b: Pki, ca_a: Path) -> None:
    """``listen --ssl-ca ca-a.pem`` refuses a client certificate CA-B issued even when
    CA-B is the listener's system store."""
    client_cert = pki_b.ca.issue_cert("client.example")
    cert, key = pki_b.cert_file.parent / "client.pem", pki_b.cert_file.parent / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert))
    client_cert.private_key_pem.write_to_path(str(key))
    env = {**os.environ, "SSL_CERT_FILE": str(pki_b.ca_file)}
    listener, port = spawn_listener(
        ["listen", *pki_b.server_args(), "--ssl-ca", str(ca_a), "127.0.0.1", "0"], env=env
    )
    with reaped(listener):
        done = subprocess.run(
            [*NCAT, "connect", "--ssl", "--ssl-ca", str(pki_b.ca_file), "--ssl-cert", str(cert),
             "--ssl-key", str(key), "localhost", str(port)],
            input=b"hello\n", capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode != 0, done.stderr
        # The refused client never became a session: the single-shot listener logs it
        # and goes on waiting (issue 15).
        assert listener.stderr is not None
        line = read_line(listener.stderr)
        assert b"certificate" in line, line
        assert listener.poll() is None, "a refused client ended the single-shot listener"


@pytest.mark.parametrize(
    "args",
    [
        ["--ssl-system-ca", "--ssl-no-verify"],
    ],
)
def test_ssl_system_ca_usage_errors(args: list[str]) -> None:
    done = subprocess.run(
        [*NCAT, "connect", *args, "127.0.0.1", "9"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--ssl-system-ca" in one_error_line(done.stderr)

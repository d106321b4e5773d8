"""Interop for issue 7 part A: UDP and Unix sockets with nc.openbsd and socat (both
roles), and -e compared with ``ncat -e`` running the same script.

Readiness is read from each program's own line: nc.openbsd ``Bound on H P`` (UDP) /
``Listening on PATH``, socat ``listening on ...`` (``-d -d``), ours ``listening on``.
ncat prints the port it was asked for (0), so its real port comes from /proc.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from ..support import (
    NCAT,
    Drain,
    feed_until_received,
    finish,
    listening_port_of,
    read_line,
    require_program,
    sha256,
    spawn,
    spawn_listener,
)

pytestmark = pytest.mark.interop

PEERS = ["nc.openbsd", "socat"]


def wait_for(proc: subprocess.Popen[bytes], pattern: bytes) -> re.Match[bytes]:
    """Read the process's stderr until ``pattern`` matches a line."""
    assert proc.stderr is not None
    while (match := re.search(pattern, read_line(proc.stderr))) is None:
        pass
    return match


def exchange_lines(
    ours: subprocess.Popen[bytes], theirs: subprocess.Popen[bytes], *, we_speak_first: bool
) -> None:
    """A line each way through both programs' stdin/stdout."""
    for _ in range(2):
        speaker, hearer = (ours, theirs) if we_speak_first else (theirs, ours)
        assert speaker.stdin is not None
        assert hearer.stdout is not None
        line = f"hello from {'ncat-trio' if speaker is ours else 'the peer'}\n".encode()
        speaker.stdin.write(line)
        speaker.stdin.flush()
        assert read_line(hearer.stdout) == line
        we_speak_first = not we_speak_first


# --- UDP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", PEERS)
def test_udp_ncat_trio_client_to_peer_server(peer: str) -> None:
    path = require_program(peer)
    argv = {
        "nc.openbsd": [path, "-u", "-l", "-v", "-n", "127.0.0.1", "0"],
        "socat": [path, "-d", "-d", "UDP-LISTEN:0,bind=127.0.0.1", "STDIO"],
    }[peer]
    server = spawn(argv, stdin=subprocess.PIPE)
    ready = rb"Bound on \S+ (\d+)" if peer == "nc.openbsd" else rb"listening on UDP .*:(\d+)"
    port = wait_for(server, ready).group(1).decode()
    client = spawn([*NCAT, "connect", "-u", "127.0.0.1", port], stdin=subprocess.PIPE)
    exchange_lines(client, server, we_speak_first=True)  # the server learns us first
    client.terminate()
    server.terminate()
    assert finish(client) == 143


@pytest.mark.parametrize("peer", PEERS)
def test_udp_peer_client_to_ncat_trio_listener(peer: str) -> None:
    path = require_program(peer)
    listener, port = spawn_listener(["listen", "-u", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    argv = {
        "nc.openbsd": [path, "-u", "127.0.0.1", str(port)],
        "socat": [path, "STDIO", f"UDP:127.0.0.1:{port}"],
    }[peer]
    client = spawn(argv, stdin=subprocess.PIPE)
    exchange_lines(listener, client, we_speak_first=False)  # we lock onto the peer first
    listener.terminate()
    client.terminate()
    assert finish(listener) == 143


# --- Unix stream sockets -----------------------------------------------------------------

SIZE = 1 << 20  # the size of the `payloads` fixture (conftest.py)


@pytest.mark.parametrize("peer", PEERS)
def test_unix_peer_client_to_ncat_trio_listener(
    peer: str, payloads: tuple[Path, Path], tmp_path: Path
) -> None:
    path = require_program(peer)
    ours, theirs = payloads
    sock = str(tmp_path / "s.sock")
    out = tmp_path / "ours.out"
    with ours.open("rb") as stdin, out.open("wb") as stdout:
        listener = spawn([*NCAT, "listen", "-U", sock], stdin=stdin, stdout=stdout)
    wait_for(listener, rb"listening on ")
    argv = {
        "nc.openbsd": [path, "-N", "-U", sock],
        "socat": [path, "-t", "30", "STDIO", f"UNIX-CONNECT:{sock}"],
    }[peer]
    with theirs.open("rb") as stdin:
        client = subprocess.run(argv, stdin=stdin, capture_output=True, timeout=30, check=False)
    assert finish(listener) == 0
    assert client.returncode == 0, client.stderr
    assert sha256(client.stdout) == sha256(ours.read_bytes())
    assert sha256(out.read_bytes()) == sha256(theirs.read_bytes())
    assert not os.path.exists(sock)


@pytest.mark.parametrize("peer", PEERS)
def test_unix_ncat_trio_client_to_peer_server(
    peer: str, payloads: tuple[Path, Path], tmp_path: Path
) -> None:
    """Our stdin stays open until the peer's whole payload is in (nc.openbsd as a server
    stops sending at the client's FIN: see test_netcat.py)."""
    path = require_program(peer)
    ours, theirs = payloads
    sock = str(tmp_path / "s.sock")
    their_out = tmp_path / "theirs.out"
    argv = {
        "nc.openbsd": [path, "-v", "-N", "-l", "-U", sock],
        "socat": [path, "-d", "-d", "-t", "30", f"UNIX-LISTEN:{sock}", "STDIO"],
    }[peer]
    with theirs.open("rb") as stdin, their_out.open("wb") as stdout:
        server = spawn(argv, stdin=stdin, stdout=stdout)
    wait_for(server, rb"[Ll]istening on ")
    assert server.stderr is not None
    server_log = Drain(server.stderr)
    client = spawn([*NCAT, "connect", "-U", sock], stdin=subprocess.PIPE)
    received = feed_until_received(client, ours.read_bytes(), SIZE)
    assert finish(client) == 0
    assert finish(server) == 0, server_log.wait()
    assert sha256(received.wait()) == sha256(theirs.read_bytes())
    assert sha256(their_out.read_bytes()) == sha256(ours.read_bytes())


@pytest.mark.parametrize("peer", PEERS)
def test_unix_datagram_peer_client_to_ncat_trio_listener(peer: str, tmp_path: Path) -> None:
    path = require_program(peer)
    sock = str(tmp_path / "d.sock")
    listener = spawn([*NCAT, "listen", "-u", "-U", sock], stdin=subprocess.PIPE)
    wait_for(listener, rb"listening on ")
    if peer == "nc.openbsd":
        argv = [path, "-u", "-U", sock]  # binds a temporary client socket for replies
    else:
        argv = [path, "STDIO", f"UNIX-SENDTO:{sock},bind={tmp_path / 'client.sock'}"]
    client = spawn(argv, stdin=subprocess.PIPE)
    exchange_lines(listener, client, we_speak_first=False)
    listener.terminate()
    client.terminate()
    assert finish(listener) == 143
    assert not os.path.exists(sock)


# --- exec, side by side with ncat -e -----------------------------------------------------

SCRIPT = """#!/bin/sh
echo "remote $NCAT_REMOTE_ADDR local $NCAT_LOCAL_ADDR proto $NCAT_PROTO"
while IFS= read -r line; do echo "got: $line"; done
"""


def test_exec_matches_ncat_e_on_the_same_script(tmp_path: Path) -> None:
    """A line-by-line conversation, then the client closes.  (ncat -e drops the child's
    output once the client half-closes, so the comparison does not half-close.)"""
    ncat = require_program("ncat")
    script = tmp_path / "answer.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)

    def converse(port: int) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            replies = client.makefile("rb")
            transcript = [replies.readline()]
            for line in (b"first\n", b"second line\n"):
                client.sendall(line)
                transcript.append(replies.readline())
            return transcript

    theirs = spawn([ncat, "-v", "-l", "127.0.0.1", "0", "-e", str(script)])
    wait_for(theirs, rb"Listening on ")
    their_transcript = converse(listening_port_of(theirs.pid))
    finish(theirs)

    ours, port = spawn_listener(["listen", "-e", str(script), "127.0.0.1", "0"])
    our_transcript = converse(port)
    assert finish(ours) == 0  # the client's close is the child's EOF: it ends, and so do we

    assert our_transcript == their_transcript
    assert our_transcript == [
        b"remote 127.0.0.1 local 127.0.0.1 proto TCP\n",
        b"got: first\n",
        b"got: second line\n",
    ]

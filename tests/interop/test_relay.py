"""``ncat-trio relay`` between real peers: nc.openbsd and socat as client and server.

Random payloads both ways at once, checked by sha256 at both ends, and the relay's
``-v`` line must say the connection closed cleanly with every byte counted.  The peers'
habits (see test_netcat.py): nc.openbsd as a server stops sending when the
client's FIN arrives, so the client's stdin stays open until the whole reply is in;
socat needs ``-t 30`` or it closes 0.5 s after the first EOF.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from ..support import (
    feed_until_received,
    finish,
    read_line,
    reaped,
    sha256,
    spawn,
    spawn_listener,
)
from .servers import client_argv, start_peer_server

pytestmark = pytest.mark.interop

PEERS = ["nc.openbsd", "socat"]
SIZE = 8 << 20  # each way


@pytest.fixture
def payloads(tmp_path: Path) -> tuple[bytes, bytes]:
    """(up, down): what the client sends and what the server sends."""
    return os.urandom(SIZE), os.urandom(SIZE)


def start_relay(target_port: int) -> tuple[subprocess.Popen[bytes], int]:
    return spawn_listener(["relay", "-v", "127.0.0.1:0", f"127.0.0.1:{target_port}"])


def stop_relay(relay: subprocess.Popen[bytes]) -> str:
    """The relay's connection line, then SIGTERM: it must exit 143."""
    assert relay.stderr is not None
    line = read_line(relay.stderr).decode().rstrip("\n")
    relay.send_signal(signal.SIGTERM)
    assert finish(relay) == 143
    return line


@pytest.mark.parametrize("server_peer", PEERS)
@pytest.mark.parametrize("client_peer", PEERS)
def test_peers_through_the_relay_both_ways(
    client_peer: str, server_peer: str, payloads: tuple[bytes, bytes], tmp_path: Path
) -> None:
    up, down = payloads
    (tmp_path / "down.bin").write_bytes(down)
    server_out = tmp_path / "server.out"
    with (tmp_path / "down.bin").open("rb") as stdin, server_out.open("wb") as stdout:
        server, server_port, server_log = start_peer_server(server_peer, stdin, stdout)
    relay, port = start_relay(server_port)
    client = spawn(client_argv(client_peer, port), stdin=subprocess.PIPE)
    with reaped(server, relay, client):
        received = feed_until_received(client, up, SIZE, keep=False)
        assert finish(client) == 0
        assert finish(server) == 0, server_log.wait()
        received.wait()
        line = stop_relay(relay)
    assert (received.count, received.hexdigest) == (SIZE, sha256(down))
    assert sha256(server_out.read_bytes()) == sha256(up)
    assert f"up {SIZE} B, down {SIZE} B, " in line
    assert line.endswith(", closed")


def test_request_then_fin_gets_the_whole_late_reply_through_the_relay(tmp_path: Path) -> None:
    """socat client: a request and FIN at once; socat server: 8 MiB back.  The FIN
    passes through as a FIN, so the reply is never cut (socat-in-the-middle would)."""
    reply = os.urandom(SIZE)
    (tmp_path / "reply.bin").write_bytes(reply)
    request_out = tmp_path / "request.out"
    with (tmp_path / "reply.bin").open("rb") as stdin, request_out.open("wb") as stdout:
        server, server_port, server_log = start_peer_server("socat", stdin, stdout)
    relay, port = start_relay(server_port)
    with reaped(server, relay):
        client = subprocess.run(
            client_argv("socat", port), input=b"GET /big\r\n", capture_output=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert finish(server) == 0, server_log.wait()
        line = stop_relay(relay)
    assert client.returncode == 0, client.stderr
    assert (len(client.stdout), sha256(client.stdout)) == (SIZE, sha256(reply))
    assert request_out.read_bytes() == b"GET /big\r\n"
    assert f"up 10 B, down {SIZE} B, " in line
    assert line.endswith(", closed")

"""Tests without Trio: a plain synchronous pytest file using ncat-trio's fixtures.

``sync_relay`` and ``toxiproxy_server`` come from the ``ncat_trio`` pytest plugin
(installed with ncat-trio) and run on a thread of their own: no pytest-trio, no event
loop of yours.  The code under test here is a blocking socket client; it could as well
be requests, psycopg or redis-py pointed at ``relay.port``.

Run:  pytest examples/sync_fixture_test.py
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from ncat_trio import Latency, ResetPeer
from ncat_trio.pytest_plugin import SyncRelayFactory
from ncat_trio.testing import ApiServer


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


@pytest.fixture
def echo_port() -> Iterator[int]:
    with EchoServer(("127.0.0.1", 0), Echo) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server.server_address[1]
        server.shutdown()


def ask(port: int, question: bytes) -> bytes:
    """The code under test: a blocking client that expects its bytes echoed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(question)
        answer = b""
        while len(answer) < len(question):
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("server closed early")
            answer += chunk
        return answer


def test_client_copes_with_latency(sync_relay: SyncRelayFactory, echo_port: int) -> None:
    relay = sync_relay(targets=[("127.0.0.1", echo_port)])
    assert ask(relay.port, b"fast") == b"fast"
    relay.faults.set(Latency(0.2, direction="down"))  # live, from this thread
    start = time.monotonic()
    assert ask(relay.port, b"slow") == b"slow"
    assert time.monotonic() - start >= 0.2


def test_client_sees_a_reset(sync_relay: SyncRelayFactory, echo_port: int) -> None:
    relay = sync_relay(targets=[("127.0.0.1", echo_port)], faults=[ResetPeer(after_bytes=0)])
    with pytest.raises(ConnectionResetError):
        ask(relay.port, b"doomed")


def test_any_toxiproxy_client_can_drive_it(toxiproxy_server: ApiServer, echo_port: int) -> None:
    body = {"name": "echo", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo_port}"}
    request = urllib.request.Request(
        f"{toxiproxy_server.url}/proxies", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        proxy = json.load(response)
    port = int(proxy["listen"].rpartition(":")[2])
    assert ask(port, b"through toxiproxy's API") == b"through toxiproxy's API"

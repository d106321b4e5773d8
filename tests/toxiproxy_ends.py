"""Ends for the toxiproxy API tests: an HTTP call, an echo upstream, a timed round trip.

Synchronous on purpose: these tests drive ``ncat_trio.testing.ApiServer`` (its own
thread) the way a non-Trio suite would.
"""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TIMEOUT = 30.0

#: A pytest of its own without pytest-trio (pyproject's ``trio_mode`` is then an unknown
#: option: a config warning, not an error, there).
PYTEST_WITHOUT_TRIO = [
    sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:trio",
    "-W", "ignore::pytest.PytestConfigWarning",
]  # fmt: skip


def run_pytest_without_trio(test_file: Path, cwd: Path) -> tuple[int, str]:
    """Run ``test_file`` in its own :data:`PYTEST_WITHOUT_TRIO`: (exit code, its output)."""
    proc = subprocess.run(
        [*PYTEST_WITHOUT_TRIO, str(test_file)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


def call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request to the API on 127.0.0.1:``port``; (status, parsed JSON or bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        content = response.read()
    finally:
        conn.close()
    if content and response.getheader("content-type", "").startswith("application/json"):
        return response.status, json.loads(content)
    return response.status, content


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT)
        try:
            while data := self.request.recv(1 << 16):
                self.request.sendall(data)
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def echo_server() -> Iterator[int]:
    """An echo server on 127.0.0.1 (any number of clients); yields its port."""
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def round_trip(conn: socket.socket, data: bytes = b"ping") -> float:
    """Send ``data`` through an echo path and wait for all of it; seconds taken."""
    start = time.monotonic()
    conn.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = conn.recv(1 << 16)
        assert chunk, f"EOF after {len(got)} of {len(data)} echoed bytes"
        got += chunk
    assert got == data
    return time.monotonic() - start


def upstream_of(port: int) -> str:
    return f"127.0.0.1:{port}"


def wait_closed(conn: socket.socket) -> bytes:
    """Read until the peer closes (FIN or RST); return what arrived before."""
    got = b""
    try:
        while chunk := conn.recv(1 << 16):
            got += chunk
    except ConnectionResetError:
        pass
    return got

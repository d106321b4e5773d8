"""Real toxiproxy clients nobody here wrote drive ``ncat-trio toxiproxy``.

* ``toxiproxy-python`` (PyPI, in the dev extra) and ``toxiproxy-node-client`` (npm,
  installed by .ci/run into tests/interop/js) run their normal flows: create a proxy,
  talk through it, latency with the delay measured, reset_peer / limit_data / timeout
  with their effect checked, update, remove, reset, delete.
* The ``curl`` calls of toxiproxy's README (its "Curl example" section), with their
  status lines and bodies.

In CI a missing client is a failure, not a skip (``support.missing``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ncat_trio.testing import ApiServer

from ..support import missing
from ..toxiproxy_ends import connect, echo_server, round_trip, upstream_of, wait_closed

pytestmark = pytest.mark.interop

JS = Path(__file__).resolve().parent / "js"


def python_client() -> Any:
    try:
        import toxiproxy  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        missing("toxiproxy-python (pip install -e '.[dev]')")
    return toxiproxy


def test_toxiproxy_python_client_flow(toxiproxy_server: ApiServer) -> None:
    toxiproxy = python_client()
    from toxiproxy.api import APIConsumer  # type: ignore[import-not-found, import-untyped, unused-ignore]
    from toxiproxy.exceptions import NotFound  # type: ignore[import-not-found, import-untyped, unused-ignore]

    server = toxiproxy.Toxiproxy()
    server.update_api_consumer(toxiproxy_server.host, toxiproxy_server.port)
    assert server.running()
    assert json.loads(server.version())["version"].startswith("2.")

    with echo_server() as upstream:
        proxy = server.create(upstream=upstream_of(upstream), name="py_echo")
        port = int(proxy.listen.rpartition(":")[2])
        assert port != 0
        assert proxy.enabled is True
        with connect(port) as conn:
            assert round_trip(conn) < 1.0

            proxy.add_toxic(type="latency", attributes={"latency": 1000})
            assert round_trip(conn) >= 1.0  # live: the same connection
            toxic = proxy.get_toxic("latency_downstream")
            assert (toxic.type, toxic.stream, toxic.attributes) == (
                "latency",
                "downstream",
                {"latency": 1000, "jitter": 0},
            )
            assert proxy.destroy_toxic("latency_downstream")
            assert round_trip(conn) < 1.0

        proxy.add_toxic(type="reset_peer", stream="upstream", attributes={"timeout": 0})
        with connect(port) as conn:
            conn.sendall(b"ping")
            with pytest.raises(ConnectionResetError):
                conn.recv(10)
        proxy.destroy_toxic("reset_peer_upstream")

        proxy.add_toxic(type="limit_data", attributes={"bytes": 5})
        with connect(port) as conn:
            conn.sendall(b"0123456789")
            got = b""
            while chunk := conn.recv(100):
                got += chunk
            assert got == b"01234"
        proxy.destroy_toxic("limit_data_downstream")

        proxy.add_toxic(type="timeout", attributes={"timeout": 300})
        with connect(port) as conn:
            start = time.monotonic()
            conn.sendall(b"ping")
            assert wait_closed(conn) == b""  # nothing got through; then the close
            assert time.monotonic() - start >= 0.3
        proxy.destroy_toxic("timeout_downstream")

        # Update: down and back up (the client POSTs {"enabled": ...}).
        with proxy.down():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=10)
            assert server.get_proxy("py_echo").enabled is False
        with connect(port) as conn:
            round_trip(conn)

        proxy.add_toxic(type="bandwidth", attributes={"rate": 1})
        assert server.reset()
        assert proxy.toxics() == {}

        populated = server.populate(
            [{"name": "py_pop", "listen": "127.0.0.1:0", "upstream": upstream_of(upstream)}]
        )
        assert [p.name for p in populated] == ["py_pop"]

        assert server.destroy(proxy)
        with pytest.raises(NotFound):
            APIConsumer.get("/proxies/py_echo")
        server.destroy_all()
        assert server.proxies() == {}


def node() -> str:
    path = shutil.which("node")
    if path is None:
        missing("node")
    assert path is not None
    if not (JS / "node_modules" / "toxiproxy-node-client").is_dir():
        missing("toxiproxy-node-client (npm ci in tests/interop/js; .ci/run does it)")
    return path


def test_toxiproxy_node_client_flow(toxiproxy_server: ApiServer) -> None:
    program = node()
    with echo_server() as upstream:
        proc = subprocess.run(
            [program, str(JS / "toxiproxy_flow.js"), toxiproxy_server.url, str(upstream)],
            cwd=JS,
            capture_output=True,
            timeout=120,
            check=False,
        )
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    assert out.strip().endswith("all steps passed"), out
    assert out.count("\nok ") >= 11, out


def curl(*args: str) -> tuple[str, str]:
    """``curl -i ...``; (status line, body)."""
    program = shutil.which("curl")
    if program is None:
        missing("curl")
    assert program is not None
    proc = subprocess.run(
        [program, "-s", "-i", "--max-time", "30", *args],
        capture_output=True,
        timeout=60,
        check=True,
    )
    text = proc.stdout.decode()
    head, _, body = text.partition("\r\n\r\n")
    return head.splitlines()[0], body


def test_readme_curl_calls(toxiproxy_server: ApiServer) -> None:
    """toxiproxy's README "Curl example", with a free port instead of 26379."""
    api = f"localhost:{toxiproxy_server.port}"
    with echo_server() as upstream:
        create = json.dumps(
            {"name": "redis", "upstream": f"localhost:{upstream}", "listen": "localhost:0"}
        )
        status, body = curl("-d", create, f"{api}/proxies")
        assert status == "HTTP/1.1 201 Created"
        proxy = json.loads(body)
        assert proxy == {
            "name": "redis",
            "listen": proxy["listen"],
            "upstream": f"localhost:{upstream}",
            "enabled": True,
            "toxics": [],
        }
        assert proxy["listen"].startswith("127.0.0.1:")

        status, body = curl(f"{api}/proxies")
        assert status == "HTTP/1.1 200 OK"
        assert json.loads(body) == {"redis": proxy}

        status, body = curl("-d", '{"type":"latency", "attributes":{"latency":1000}}',
                            f"{api}/proxies/redis/toxics")  # fmt: skip
        assert status == "HTTP/1.1 200 OK"
        assert json.loads(body) == {
            "attributes": {"latency": 1000, "jitter": 0},
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1,
        }
        port = int(proxy["listen"].rpartition(":")[2])
        with connect(port) as conn:
            assert round_trip(conn) >= 1.0

        status, body = curl("-X", "DELETE", f"{api}/proxies/redis/toxics/latency_downstream")
        assert (status, body) == ("HTTP/1.1 204 No Content", "")
        with connect(port) as conn:
            assert round_trip(conn) < 1.0

        status, body = curl("-X", "DELETE", f"{api}/proxies/redis")
        assert (status, body) == ("HTTP/1.1 204 No Content", "")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10)

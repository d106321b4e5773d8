"""``ncat_trio.testing``: a relay and the toxiproxy API for synchronous tests.

Plain ``def`` tests: the fixtures run their own Trio thread.  The docs' example
(examples/sync_fixture_test.py) also runs here in a pytest without pytest-trio.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from ncat_trio import Latency, Stall
from ncat_trio.pytest_plugin import SyncRelayFactory
from ncat_trio.testing import ApiServer, Relay

from ..toxiproxy_ends import (
    call,
    connect,
    echo_server,
    round_trip,
    run_pytest_without_trio,
    wait_closed,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sync_fixture_test.py"


def test_relay_context_manager_and_live_faults() -> None:
    with echo_server() as upstream, Relay(targets=[("127.0.0.1", upstream)]) as relay:
        assert relay.host == "127.0.0.1"
        with connect(relay.port) as conn:
            assert round_trip(conn) < 1.0  # no fault yet
            relay.faults.set(Latency(1.0, direction="down"))
            assert relay.faults.faults == (Latency(1.0, direction="down"),)
            assert round_trip(conn) >= 1.0
            relay.faults.clear()
            assert round_trip(conn, b"x" * 100_000) < 5
        relay.wait_quiet()
        stats = relay.statistics()
        assert (stats.total, stats.active) == (1, 0)
        assert stats.bytes_up == stats.bytes_down == 100_008
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    relay.close()  # idempotent


def test_close_cuts_live_connections() -> None:
    with echo_server() as upstream:
        relay = Relay(targets=[("127.0.0.1", upstream)], faults=[Stall()])
        with connect(relay.port) as conn:
            conn.sendall(b"held")
            relay.close()
            assert wait_closed(conn) == b""  # nothing got through; then the close


def test_start_errors_reach_the_caller() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(Exception, match="in use"):
            Relay(targets=[("127.0.0.1", 1)], listen=("127.0.0.1", port))
        with pytest.raises(Exception, match="in use"):
            ApiServer(port=port)


def test_sync_relay_fixture(sync_relay: SyncRelayFactory) -> None:
    with echo_server() as upstream:
        first = sync_relay(targets=[("127.0.0.1", upstream)])
        second = sync_relay(targets=[("127.0.0.1", first.port)], faults=[Latency(0.2)])
        with connect(second.port) as conn:
            start = time.monotonic()
            round_trip(conn)
            assert time.monotonic() - start >= 0.4  # 0.2 s each way


def test_api_server_config_and_fixture(toxiproxy_server: ApiServer) -> None:
    assert toxiproxy_server.url == f"http://127.0.0.1:{toxiproxy_server.port}"
    assert call(toxiproxy_server.port, "GET", "/proxies") == (200, {})
    with echo_server() as upstream:
        config = [{"name": "c", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream}"}]
        with ApiServer(config=config) as api:
            status, proxy = call(api.port, "GET", "/proxies/c")
            assert status == 200
            with connect(int(proxy["listen"].rpartition(":")[2])) as conn:
                round_trip(conn)


def test_readme_example_runs_without_pytest_trio() -> None:
    code, out = run_pytest_without_trio(EXAMPLE, EXAMPLE.parent.parent)
    assert code == 0, out
    assert "3 passed" in out, out


def test_readme_shows_the_example_that_runs() -> None:
    """docs/toxiproxy.md, "Tests without Trio": its fixture example is examples/sync_fixture_test.py."""
    readme = (EXAMPLE.parent.parent / "docs" / "toxiproxy.md").read_text()
    section = readme.split("## Tests without Trio", 1)[1]
    blocks = section.split("```python\n")
    shown = blocks[2].split("```", 1)[0]
    assert "sync_relay(" in shown
    assert shown in EXAMPLE.read_text()

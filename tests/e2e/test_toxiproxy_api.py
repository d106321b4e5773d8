"""``ncat-trio toxiproxy``: toxiproxy's HTTP API (v2), route by route, status by status.

Shapes and codes as toxiproxy's api.go: 201 proxy create/populate, 200 toxic create,
204 delete/reset, 404 unknown, 409 duplicate or port in use, 400 bad body.  Each test
runs the API on its own thread (the ``toxiproxy_server`` fixture) and talks plain HTTP.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ncat_trio.modes.http_server import MAX_BODY, MAX_HEAD, Request
from ncat_trio.testing import ApiServer

from ..support import NCAT, ServeOnce, finish, one_error_line, reaped, spawn, wait_for_port
from ..toxiproxy_ends import call, connect, echo_server, round_trip, upstream_of, wait_closed


def create(api: ApiServer, name: str, upstream_port: int, **extra: object) -> dict[str, object]:
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream_of(upstream_port)}
    status, proxy = call(api.port, "POST", "/proxies", {**body, **extra})
    assert status == 201, proxy
    assert isinstance(proxy, dict)
    return proxy


def port_of(proxy: dict[str, object]) -> int:
    return int(str(proxy["listen"]).rpartition(":")[2])


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_version(toxiproxy_server: ApiServer) -> None:
    status, body = call(toxiproxy_server.port, "GET", "/version")
    assert status == 200
    assert body["version"].startswith("2.")


def test_create_with_port_0_answers_the_real_port_and_relays(
    toxiproxy_server: ApiServer,
) -> None:
    with echo_server() as upstream:
        proxy = create(toxiproxy_server, "echo", upstream)
        assert proxy == {
            "name": "echo",
            "listen": proxy["listen"],
            "upstream": upstream_of(upstream),
            "enabled": True,
            "toxics": [],
        }
        assert str(proxy["listen"]).startswith("127.0.0.1:")
        assert port_of(proxy) != 0
        with connect(port_of(proxy)) as conn:
            round_trip(conn, b"hello through the API-created proxy")
        status, listed = call(toxiproxy_server.port, "GET", "/proxies")
        assert status == 200
        assert listed == {"echo": proxy}
        assert call(toxiproxy_server.port, "GET", "/proxies/echo") == (200, proxy)


def test_conflicts_are_409(toxiproxy_server: ApiServer) -> None:
    with echo_server() as upstream:
        first = create(toxiproxy_server, "a", upstream)
        body = {"name": "a", "listen": "127.0.0.1:0", "upstream": upstream_of(upstream)}
        assert call(toxiproxy_server.port, "POST", "/proxies", body) == (
            409,
            {"error": "proxy already exists", "status": 409},
        )
        taken = {"name": "b", "listen": first["listen"], "upstream": upstream_of(upstream)}
        status, error = call(toxiproxy_server.port, "POST", "/proxies", taken)
        assert status == 409
        assert "address already in use" in error["error"]
        assert call(toxiproxy_server.port, "GET", "/proxies/b")[0] == 404


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": "x", "upstream": ', "bad request body"),
        (b"", "bad request body: EOF"),
        (b"[1, 2]", "bad request body"),
        (b'{"name": 5, "upstream": "127.0.0.1:1"}', "bad request body: name must be a string"),
        (b'{"upstream": "127.0.0.1:1"}', "missing required field: name"),
        (b'{"name": "x"}', "missing required field: upstream"),
        (b'{"name": "x", "upstream": "no-port"}', "bad request body: upstream"),
    ],
)
def test_bad_bodies_are_400_with_a_message(
    toxiproxy_server: ApiServer, raw: bytes, message: str
) -> None:
    status, error = call(toxiproxy_server.port, "POST", "/proxies", raw=raw)
    assert status == 400
    assert error["status"] == 400
    assert error["error"].startswith(message), error
    assert call(toxiproxy_server.port, "GET", "/proxies") == (200, {})


def test_unknown_routes_methods_and_names(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    assert call(port, "GET", "/proxies/nope") == (404, {"error": "proxy not found", "status": 404})
    assert call(port, "DELETE", "/proxies/nope")[0] == 404
    assert call(port, "GET", "/proxies/nope/toxics")[0] == 404
    assert call(port, "GET", "/nothing/here")[0] == 404
    assert call(port, "PUT", "/proxies")[0] == 405
    assert call(port, "GET", "/reset")[0] == 404  # toxiproxy: POST only


def test_browsers_are_refused(toxiproxy_server: ApiServer) -> None:
    status, body = call(
        toxiproxy_server.port, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"}
    )
    assert status == 403
    assert body == b"User agent not allowed\n"


def test_oversize_body_is_413_and_oversize_head_is_431(toxiproxy_server: ApiServer) -> None:
    status, error = call(toxiproxy_server.port, "POST", "/proxies", raw=b" " * (MAX_BODY + 1))
    assert status == 413, error
    status, _ = call(
        toxiproxy_server.port, "GET", "/proxies", headers={"X-Padding": "a" * (MAX_HEAD + 1)}
    )
    assert status == 431
    assert call(toxiproxy_server.port, "GET", "/version")[0] == 200  # still serving


def test_toxic_routes_defaults_and_codes(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    with echo_server() as upstream:
        create(toxiproxy_server, "p", upstream)
        status, toxic = call(
            port, "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 10}}
        )
        assert status == 200  # toxiproxy answers 200, not 201, to a new toxic
        assert toxic == {
            "attributes": {"latency": 10, "jitter": 0},
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1,
        }
        again = call(port, "POST", "/proxies/p/toxics", {"type": "latency"})
        assert again == (409, {"error": "toxic already exists", "status": 409})
        assert call(port, "POST", "/proxies/p/toxics", {"type": "bogus"}) == (
            400,
            {"error": "invalid toxic type", "status": 400},
        )
        status, error = call(port, "POST", "/proxies/p/toxics", {"type": "latency", "stream": "x"})
        assert status == 400
        assert "upstream or downstream" in error["error"]
        status, error = call(
            port, "POST", "/proxies/p/toxics", {"type": "slicer", "attributes": {"average_size": 0}}
        )
        assert status == 400, error
        status, up = call(
            port,
            "POST",
            "/proxies/p/toxics",
            {"type": "limit_data", "stream": "upstream", "name": "cap", "toxicity": 0.5,
             "attributes": {"bytes": 1000}},
        )  # fmt: skip
        assert status == 200
        assert up["toxicity"] == 0.5
        status, listed = call(port, "GET", "/proxies/p/toxics")
        assert status == 200
        assert [t["name"] for t in listed] == ["cap", "latency_downstream"]  # upstream first
        assert call(port, "GET", "/proxies/p/toxics/cap") == (200, up)
        status, changed = call(
            port, "PATCH", "/proxies/p/toxics/latency_downstream", {"attributes": {"jitter": 5}}
        )
        assert status == 200
        assert changed["attributes"] == {"latency": 10, "jitter": 5}  # merged
        status, changed = call(port, "POST", "/proxies/p/toxics/cap", {"toxicity": 1.0})
        assert (status, changed["toxicity"], changed["attributes"]) == (200, 1, {"bytes": 1000})
        assert call(port, "PATCH", "/proxies/p/toxics/none", {})[0] == 404
        assert call(port, "GET", "/proxies/p/toxics/none") == (
            404,
            {"error": "toxic not found", "status": 404},
        )
        assert call(port, "DELETE", "/proxies/p/toxics/cap") == (204, b"")
        assert call(port, "DELETE", "/proxies/p/toxics/cap")[0] == 404
        assert call(port, "GET", "/proxies/p")[1]["toxics"] == [changed_latency(port)]


def changed_latency(port: int) -> dict[str, object]:
    return dict(call(port, "GET", "/proxies/p/toxics/latency_downstream")[1])


def test_toxic_changes_apply_to_live_connections(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    with echo_server() as upstream:
        proxy = create(toxiproxy_server, "live", upstream)
        with connect(port_of(proxy)) as conn:
            assert round_trip(conn) < 1.0
            latency = {"type": "latency", "attributes": {"latency": 1000}}
            assert call(port, "POST", "/proxies/live/toxics", latency)[0] == 200
            assert round_trip(conn) >= 1.0  # the same connection, its next chunk
            assert call(port, "DELETE", "/proxies/live/toxics/latency_downstream")[0] == 204
            assert round_trip(conn) < 1.0


def test_enabled_false_closes_listener_and_live_connections(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    with echo_server() as upstream:
        proxy = create(toxiproxy_server, "flip", upstream)
        listen = port_of(proxy)
        with connect(listen) as conn:
            round_trip(conn)
            status, off = call(port, "POST", "/proxies/flip", {"enabled": False})
            assert (status, off["enabled"], off["listen"]) == (200, False, proxy["listen"])
            assert wait_closed(conn) == b""  # nothing got through; then the close
        assert refused(listen)
        status, on = call(port, "PATCH", "/proxies/flip", {"enabled": True})
        assert (status, on["enabled"], on["listen"]) == (200, True, proxy["listen"])
        with connect(listen) as conn:
            round_trip(conn)


def test_update_upstream_restarts_and_delete_frees_the_port(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    with echo_server() as first, echo_server() as second:
        proxy = create(toxiproxy_server, "move", first)
        status, moved = call(port, "POST", "/proxies/move", {"upstream": upstream_of(second)})
        assert (status, moved["upstream"], moved["enabled"]) == (200, upstream_of(second), True)
        with connect(port_of(moved)) as conn:
            round_trip(conn)
        assert call(port, "DELETE", "/proxies/move") == (204, b"")
        assert refused(port_of(proxy))
        assert call(port, "DELETE", "/proxies/move")[0] == 404


def test_reset_enables_every_proxy_and_removes_every_toxic(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    with echo_server() as upstream:
        create(toxiproxy_server, "r", upstream)
        call(port, "POST", "/proxies/r/toxics", {"type": "timeout"})
        call(port, "POST", "/proxies/r", {"enabled": False})
        assert call(port, "POST", "/reset") == (204, b"")
        status, proxy = call(port, "GET", "/proxies/r")
        assert (status, proxy["enabled"], proxy["toxics"]) == (200, True, [])
        with connect(port_of(proxy)) as conn:
            round_trip(conn)


def test_populate_creates_keeps_and_replaces(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    with echo_server() as upstream, echo_server() as other:
        wanted = [
            {"name": "one", "listen": "127.0.0.1:0", "upstream": upstream_of(upstream)},
            {"name": "two", "listen": "127.0.0.1:0", "upstream": upstream_of(upstream),
             "enabled": False},
        ]  # fmt: skip
        status, body = call(port, "POST", "/populate", wanted)
        assert status == 201
        one, two = body["proxies"]
        assert (one["name"], one["enabled"], two["enabled"]) == ("one", True, False)
        # Same listen and upstream: left alone (its port and toxics kept).
        call(port, "POST", "/proxies/one/toxics", {"type": "latency"})
        same = [{"name": "one", "listen": one["listen"], "upstream": upstream_of(upstream)}]
        status, body = call(port, "POST", "/populate", same)
        assert status == 201
        assert body["proxies"][0]["listen"] == one["listen"]
        assert len(body["proxies"][0]["toxics"]) == 1
        # Another upstream: replaced.
        moved = [{"name": "one", "listen": one["listen"], "upstream": upstream_of(other)}]
        status, body = call(port, "POST", "/populate", moved)
        assert (status, body["proxies"][0]["upstream"], body["proxies"][0]["toxics"]) == (
            201,
            upstream_of(other),
            [],
        )
        # Checked before anything is created.
        bad = [{"name": "three", "upstream": upstream_of(upstream)}, {"name": "four"}]
        status, error = call(port, "POST", "/populate", bad)
        assert status == 400
        assert error["error"] == "missing required field: upstream at proxy 2"
        assert call(port, "GET", "/proxies/three")[0] == 404
        assert call(port, "POST", "/populate", {"name": "x"})[0] == 400


def test_limit_data_reset_peer_and_timeout_act_as_toxiproxy(toxiproxy_server: ApiServer) -> None:
    port = toxiproxy_server.port
    with echo_server() as upstream:
        proxy = create(toxiproxy_server, "t", upstream)
        listen = port_of(proxy)
        limit = {"type": "limit_data", "attributes": {"bytes": 5}}
        call(port, "POST", "/proxies/t/toxics", limit)
        with connect(listen) as conn:
            conn.sendall(b"0123456789")
            got = b""
            while chunk := conn.recv(100):
                got += chunk
            assert got == b"01234"  # exactly the limit, then a close
        call(port, "POST", "/reset")

        call(port, "POST", "/proxies/t/toxics", {"type": "reset_peer", "stream": "upstream"})
        with connect(listen) as conn:
            conn.sendall(b"anything")
            with pytest.raises(ConnectionResetError):
                conn.recv(100)
        call(port, "POST", "/reset")

        call(port, "POST", "/proxies/t/toxics", {"type": "timeout", "attributes": {"timeout": 300}})
        with connect(listen) as conn:
            start = time.monotonic()
            conn.sendall(b"held")
            assert wait_closed(conn) == b""  # nothing got through; then the close
            assert time.monotonic() - start >= 0.3


def _reply_after_eof(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(1 << 16):
        received += chunk
    conn.sendall(b"reply after your FIN: " + received)
    return received


@pytest.mark.parametrize("latency", [None, 200])
def test_half_close_passes_through_an_api_created_proxy(
    toxiproxy_server: ApiServer, latency: int | None
) -> None:
    """The client's FIN reaches the server, whose reply still reaches the client."""
    port = toxiproxy_server.port
    with ServeOnce(_reply_after_eof) as upstream:
        proxy = create(toxiproxy_server, "half", upstream.port)
        if latency is not None:
            for stream in ("upstream", "downstream"):
                toxic = {"type": "latency", "stream": stream, "attributes": {"latency": latency}}
                assert call(port, "POST", "/proxies/half/toxics", toxic)[0] == 200
        with connect(port_of(proxy)) as conn:
            start = time.monotonic()
            conn.sendall(b"request")
            conn.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := conn.recv(1 << 16):
                reply += chunk
        assert upstream.result() == b"request"
        assert reply == b"reply after your FIN: request"
        if latency is not None:
            assert time.monotonic() - start >= 2 * latency / 1000


def test_cli_serves_the_api_with_config(tmp_path: Path) -> None:
    with echo_server() as upstream:
        config = tmp_path / "toxiproxy.json"
        config.write_text(
            json.dumps(
                [{"name": "cfg", "listen": "127.0.0.1:0", "upstream": upstream_of(upstream)}]
            )
        )
        proc = spawn([*NCAT, "toxiproxy", "--port", "0", "--config", str(config)])
        with reaped(proc):
            assert proc.stderr is not None
            api = wait_for_port(proc.stderr)
            status, proxy = call(api, "GET", "/proxies/cfg")
            assert (status, proxy["enabled"]) == (200, True)
            with connect(port_of(proxy)) as conn:
                round_trip(conn)
            proc.terminate()
            assert finish(proc) == 143


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"not": "a list"}')
    proc = spawn([*NCAT, "toxiproxy", "--port", "0", "--config", str(config)])
    with reaped(proc):
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "--config" in one_error_line(err)


def test_toxics_in_toxiproxys_units(toxiproxy_server: ApiServer) -> None:
    """bandwidth in KB/s, slow_close in ms, slicer sizes in bytes, toxicity 0 = never."""
    port = toxiproxy_server.port
    with echo_server() as upstream:
        proxy = create(toxiproxy_server, "units", upstream)
        listen = port_of(proxy)
        never = {"type": "latency", "toxicity": 0, "attributes": {"latency": 5000}}
        assert call(port, "POST", "/proxies/units/toxics", never)[0] == 200
        with connect(listen) as conn:
            assert round_trip(conn) < 5.0
        call(port, "POST", "/reset")

        rate = {"type": "bandwidth", "attributes": {"rate": 100}}  # 100 KB/s
        assert call(port, "POST", "/proxies/units/toxics", rate)[0] == 200
        with connect(listen) as conn:
            assert round_trip(conn, b"b" * 50_000) >= 0.4  # 50 kB at 100 kB/s: 0.5 s
        call(port, "POST", "/reset")

        slicer = {"type": "slicer", "attributes": {"average_size": 7, "size_variation": 3}}
        assert call(port, "POST", "/proxies/units/toxics", slicer)[0] == 200
        with connect(listen) as conn:
            round_trip(conn, bytes(range(256)) * 8)  # intact, in any pieces
        call(port, "POST", "/reset")

        slow = {"type": "slow_close", "stream": "downstream", "attributes": {"delay": 300}}
        assert call(port, "POST", "/proxies/units/toxics", slow)[0] == 200
        with connect(listen) as conn:
            round_trip(conn)
            start = time.monotonic()
            conn.shutdown(socket.SHUT_WR)
            assert wait_closed(conn) == b""
            assert time.monotonic() - start >= 0.3


def test_keep_alive_and_expect_100_continue(toxiproxy_server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", toxiproxy_server.port), timeout=30) as conn:
        body = json.dumps({"name": "k", "upstream": "127.0.0.1:9"}).encode()
        conn.sendall(
            b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert conn.recv(1024).startswith(b"HTTP/1.1 100 ")
        conn.sendall(body)
        reader = conn.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 201 ")
        length = 0
        while (line := reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert json.loads(reader.read(length))["name"] == "k"
        conn.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")  # the same connection
        assert reader.readline() == b"HTTP/1.1 200 OK\r\n"
        reader.close()


def test_a_silent_client_is_closed_after_the_read_timeout(
    toxiproxy_server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ncat_trio.modes import http_server

    monkeypatch.setattr(http_server, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(http_server, "IDLE_TIMEOUT", 0.5)
    with socket.create_connection(("127.0.0.1", toxiproxy_server.port), timeout=30) as conn:
        start = time.monotonic()
        conn.sendall(b"GET /vers")  # and nothing more
        wait_closed(conn)
        assert 0.4 <= time.monotonic() - start < 20


def test_help_names_the_command_and_its_exposure() -> None:
    top = subprocess.run([*NCAT, "--help"], capture_output=True, timeout=60, check=True)
    assert b"toxiproxy" in top.stdout
    own = subprocess.run(
        [*NCAT, "toxiproxy", "--help"], capture_output=True, timeout=60, check=True
    )
    text = own.stdout.decode()
    assert "127.0.0.1" in text
    assert "8474" in text
    assert "open ports and cut connections" in " ".join(text.split())


def test_cli_refuses_a_bad_port() -> None:
    proc = subprocess.run([*NCAT, "toxiproxy", "--port", "http"], capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert "--port" in one_error_line(proc.stderr)


def test_a_bug_in_a_route_is_a_500_not_a_dead_server(
    toxiproxy_server: ApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ncat_trio.modes.toxiproxy import ToxiproxyApi

    original = ToxiproxyApi._route

    async def broken(self: ToxiproxyApi, request: Request) -> tuple[int, object]:
        if request.path == "/proxies":
            raise RuntimeError("simulated bug")
        return await original(self, request)

    monkeypatch.setattr(ToxiproxyApi, "_route", broken)
    with caplog.at_level(logging.INFO, logger="ncat_trio"):
        assert call(toxiproxy_server.port, "GET", "/proxies") == (
            500,
            {"error": "internal error", "status": 500},
        )
    assert "simulated bug" in caplog.text
    assert call(toxiproxy_server.port, "GET", "/version")[0] == 200


def test_same_listen_by_hostname_does_not_restart(toxiproxy_server: ApiServer) -> None:
    """toxiproxy 2.12: a listen address that resolves to the bound one is no change, so
    live connections stay; another port is a restart that cuts them."""
    port = toxiproxy_server.port
    with echo_server() as upstream:
        proxy = create(toxiproxy_server, "h", upstream, listen="localhost:0")
        listen = port_of(proxy)
        with connect(listen) as conn:
            round_trip(conn)
            status, same = call(port, "PATCH", "/proxies/h", {"listen": f"localhost:{listen}"})
            assert (status, same["listen"]) == (200, proxy["listen"])
            round_trip(conn)  # not restarted: the connection lives
            status, moved = call(port, "PATCH", "/proxies/h", {"listen": "127.0.0.1:0"})
            assert status == 200
            assert port_of(moved) != listen
            assert wait_closed(conn) == b""
        with connect(port_of(moved)) as conn:
            round_trip(conn)


def test_reset_peer_waits_its_timeout_after_the_first_data(toxiproxy_server: ApiServer) -> None:
    """toxiproxy's reset_peer: an idle connection is left alone; the first data is
    dropped and the reset follows ``timeout`` ms later."""
    port = toxiproxy_server.port
    with echo_server() as upstream:
        proxy = create(toxiproxy_server, "rp", upstream)
        with connect(port_of(proxy)) as conn:
            round_trip(conn)  # opened before the toxic: the toxic reaches it live
            toxic = {"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 300}}
            assert call(port, "POST", "/proxies/rp/toxics", toxic)[0] == 200
            start = time.monotonic()
            conn.sendall(b"dropped")
            with pytest.raises(ConnectionResetError):
                conn.recv(100)
            assert time.monotonic() - start >= 0.3


def test_cli_warns_when_the_api_leaves_loopback() -> None:
    proc = spawn([*NCAT, "toxiproxy", "--host", "0.0.0.0", "--port", "0"])
    with reaped(proc):
        assert proc.stderr is not None
        wait_for_port(proc.stderr)
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"warning: the toxiproxy API is not on loopback" in err

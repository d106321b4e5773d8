"""``--proxy``: the sans-I/O CONNECT handshakes, then ncat-trio through a SOCKS proxy.

The protocol tests feed every reply split at every byte and check that the machine
never asks for a byte past its reply (what the target sends next must reach the
session, not be swallowed).  The end-to-end tests run a minimal SOCKS5/SOCKS4 server
written here (no Debian package provides one on these machines); the HTTP CONNECT
proxy is ncat's own (``tests/interop/test_http_proxy.py``).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from collections.abc import Iterator

import pytest

from ncat_trio.cli.netcat_flags import proxy_settings
from ncat_trio.errors import LocalProtocolError, RemoteProtocolError, UsageError
from ncat_trio.proto.proxy import (
    NEED_DATA,
    Established,
    ProxyHandshake,
    ProxyRefused,
    ProxyType,
    parse_proxy_auth,
)

from ..support import ServeOnce, one_error_line, receive_all, recv_exactly, run_ncat


def drive(machine: ProxyHandshake, replies: bytes, split: int | None = None) -> tuple[bytes, bytes]:
    """Run ``machine`` against the proxy's ``replies``; return (what it sent, what it left).

    Reads are at most ``bytes_wanted()`` (and at most ``split`` bytes when given).
    """
    sent = bytearray()
    rest = replies
    while True:
        sent += machine.data_to_send()
        event = machine.next_event()
        if event is not NEED_DATA:
            assert isinstance(event, Established)
            return bytes(sent), rest
        wanted = machine.bytes_wanted()
        assert wanted > 0
        take = min(wanted, split or wanted)
        chunk, rest = rest[:take], rest[take:]
        machine.receive_data(chunk)


def drive_to_eof(machine: ProxyHandshake, replies: bytes) -> None:
    """Feed all of ``replies`` and then EOF; the machine must raise on the way."""
    drive(machine, replies)
    machine.receive_data(b"")
    machine.next_event()


SOCKS5_OK = b"\x05\x00" + b"\x05\x00\x00\x01" + bytes([127, 0, 0, 1]) + struct.pack("!H", 4242)
AFTER = b"first bytes from the target"


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, None])
def test_socks5_no_auth_sends_the_name_for_remote_dns(split: int | None) -> None:
    machine = ProxyHandshake(ProxyType.SOCKS5, "example.org", 443)
    sent, rest = drive(machine, SOCKS5_OK + AFTER, split)
    name = b"example.org"
    assert sent == b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x01\xbb"
    assert rest == AFTER  # nothing past the reply was consumed


def test_socks5_every_split_point_of_the_reply() -> None:
    for cut in range(1, len(SOCKS5_OK)):
        machine = ProxyHandshake(ProxyType.SOCKS5, "10.1.2.3", 80)
        machine.data_to_send()
        assert machine.next_event() is NEED_DATA
        machine.receive_data(SOCKS5_OK[:cut])
        events = [machine.next_event()]
        machine.data_to_send()
        machine.receive_data(SOCKS5_OK[cut:])
        events.append(machine.next_event())
        assert events[-1] == Established("127.0.0.1:4242"), cut


def test_socks5_ipv6_target_and_domain_bound_address() -> None:
    reply = b"\x05\x00" + b"\x05\x00\x00\x03\x05proxy" + struct.pack("!H", 1)
    machine = ProxyHandshake(ProxyType.SOCKS5, "::1", 22)
    sent, _ = drive(machine, reply)
    assert sent.endswith(b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01" + b"\x00\x16")
    assert machine.next_event() == Established("proxy:1")


def test_socks5_username_password() -> None:
    machine = ProxyHandshake(ProxyType.SOCKS5, "h", 1, username="user", password="p:w")
    sent, _ = drive(machine, b"\x05\x02" + b"\x01\x00" + SOCKS5_OK[2:])
    assert sent.startswith(b"\x05\x02\x00\x02" + b"\x01\x04user\x03p:w")


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (b"\x05\xff", ProxyRefused, "no acceptable method"),
        (b"\x05\x00\x05\x05\x00\x01" + bytes(6), ProxyRefused, "connection refused"),
        (b"\x05\x00\x05\x02\x00\x01" + bytes(6), ProxyRefused, "not allowed by ruleset"),
        (b"\x04\x00", RemoteProtocolError, "not a SOCKS5 proxy"),
        (b"\x05\x07", RemoteProtocolError, "not offered"),
        (b"\x05\x00\x05\x00\x00\x09\x00", RemoteProtocolError, "address type 9"),
        (b"\x05\x00\x05", RemoteProtocolError, "closed the connection"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", RemoteProtocolError, "version"),
    ],
    ids=["no-method", "refused", "ruleset", "not-socks", "bad-method", "bad-atyp", "eof", "http"],
)
def test_socks5_refusals_and_broken_replies(
    reply: bytes, error: type[Exception], words: str
) -> None:
    machine = ProxyHandshake(ProxyType.SOCKS5, "h", 1, proxy_name="socks5 proxy p:1")
    with pytest.raises(error, match=words):
        drive_to_eof(machine, reply)


def test_socks5_bad_auth_is_refused() -> None:
    machine = ProxyHandshake(ProxyType.SOCKS5, "h", 1, username="u", password="bad")
    with pytest.raises(ProxyRefused, match="authentication failed"):
        drive(machine, b"\x05\x02\x01\x01")


@pytest.mark.parametrize("split", [1, 3, None])
def test_socks4_and_4a(split: int | None) -> None:
    ok = b"\x00\x5a" + bytes(6)
    sent, rest = drive(ProxyHandshake(ProxyType.SOCKS4, "10.0.0.1", 80), ok + AFTER, split)
    assert sent == b"\x04\x01\x00\x50\x0a\x00\x00\x01\x00"
    assert rest == AFTER
    sent, _ = drive(ProxyHandshake(ProxyType.SOCKS4, "example.org", 80, username="me"), ok)
    assert sent == b"\x04\x01\x00\x50\x00\x00\x00\x01me\x00example.org\x00"
    with pytest.raises(ProxyRefused, match="rejected"):
        drive(ProxyHandshake(ProxyType.SOCKS4, "10.0.0.1", 80), b"\x00\x5b" + bytes(6))
    with pytest.raises(LocalProtocolError, match="IPv4 only"):
        ProxyHandshake(ProxyType.SOCKS4, "::1", 80)


HTTP_OK = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n"


@pytest.mark.parametrize("split", [1, 2, 3, 4, None])
def test_http_connect_with_basic_auth(split: int | None) -> None:
    machine = ProxyHandshake(
        ProxyType.HTTP, "::1", 8080, username="Aladdin", password="open sesame"
    )
    sent, rest = drive(machine, HTTP_OK + AFTER, split)
    assert sent == (
        b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n"
        b"Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    )
    assert rest == AFTER  # a target that speaks first loses nothing


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", ProxyRefused, "407.*proxy-auth"),
        (b"HTTP/1.0 403 Forbidden\r\n\r\n", ProxyRefused, "HTTP 403 Forbidden"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", RemoteProtocolError, "not an HTTP response"),
        (b"HTTP/1.1 200 OK\r\n", RemoteProtocolError, "closed the connection"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 4000, RemoteProtocolError, "too long"),
    ],
    ids=["407", "403", "not-http", "eof", "endless"],
)
def test_http_refusals_and_broken_replies(reply: bytes, error: type[Exception], words: str) -> None:
    machine = ProxyHandshake(ProxyType.HTTP, "h", 1)
    with pytest.raises(error, match=words):
        drive_to_eof(machine, reply)


def test_proxy_auth_parsing() -> None:
    """proto refuses in its own terms; the CLI's flag parser makes it a usage error."""
    assert parse_proxy_auth("u:p:q") == ("u", "p:q")
    for bad in ("nopass", ":p"):
        with pytest.raises(LocalProtocolError, match="--proxy-auth"):
            parse_proxy_auth(bad)
        with pytest.raises(UsageError, match="--proxy-auth") as caught:
            proxy_settings("127.0.0.1:1080", "socks5", bad, family=0, numeric=True)
        assert caught.value.exit_code == 2


# --- end to end through a SOCKS server written here ------------------------------------


class SocksServer:
    """One SOCKS5 (or SOCKS4) client: records its request, then connects to a real
    target on 127.0.0.1 and relays both ways (blocking sockets, threads)."""

    def __init__(self, *, version: int = 5, refuse: int = 0, target_port: int = 0) -> None:
        self.version = version
        self.refuse = refuse
        self.target_port = target_port
        self.request: tuple[int, bytes, int] | None = None  # (atyp, address, port)
        self._server = ServeOnce(self._handle)
        self.port = self._server.port

    def _handle(self, conn: socket.socket) -> None:
        if self.version == 5:
            _, count = recv_exactly(conn, 2)
            recv_exactly(conn, count)
            conn.sendall(b"\x05\x00")
            _, _, _, atyp = recv_exactly(conn, 4)
            address = recv_exactly(
                conn, recv_exactly(conn, 1)[0] if atyp == 3 else 4 if atyp == 1 else 16
            )
            port = struct.unpack("!H", recv_exactly(conn, 2))[0]
            self.request = (atyp, address, port)
            conn.sendall(b"\x05" + bytes([self.refuse]) + b"\x00\x01" + bytes(6))
        else:
            head = recv_exactly(conn, 8)
            port = struct.unpack("!H", head[2:4])[0]
            self.request = (4, head[4:8], port)
            while recv_exactly(conn, 1) != b"\x00":  # user id
                pass
            conn.sendall(b"\x00" + (b"\x5b" if self.refuse else b"\x5a") + bytes(6))
        if self.refuse:
            return
        with socket.create_connection(("127.0.0.1", self.target_port), timeout=30) as target:
            relay(conn, target)

    def result(self) -> None:
        self._server.result()

    def __enter__(self) -> SocksServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)


def relay(a: socket.socket, b: socket.socket) -> None:
    """Both directions with half-close, until both have ended."""

    def one_way(src: socket.socket, dst: socket.socket) -> None:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
        dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=one_way, args=(b, a), daemon=True)
    other.start()
    one_way(a, b)
    other.join(30)


def echo_upper(conn: socket.socket) -> bytes:
    request = receive_all(conn)
    conn.sendall(request.upper())
    return request


@pytest.fixture
def target() -> Iterator[ServeOnce[bytes]]:
    with ServeOnce(echo_upper) as server:
        yield server


def run(args: list[str], data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return run_ncat(args, data)


def through(
    proxy_port: int, kind: str, host: str, port: int, data: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """``connect --proxy 127.0.0.1:PROXY_PORT --proxy-type KIND HOST PORT`` < data."""
    return run(
        ["connect", "--proxy", f"127.0.0.1:{proxy_port}", "--proxy-type", kind, host, str(port)],
        data,
    )


def test_through_socks5_with_remote_dns(target: ServeOnce[bytes]) -> None:
    with SocksServer(target_port=target.port) as proxy:
        done = through(proxy.port, "socks5", "localhost", target.port, b"through the tunnel\n")
        proxy.result()
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == b"THROUGH THE TUNNEL\n"
    assert target.result() == b"through the tunnel\n"
    assert proxy.request == (3, b"localhost", target.port)  # the name, not an address


def test_through_socks4(target: ServeOnce[bytes]) -> None:
    with SocksServer(version=4, target_port=target.port) as proxy:
        done = through(proxy.port, "socks4", "127.0.0.1", target.port, b"four")
        proxy.result()
    assert (done.returncode, done.stdout) == (0, b"FOUR"), done.stderr
    assert proxy.request == (4, bytes([127, 0, 0, 1]), target.port)


@pytest.mark.parametrize("version", [5, 4])
def test_a_proxy_that_refuses_is_exit_1_with_its_reason(version: int) -> None:
    kind = f"socks{version}"
    with SocksServer(version=version, refuse=5) as proxy:
        done = through(proxy.port, kind, "127.0.0.1", 9)
        proxy.result()
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert f"{kind} proxy 127.0.0.1:{proxy.port}" in line
    assert ("connection refused" if version == 5 else "rejected") in line


def test_a_proxy_that_is_not_listening_is_exit_1() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run(["connect", "--proxy", f"127.0.0.1:{port}", "127.0.0.1", "9"])
    assert done.returncode == 1
    # the message names the proxy, not just an address (issue 16 §4)
    assert one_error_line(done.stderr) == (
        f"ncat-trio: http proxy 127.0.0.1:{port}: refused the connection"
    )


def test_a_proxy_that_talks_nonsense_is_exit_6() -> None:
    def nonsense(conn: socket.socket) -> None:
        conn.recv(100)
        conn.sendall(b"\x00\x00")

    with ServeOnce(nonsense) as server:
        done = through(server.port, "socks5", "127.0.0.1", 9)
        server.result()
    assert done.returncode == 6
    assert "not a SOCKS5 proxy" in one_error_line(done.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["--proxy-type", "socks5", "127.0.0.1", "1"],
        ["--proxy", "127.0.0.1:1", "--proxy-type", "socks6", "127.0.0.1", "1"],
        ["--proxy", "127.0.0.1:99999", "127.0.0.1", "1"],
        ["--proxy", "127.0.0.1:1", "--proxy-auth", "nocolon", "127.0.0.1", "1"],
    ],
    ids=["type-without-proxy", "bad-type", "bad-port", "bad-auth"],
)
def test_bad_proxy_flags_are_usage_errors(args: list[str]) -> None:
    done = run(["connect", *args])
    assert done.returncode == 2, done.stderr
    one_error_line(done.stderr)

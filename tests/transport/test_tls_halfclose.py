"""TLS closing (issue 7 leftovers): half-close under TLS 1.3, the TLS 1.2 fallback,
truncation and ``--ssl-allow-truncation``.

In process over ``trio.testing`` streams (pure Trio: no sockets, no sleeps), then end to
end with two ncat-trio processes that both reach stdin EOF and must both finish.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from ncat_trio.errors import ConnectError
from ncat_trio.modes.netcat import SessionOptions, netcat_session
from ncat_trio.transport import tls
from ncat_trio.transport.tls_stream import TlsStream, TlsTruncated
from ncat_trio.transport.zerocopy import classify

from ..support import (
    NCAT,
    Drain,
    Feed,
    Pki,
    finish,
    read_to_eof,
    reply_after_eof,
    sha256,
    spawn,
    spawn_listener,
)
from ..tls_keyupdate_peer import reply


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def contexts(
    pki: Pki, *, server_max: ssl.TLSVersion | None = None
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(client, server) contexts, built by ncat-trio's own functions."""
    client = tls.client_context(tls.TlsOptions(ca_file=str(pki.ca_file)))
    server = tls.server_context(
        tls.TlsOptions(server=True, cert_file=str(pki.cert_file), key_file=str(pki.key_file))
    )
    if server_max is not None:
        server.maximum_version = server_max
    return client, server


@asynccontextmanager
async def tls_pair(
    pki: Pki,
    *,
    server_max: ssl.TLSVersion | None = None,
    socketpair: bool = False,
    allow_truncation: bool = False,
) -> AsyncIterator[tuple[TlsStream, TlsStream, trio.abc.HalfCloseableStream]]:
    """(client, server, the server's transport), handshaken."""
    left: trio.abc.HalfCloseableStream
    right: trio.abc.HalfCloseableStream
    if socketpair:  # small kernel buffers: real backpressure, which exposes deadlocks
        ends = trio.socket.socketpair()
        for end in ends:
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        left, right = trio.SocketStream(ends[0]), trio.SocketStream(ends[1])
    else:
        left, right = trio.testing.memory_stream_pair()
    client_context, server_context = contexts(pki, server_max=server_max)
    client = TlsStream(
        left,
        client_context,
        server_side=False,
        server_hostname="localhost",
        peer_name="server",
        allow_truncation=allow_truncation,
    )
    server = TlsStream(
        right, server_context, server_side=True, server_hostname=None, peer_name="client"
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.do_handshake)
            await client.do_handshake()
        try:
            yield client, server, right
        finally:
            await trio.aclose_forcefully(left)
            await trio.aclose_forcefully(right)


# --- half-close under TLS 1.3 ---------------------------------------------------------


async def test_tls13_send_eof_is_a_half_close_and_the_reply_still_arrives(
    pki: Pki,
) -> None:
    async with tls_pair(pki) as (client, server, _):
        assert client.version() == "TLSv1.3"
        assert client.half_close
        await client.send_all(b"request")
        await client.send_eof()  # close_notify now, not at aclose
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"more")
        assert await read_to_eof(server) == b"request"  # ends: the close_notify arrived
        await server.send_all(b"reply after your EOF")  # the server can still send
        await server.send_eof()
        assert await read_to_eof(client) == b"reply after your EOF"
        assert not client.truncated
        assert not server.truncated
        await client.aclose()
        await server.aclose()


async def test_both_ends_send_eof_first_and_both_finish(pki: Pki) -> None:
    """The deadlock of the old policy: each end waited for the other's close_notify."""
    async with tls_pair(pki) as (client, server, _):
        await client.send_eof()
        await server.send_eof()
        with trio.fail_after(5):
            assert await client.receive_some() == b""
            assert await server.receive_some() == b""


async def test_records_already_received_survive_send_eof(pki: Pki) -> None:
    """OpenSSL's second SSL_shutdown (inside unwrap) would read a complete record and
    fail on it: send_eof decrypts them first, and receive_some returns them in order."""
    async with tls_pair(pki) as (client, server, _):
        payload = os.urandom(100_000)
        for start in range(0, len(payload), 10_000):  # several records in flight
            await server.send_all(payload[start : start + 10_000])
        first = await client.receive_some(1000)  # a part of the first record
        await trio.testing.wait_all_tasks_blocked()
        await client.send_eof()
        rest = await receive_all_until(client, len(payload) - len(first))
        assert first + rest == payload
        await server.send_all(b"tail")
        await server.send_eof()
        assert await read_to_eof(client) == b"tail"
        assert await read_to_eof(server) == b""  # our close_notify arrived intact


async def receive_all_until(stream: TlsStream, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = await stream.receive_some(7000)
        assert chunk, "EOF before the data"
        data += chunk
    return data


async def test_both_ways_at_once_under_backpressure(pki: Pki) -> None:
    """Both ends blocked in send_all while the other must read: a receive that waited
    for the send lock would deadlock here."""
    up, down = os.urandom(1 << 20), os.urandom(1 << 20)
    received: dict[str, bytes] = {}
    async with tls_pair(pki, socketpair=True) as (client, server, _):

        async def send(stream: TlsStream, data: bytes) -> None:
            for start in range(0, len(data), 65536):
                await stream.send_all(data[start : start + 65536])
            await stream.send_eof()

        async def receive(stream: TlsStream, name: str) -> None:
            received[name] = await read_to_eof(stream)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, client, up)
                nursery.start_soon(send, server, down)
                nursery.start_soon(receive, client, "client")
                nursery.start_soon(receive, server, "server")
    assert received["server"] == up
    assert received["client"] == down


async def test_two_sessions_that_both_reach_stdin_eof_both_end(pki: Pki) -> None:
    """netcat_session on each end, stdin at EOF on both, no -q: both return."""
    async with tls_pair(pki) as (client, server, _):
        results = {}

        async def side(name: str, conn: TlsStream, data: bytes) -> None:
            stdin_send, stdin = trio.testing.memory_stream_one_way_pair()
            stdout, stdout_receive = trio.testing.memory_stream_one_way_pair()
            await stdin_send.send_all(data)
            await stdin_send.aclose()
            result = await netcat_session(conn, stdin, stdout, SessionOptions(zerocopy=False))
            await conn.aclose()
            await stdout.aclose()
            results[name] = (result, await read_to_eof(stdout_receive))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(side, "client", client, b"up")
                nursery.start_soon(side, "server", server, b"down")
    for name, expected in (("client", b"down"), ("server", b"up")):
        result, written = results[name]
        assert written == expected
        assert result.stdin_eof
        assert result.peer_eof
        assert not result.lingered_out


# --- TLS 1.2: no half-close ------------------------------------------------------------


async def test_tls12_send_eof_sends_nothing_and_aclose_sends_close_notify(
    pki: Pki, autojump_clock: trio.testing.MockClock
) -> None:
    async with tls_pair(pki, server_max=ssl.TLSVersion.TLSv1_2) as (client, server, _):
        assert client.version() == "TLSv1.2"
        assert not client.half_close
        await client.send_all(b"request")
        await client.send_eof()
        got = b""
        with trio.move_on_after(5) as waiting:  # the mock clock jumps: a pure-Trio wait
            while True:
                chunk = await server.receive_some()
                assert chunk, "close_notify sent at send_eof under TLS 1.2"
                got += chunk
        assert waiting.cancelled_caught
        assert got == b"request"
        await server.send_all(b"reply")
        assert await client.receive_some() == b"reply"
        await client.aclose()  # now the close_notify goes
        assert await server.receive_some() == b""


# --- truncation ---------------------------------------------------------------------


async def test_truncation_comes_after_the_data(pki: Pki) -> None:
    async with tls_pair(pki) as (client, server, server_transport):
        await server.send_all(b"data")
        await server_transport.aclose()  # TCP-level close, no close_notify
        assert await client.receive_some() == b"data"
        with pytest.raises(TlsTruncated, match="TLS truncated: the peer closed without"):
            await client.receive_some()
        assert client.truncated


async def test_allowed_truncation_is_one_line_then_eof_and_sending_goes_on(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like ncat: a bare FIN ends its side only; our upload may still follow."""
    async with tls_pair(pki, allow_truncation=True) as (client, server, server_transport):
        await server.send_all(b"data")
        await server_transport.send_eof()  # shutdown(SHUT_WR) under TLS: ncat's habit
        assert await read_to_eof(client) == b"data"
        assert client.truncated
        await client.send_all(b"still sending")  # OpenSSL did not break the connection
        await client.send_eof()
        assert await read_to_eof(server) == b"still sending"
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "ncat-trio: server: TLS truncated: the peer closed without close_notify (what "
        "arrived was written, but may be incomplete) [--ssl-allow-truncation: taken as "
        "its EOF]"
    ]


async def test_a_close_notify_and_fin_together_are_not_a_truncation(pki: Pki) -> None:
    async with tls_pair(pki) as (client, server, server_transport):
        await server.send_all(b"last words")
        await server.send_eof()
        await server_transport.aclose()  # the FIN right behind the close_notify
        await trio.testing.wait_all_tasks_blocked()
        assert await read_to_eof(client) == b"last words"
        assert not client.truncated


async def test_tls_streams_never_take_the_zero_copy_path(pki: Pki) -> None:
    async with tls_pair(pki) as (client, _server, _):
        assert classify(client) is None
        assert "TLSv1.3" in tls.describe(client)
    sock = trio.socket.socket()
    with sock:
        assert classify(trio.SocketStream(sock)) is not None  # the plain socket would


# --- end to end: two ncat-trio processes ------------------------------------------------


def test_two_processes_at_stdin_eof_both_exit_0_with_a_reply_after_the_eof(
    pki: Pki,
) -> None:
    """No -q anywhere.  The client's stdin ends first; the listener writes its reply
    only after the client's whole upload has arrived, so the reply crosses the
    client's close_notify."""
    ca_file, server_args = pki.ca_file, pki.server_args()
    up, down = os.urandom(1 << 20), os.urandom(1 << 20)
    listener, port = spawn_listener(
        ["listen", *server_args, "127.0.0.1", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    client = spawn(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca_file), "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
    )
    reply_after_eof(client, listener, up, down)
    with client, listener:
        assert finish(client, 30) == 0
        assert finish(listener, 30) == 0


def test_two_processes_with_nothing_to_send_both_exit_0(pki: Pki) -> None:
    """The brief's reproduction: ``listen --ssl </dev/null`` and ``connect --ssl </dev/null``."""
    ca_file, server_args = pki.ca_file, pki.server_args()
    listener, port = spawn_listener(["listen", *server_args, "127.0.0.1", "0"])
    client = subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(ca_file), "127.0.0.1", str(port)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (client.returncode, client.stdout, client.stderr) == (0, b"", b"")
    with listener:
        assert finish(listener, 30) == 0
        assert listener.stdout is not None
        assert listener.stdout.read() == b""


async def test_a_peer_closing_during_the_handshake_is_a_connect_error(pki: Pki) -> None:
    client_context, _ = contexts(pki)
    left, right = trio.testing.memory_stream_pair()
    await right.send_eof()  # the server ends its side before answering
    with pytest.raises(ConnectError, match="the peer closed during the handshake"):
        await tls.start_tls(
            left, client_context, server=False, server_name="localhost", peer_name="server"
        )


# --- A KeyUpdate after our close_notify (TLS 1.3) ---------------------------------------

_REPLY = 1 << 20
_KEY_UPDATE_MODES = pytest.mark.parametrize(
    "mode", [0, 1], ids=["update_not_requested", "update_requested"]
)


def _keyupdate_peer(*args: str) -> subprocess.Popen[bytes]:
    """tests/tls_keyupdate_peer.py: libssl through ctypes (Python's ssl cannot send a
    KeyUpdate), from the repository root so that ``-m tests.…`` resolves."""
    return spawn(
        [sys.executable, "-m", "tests.tls_keyupdate_peer", *args],
        cwd=Path(__file__).resolve().parents[2],
    )


def _peer_summary(peer: subprocess.Popen[bytes]) -> list[bytes]:
    with peer:
        assert finish(peer, 30) == 0, peer.stderr.read() if peer.stderr else b""
        assert peer.stdout is not None
        return peer.stdout.read().split()


@_KEY_UPDATE_MODES
def test_connect_reads_on_through_a_key_update_after_its_close_notify(pki: Pki, mode: int) -> None:
    """RFC 8446 §4.6.3 allows a KeyUpdate at any time after the handshake, also after
    our close_notify (our side has stopped sending, the peer's has not).  With
    ``update_requested`` the peer asks for a KeyUpdate back, which a closed sending side
    cannot give; libssl must not turn that into an error while we read the reply."""
    up = os.urandom(256 << 10)
    peer = _keyupdate_peer("server", str(pki.cert_file), str(pki.key_file), str(mode), str(_REPLY))
    assert peer.stdout is not None
    ready, _, _ = select.select([peer.stdout], [], [], 30)
    assert ready, "the KeyUpdate peer printed no port"
    port = int(peer.stdout.readline())
    client = subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-ca", str(pki.ca_file), "127.0.0.1", str(port)],
        input=up,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (client.returncode, client.stderr) == (0, b"")
    assert sha256(client.stdout) == sha256(reply(_REPLY))
    assert _peer_summary(peer) == [b"got", sha256(up).encode(), b"0x0304"]


@_KEY_UPDATE_MODES
def test_listen_reads_on_through_a_key_update_after_its_close_notify(pki: Pki, mode: int) -> None:
    up = os.urandom(256 << 10)
    listener, port = spawn_listener(
        ["listen", *pki.server_args(), "127.0.0.1", "0"], stdin=subprocess.PIPE
    )
    assert listener.stdin is not None
    assert listener.stdout is not None
    at_listener = Drain(listener.stdout)
    Feed(listener.stdin, up)  # sent once the peer connects, then close_notify
    peer = _keyupdate_peer("client", str(port), str(mode), str(_REPLY))
    assert _peer_summary(peer) == [b"got", sha256(up).encode(), b"0x0304"]
    assert sha256(at_listener.wait()) == sha256(reply(_REPLY))
    with listener:
        assert finish(listener, 30) == 0

"""What connect/listen put between the socket and the session (issue 7, part B).

* ``--proxy``: the TCP connection goes to the proxy, then a CONNECT handshake
  (:mod:`ncat_trio.proto.proxy`) turns it into a tunnel to the target.  The handshake
  never reads past the proxy's reply, so the result is still a plain
  ``trio.SocketStream`` and the zero-copy paths still apply to it.
* ``--ssl``: :func:`ncat_trio.transport.tls.start_tls` over that stream.
* ``-o/--output``: a :class:`~ncat_trio.transport.hexdump.TappedStream` around the
  (decrypted) stream; ``-C/--crlf``: a translating stdin.  Both are user-space
  streams, so the portable pump carries the bytes whenever they are on.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import trio

from .. import diag
from ..errors import ConnectError, ConnectionLost
from ..proto.proxy import NEED_DATA, ProxyHandshake, ProxyType
from ..transport import net, tls
from ..transport.crlf import CrlfReceiveStream
from ..transport.hexdump import HexDumpFile, TappedStream
from ..transport.pump import STREAM_ERRORS, Side, translate, translated

#: Seconds a listener gives a client to finish its TLS handshake.  A client that
#: trickles its ClientHello (slowloris) or stops half-way is dropped after this (and
#: a single-shot listener goes on waiting for a real client).  Listen has no -w.
LISTEN_HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProxySettings:
    """``--proxy HOST:PORT --proxy-type T [--proxy-auth USER:PASS]``."""

    endpoint: net.Endpoint
    kind: ProxyType = ProxyType.SOCKS5
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class DumpOptions:
    """``-o/--output FILE`` and ``--append-output``."""

    path: str
    append: bool = False


async def connect(
    target: net.Endpoint,
    proxy: ProxySettings,
    *,
    source: net.Endpoint | None = None,
    nodelay: bool = False,
) -> trio.SocketStream:
    """A stream to ``target`` through ``proxy`` (its DNS, for names)."""
    try:
        conn = await net.connect_tcp(proxy.endpoint, source=source, nodelay=nodelay)
    except ConnectError as exc:  # name the proxy, not just an address (issue 16 §4)
        why = "refused the connection" if exc.why == "connection refused" else exc.why
        raise ConnectError(f"{proxy.kind.value} proxy {proxy.endpoint}", why) from exc
    try:
        await proxy_handshake(conn, proxy, target)
    except BaseException:
        await trio.aclose_forcefully(conn)
        raise
    return conn


async def proxy_handshake(conn: trio.abc.Stream, proxy: ProxySettings, target: net.Endpoint) -> str:
    """Run the CONNECT handshake on ``conn``; return the bound address the proxy named."""
    assert target.host is not None
    name = f"{proxy.kind.value} proxy {proxy.endpoint}"
    side = Side(name, local=False)
    machine = ProxyHandshake(
        proxy.kind,
        target.host,
        target.port,
        username=proxy.username,
        password=proxy.password,
        proxy_name=name,
    )
    while True:
        event = machine.next_event()  # may queue the next request: send it before reading
        outgoing = machine.data_to_send()
        if outgoing:
            with translated(side):
                await conn.send_all(outgoing)
        if event is not NEED_DATA:
            return event.bound
        try:
            data = await conn.receive_some(machine.bytes_wanted())
        except STREAM_ERRORS as exc:
            error = translate(exc, side)
            raise ConnectionLost(error.what, f"{error.why} during the handshake") from exc
        machine.receive_data(data)


@dataclass(kw_only=True)
class Layers:
    """The per-process part of TLS, ``-o`` and ``-C``, applied to each connection.

    Built once per ``connect``/``listen``: a listener's TLS context (and so its
    generated certificate and the fingerprint line) exists before ``listening on``,
    and the ``-o`` file is created (or truncated) before any connection, so a bad
    path fails at start (exit 5).  Each connection then appends to it.
    """

    tls_options: tls.TlsOptions | None = None
    dump: DumpOptions | None = None
    crlf: bool = False
    verbose: bool = False
    context: ssl.SSLContext | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.tls_options is not None:
            make = tls.server_context if self.tls_options.server else tls.client_context
            self.context = make(self.tls_options)
        if self.dump is not None:
            HexDumpFile(self.dump.path, append=self.dump.append).close()

    async def wrap(
        self,
        conn: trio.SocketStream,
        *,
        host: str | None,
        peer_name: str,
        handshake_timeout: float | None = None,
    ) -> trio.abc.HalfCloseableStream:
        """``conn`` with TLS (handshake done) and the ``-o`` tap, as configured."""
        stream: trio.abc.HalfCloseableStream = conn
        if self.tls_options is not None and self.context is not None:
            options = self.tls_options
            secure = await tls.start_tls(
                conn,
                self.context,
                server=options.server,
                server_name=options.server_name or host,
                peer_name=peer_name,
                handshake_timeout=handshake_timeout,
                allow_truncation=options.allow_truncation,
            )
            if self.verbose:
                diag.say(f"TLS with {peer_name}: {tls.describe(secure)}")
            stream = secure
        if self.dump is not None:
            stream = TappedStream(stream, HexDumpFile(self.dump.path, append=True))
        return stream

    def stdin(self, stdin: trio.abc.ReceiveStream | None) -> trio.abc.ReceiveStream | None:
        """stdin with ``-C`` applied."""
        if self.crlf and stdin is not None:
            return CrlfReceiveStream(stdin)
        return stdin


__all__ = [
    "DumpOptions",
    "Layers",
    "ProxySettings",
    "connect",
    "proxy_handshake",
]

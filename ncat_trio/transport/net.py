"""Opening TCP connections and listeners, with OS errors translated once, here.

Trio's ``open_tcp_stream`` cannot bind a source *port* (nc's ``-p``), so connecting is
done by hand: resolve, then try each address in order with an optional source bind.
"""

from __future__ import annotations

import errno
import os
import socket as _stdsocket
from collections.abc import Callable

import trio

from ..diag import format_address, say
from ..errors import ConnectError, ConnectionLost
from .endpoint import Endpoint as Endpoint  # re-exported: callers import it from here

AddrInfo = tuple[
    _stdsocket.AddressFamily,
    _stdsocket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int],
]


async def resolve(
    endpoint: Endpoint, *, passive: bool = False, socktype: int = _stdsocket.SOCK_STREAM
) -> list[AddrInfo]:
    """getaddrinfo with -n/-4/-6 applied; failures become :class:`ConnectError`."""
    host = endpoint.host
    if host is not None and (
        host.rstrip(".").lower() == "invalid" or host.rstrip(".").lower().endswith(".invalid")
    ):
        # RFC 6761 §6.4: names under .invalid never resolve; don't ask a DNS server.
        raise ConnectError(
            f"cannot resolve {host}", "name or service not known (.invalid is reserved)"
        )
    flags = _stdsocket.AI_ADDRCONFIG if endpoint.host not in (None, "localhost") else 0
    if endpoint.numeric:
        flags |= _stdsocket.AI_NUMERICHOST
    if passive:
        flags |= _stdsocket.AI_PASSIVE
    try:
        infos = await trio.socket.getaddrinfo(
            endpoint.host, endpoint.port, endpoint.family, socktype, 0, flags
        )
    except _stdsocket.gaierror as exc:
        why = exc.strerror or str(exc)
        if endpoint.numeric and exc.errno == _stdsocket.EAI_NONAME:
            why = "not a numeric address (-n forbids DNS)"
        raise ConnectError(f"cannot resolve {endpoint.host}", why.lower()) from exc
    except UnicodeError as exc:
        raise ConnectError(f"cannot resolve {endpoint.host}", "invalid host name") from exc
    if not infos:
        raise ConnectError(f"cannot resolve {endpoint.host}", "no addresses")
    return infos  # type: ignore[return-value]


def _why(exc: OSError) -> str:
    # Trio's connect() wraps the reason ("Error connecting to (...): Connection refused");
    # the errno's own text is the one line a user needs.
    text = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
    return text[0].lower() + text[1:] if text else "failed"


async def connect_tcp(
    target: Endpoint,
    *,
    source: Endpoint | None = None,
    nodelay: bool = False,
    configure: Callable[[trio.socket.SocketType], None] | None = None,
) -> trio.SocketStream:
    """Connect to ``target`` (every resolved address in turn), optionally from ``source``.

    A connection whose local address equals its peer address (TCP simultaneous open
    onto itself, possible when the source port equals the target port on loopback)
    is closed and reported as a connect failure.
    """
    infos = await resolve(target)
    last: ConnectError | None = None
    for family, socktype, proto, _canon, sockaddr in infos:
        try:
            sock = trio.socket.socket(family, socktype, proto)
        except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: no socket to connect with
            raise ConnectError(f"connect to {format_address(sockaddr)}", _why(exc)) from exc
        try:
            if configure is not None:  # socket options, before bind/connect
                configure(sock)
            if source is not None:
                await _bind_source(sock, family, source)
            try:
                await sock.connect(sockaddr)
            except OSError as exc:
                last = ConnectError(f"connect to {format_address(sockaddr)}", _why(exc))
                last.__cause__ = exc
                sock.close()
                continue
            try:
                itself = sock.getsockname() == sock.getpeername()
            except OSError as exc:  # reset between connect() and here: ENOTCONN
                raise ConnectionLost(
                    f"connection to {format_address(sockaddr)}", _why(exc)
                ) from exc
            if itself:
                sock.close()
                raise ConnectError(
                    f"connect to {format_address(sockaddr)}",
                    "connected to itself (local address equals peer address)",
                )
        except BaseException:
            sock.close()
            raise
        stream = trio.SocketStream(sock)
        # trio turns Nagle off on every SocketStream; nc leaves it on unless asked.
        stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, nodelay)
        return stream
    assert last is not None
    raise last


async def _bind_source(sock: trio.socket.SocketType, family: int, source: Endpoint) -> None:
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
    host = source.host
    if host is None:
        host = "::" if family == trio.socket.AF_INET6 else "0.0.0.0"
    infos = await resolve(Endpoint(host, source.port, family, source.numeric), passive=True)
    try:
        await sock.bind(infos[0][4])
    except OSError as exc:
        raise ConnectError(f"bind to {format_address(infos[0][4])}", _why(exc)) from exc


async def open_tcp_listener(
    endpoint: Endpoint,
    *,
    backlog: int = 128,
    configure: Callable[[trio.socket.SocketType], None] | None = None,
) -> trio.SocketListener:
    """Bind and listen.  With no host: one dual-stack ``::`` socket (IPv4-mapped peers
    accepted) so that port 0 yields one port for both families, else ``0.0.0.0``."""
    if endpoint.host is None:
        candidates: list[tuple[int, tuple[str, int]]] = []
        if endpoint.family in (0, trio.socket.AF_INET6):
            candidates.append((trio.socket.AF_INET6, ("::", endpoint.port)))
        if endpoint.family in (0, trio.socket.AF_INET):
            candidates.append((trio.socket.AF_INET, ("0.0.0.0", endpoint.port)))
    else:
        infos = await resolve(endpoint, passive=True)
        candidates = [(info[0], info[4][:2]) for info in infos[:1]]
    last: ConnectError | None = None
    for family, address in candidates:
        try:
            sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
        except OSError as exc:  # EAFNOSUPPORT: no IPv6 here
            last = ConnectError(f"listen on {format_address(address)}", _why(exc))
            continue
        try:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            if family == trio.socket.AF_INET6:
                v6only = endpoint.family == trio.socket.AF_INET6
                sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, v6only)
            if configure is not None:  # socket options, before bind
                configure(sock)
            await sock.bind(address)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            last = ConnectError(f"listen on {format_address(address)}", _why(exc))
            last.__cause__ = exc
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise last from exc
            continue
        return trio.SocketListener(sock)
    assert last is not None
    raise last


#: accept() errors that mean "out of fds or memory", not "this client is bad": the
#: listener waits for resources to free up instead of dying (as asyncio and libuv do).
ACCEPT_PRESSURE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


async def accept(listener: trio.SocketListener) -> trio.SocketStream:
    """``listener.accept()``, waiting out fd/memory exhaustion.

    Trio raises EMFILE and friends from ``accept`` (the newcomer stays in the kernel
    backlog).  We log once per burst and retry with a short backoff until an fd frees
    up; other errors become :class:`ConnectError`.
    """
    delay = 0.005
    while True:
        try:
            return await listener.accept()
        except OSError as exc:
            if exc.errno not in ACCEPT_PRESSURE:
                raise ConnectError("accept", _why(exc)) from exc
            if delay == 0.005:
                say(f"accept: {_why(exc)}; waiting for a free descriptor")
            await trio.sleep(delay)  # a backoff, not synchronisation
            delay = min(delay * 2, 0.2)


def local_address(stream: trio.SocketStream | trio.SocketListener) -> object:
    return stream.socket.getsockname()


def peer_address(stream: trio.SocketStream) -> object:
    """The peer's address.  A peer that reset the connection before we looked (e.g.
    while it waited in the accept queue) makes getpeername fail with ENOTCONN."""
    try:
        return stream.socket.getpeername()
    except OSError as exc:
        raise ConnectionLost("connection", f"the peer was already gone ({_why(exc)})") from exc


def all_acknowledged(stream: object, sent: int) -> bool | None:
    """Whether the peer's TCP acknowledged all ``sent`` bytes of ours, or None when that
    cannot be told (not a plain TCP stream, or no ``TCP_INFO``).

    ``tcpi_bytes_acked`` (Linux ≥ 4.1, ``struct tcp_info`` offset 120) counts the SYN as
    one byte: checked here, 2 bytes sent and acknowledged read 3.  It tells a peer that
    closed after taking everything (exit 0) from one that reset what we sent (exit 3).
    """
    if not isinstance(stream, trio.SocketStream) or stream.socket.family not in (
        _stdsocket.AF_INET,
        _stdsocket.AF_INET6,
    ):
        return None
    try:
        info = stream.socket.getsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_INFO, 256)
    except (OSError, AttributeError):
        return None
    if len(info) < 128:
        return None
    return int.from_bytes(info[120:128], "little") - 1 >= sent

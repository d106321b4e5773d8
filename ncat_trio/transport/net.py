"""Opening TCP connections and listeners, with OS errors translated once, here.

Trio's ``open_tcp_stream`` cannot bind a source *port* (nc's ``-p``), so connecting is
done by hand: resolve, then try each address in order with an optional source bind.
"""

from __future__ import annotations

import contextlib
import errno
import socket as _stdsocket
from collections.abc import AsyncIterator, Callable

import trio

from ..diag import format_address, say
from ..errors import ConnectError, ConnectionLost, reason
from .endpoint import Endpoint as Endpoint  # re-exported: callers import it from here
from .resolve import AddrInfo as AddrInfo  # re-exported
from .resolve import checked, lookup_args, lookup_failed, resolve_blocking


async def resolve(
    endpoint: Endpoint, *, passive: bool = False, socktype: int = _stdsocket.SOCK_STREAM
) -> list[AddrInfo]:
    """getaddrinfo with -n/-4/-6 applied; failures become :class:`ConnectError`
    (the rules: :mod:`.resolve`)."""
    args = lookup_args(endpoint, passive=passive, socktype=socktype)
    try:
        infos = await trio.socket.getaddrinfo(*args)
    except (_stdsocket.gaierror, UnicodeError) as exc:
        raise lookup_failed(endpoint, exc) from exc
    return checked(endpoint, infos)  # type: ignore[arg-type]


def describe(exc: OSError) -> str:
    """The *why* of a failed socket call (datagram, unix, child too): :func:`errors.reason`
    in the errno's own words."""
    return reason(exc, by_errno=True)


async def connect_socket(
    target: Endpoint,
    *,
    socktype: int = _stdsocket.SOCK_STREAM,
    source: Endpoint | None = None,
    configure: Callable[[trio.socket.SocketType], None] | None = None,
    failed: Callable[[OSError, str], ConnectError] | None = None,
) -> tuple[trio.socket.SocketType, object]:
    """A socket connected to ``target`` (every resolved address in turn) and the address
    it reached: TCP's and UDP's one connect.  ``configure`` sets socket options and
    ``source`` binds the local end (nc's -s/-p), both before connecting.  A failed
    connect is ``failed(exc, "connect to ADDR")`` (default: the errno's words); the
    last one is raised when every address failed."""
    infos = await resolve(target, socktype=socktype)
    last: ConnectError | None = None
    for family, kind, proto, _canon, sockaddr in infos:
        name = f"connect to {format_address(sockaddr)}"
        try:
            sock = trio.socket.socket(family, kind, proto)
        except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: no socket to connect with
            raise ConnectError(name, describe(exc)) from exc
        try:
            if configure is not None:  # socket options, before bind/connect
                configure(sock)
            if source is not None:
                await bind_source(sock, family, source, socktype=socktype)
            await sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = ConnectError(name, describe(exc)) if failed is None else failed(exc, name)
            last.__cause__ = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock, sockaddr
    assert last is not None
    raise last


async def connect_tcp(
    target: Endpoint,
    *,
    source: Endpoint | None = None,
    nodelay: bool = False,
    configure: Callable[[trio.socket.SocketType], None] | None = None,
    on_pressure: Callable[[str], contextlib.AbstractContextManager[object]] | None = None,
) -> trio.SocketStream:
    """Connect to ``target`` (every resolved address in turn), optionally from ``source``.

    A connection whose local address equals its peer address (TCP simultaneous open
    onto itself, possible when the source port equals the target port on loopback)
    is closed and reported as a connect failure.

    ``on_pressure``: running out of fds or memory (:data:`ACCEPT_PRESSURE`) is waited
    out with accept's backoff, inside ``on_pressure(why)`` (entered at the first failure).
    """
    with contextlib.ExitStack() as waiting:
        delay = 0.005
        while True:
            try:
                sock, sockaddr = await connect_socket(target, source=source, configure=configure)
                break
            except ConnectError as exc:
                cause = exc.__cause__
                if on_pressure is None or getattr(cause, "errno", None) not in ACCEPT_PRESSURE:
                    raise
                if delay == 0.005:
                    waiting.enter_context(on_pressure(exc.why))
            await trio.sleep(delay)  # a backoff: until a connection ends and frees fds
            delay = min(delay * 2, 0.1)
    try:
        itself = sock.getsockname() == sock.getpeername()
    except OSError as exc:  # reset between connect() and here: ENOTCONN
        sock.close()
        raise ConnectionLost(f"connection to {format_address(sockaddr)}", describe(exc)) from exc
    if itself:
        sock.close()
        raise ConnectError(
            f"connect to {format_address(sockaddr)}",
            "connected to itself (local address equals peer address)",
        )
    stream = trio.SocketStream(sock)
    set_nodelay(stream, nodelay)
    return stream


async def close(stream: trio.abc.AsyncResource, *, graceful: bool) -> None:
    """The one close of a connection: ``graceful``, an ``aclose`` (TLS sends its
    close_notify) shielded from cancellation and bounded to 5 s, forceful after that;
    else forceful at once (no waiting; an RST is possible)."""
    if graceful:
        with trio.move_on_after(5, shield=True):
            await stream.aclose()
            return
    await trio.aclose_forcefully(stream)


@contextlib.asynccontextmanager
async def closing(stream: trio.abc.AsyncResource) -> AsyncIterator[None]:
    """:func:`close` ``stream`` when the block ends: gracefully if it ended normally,
    forcefully if it raised or was cancelled."""
    try:
        yield
    except BaseException:
        await close(stream, graceful=False)
        raise
    await close(stream, graceful=True)


def set_nodelay(stream: trio.SocketStream, on: bool) -> None:
    """TCP_NODELAY: trio turns Nagle off on every SocketStream; nc leaves it on unless asked."""
    stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, on)


async def bind_source(
    sock: trio.socket.SocketType,
    family: int,
    source: Endpoint,
    *,
    socktype: int = _stdsocket.SOCK_STREAM,
) -> None:
    """Bind a connecting socket's local end to ``source`` (nc's -s/-p)."""
    if socktype == _stdsocket.SOCK_STREAM:  # a TCP source port in TIME_WAIT stays usable
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
    host = source.host
    if host is None:
        host = "::" if family == trio.socket.AF_INET6 else "0.0.0.0"
    local = Endpoint(host, source.port, family, source.numeric)
    infos = await resolve(local, passive=True, socktype=socktype)
    try:
        await sock.bind(infos[0][4])
    except OSError as exc:
        raise ConnectError(f"bind to {format_address(infos[0][4])}", describe(exc)) from exc


async def open_tcp_listener(
    endpoint: Endpoint,
    *,
    backlog: int = 128,
    configure: Callable[[trio.socket.SocketType], None] | None = None,
    reuseport: bool = False,
) -> trio.SocketListener:
    """Bind and listen.  With no host: one dual-stack ``::`` socket (IPv4-mapped peers
    accepted) so that port 0 yields one port for both families, else ``0.0.0.0``.

    ``reuseport``: SO_REUSEPORT, to share the address :func:`reserve_reuseport` took
    with other processes (the kernel spreads new connections over their queues).
    """
    infos = None if endpoint.host is None else await resolve(endpoint, passive=True)
    sock = trio.socket.from_stdlib_socket(
        bind_listening(endpoint, infos, reuseport=reuseport, configure=configure)
    )
    try:
        sock.listen(backlog)
    except OSError as exc:
        where = format_address(sock.getsockname())
        sock.close()
        raise ConnectError(f"listen on {where}", describe(exc)) from exc
    return trio.SocketListener(sock)


HAS_REUSEPORT = hasattr(_stdsocket, "SO_REUSEPORT")  # relay --workers needs it


def reserve_reuseport(endpoint: Endpoint) -> tuple[_stdsocket.socket, Endpoint]:
    """Bind (not listen) a SO_REUSEPORT socket before any Trio run (``relay --workers``
    forks after it): the address, port 0 made real, that every process then opens with
    ``open_tcp_listener(..., reuseport=True)``.  Returns the socket (close it once they
    all listen) and that endpoint."""
    infos = None if endpoint.host is None else resolve_blocking(endpoint, passive=True)
    sock = bind_listening(endpoint, infos, reuseport=True)
    host, port = sock.getsockname()[:2]
    # No host: the workers make the same dual-stack choice (no second resolve).
    shared = Endpoint(None if endpoint.host is None else host, port, endpoint.family, numeric=True)
    return sock, shared


def bind_listening(
    endpoint: Endpoint,
    infos: list[AddrInfo] | None,
    *,
    socktype: int = _stdsocket.SOCK_STREAM,
    reuseport: bool = False,
    configure: Callable[[trio.socket.SocketType], None] | None = None,
) -> _stdsocket.socket:
    """The one listening-socket factory (TCP and UDP): bound, not listening.

    No host (``infos`` None): one dual-stack ``::`` socket, else ``0.0.0.0``; else the
    first of ``infos`` (the resolved ``endpoint``), so the bind itself never blocks.
    A plain socket: :func:`reserve_reuseport` runs (and closes it) outside Trio.
    """
    if infos is None:
        candidates: list[tuple[int, tuple[str, int]]] = []
        if endpoint.family in (0, trio.socket.AF_INET6):
            candidates.append((trio.socket.AF_INET6, ("::", endpoint.port)))
        if endpoint.family in (0, trio.socket.AF_INET):
            candidates.append((trio.socket.AF_INET, ("0.0.0.0", endpoint.port)))
    else:
        candidates = [(info[0], info[4][:2]) for info in infos[:1]]
    last: ConnectError | None = None
    for family, address in candidates:
        try:
            raw = _stdsocket.socket(family, socktype)
        except OSError as exc:  # EAFNOSUPPORT: no IPv6 here
            last = ConnectError(f"listen on {format_address(address)}", describe(exc))
            continue
        try:
            if socktype == _stdsocket.SOCK_STREAM:
                raw.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            if reuseport:
                raw.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEPORT, 1)
            if family == trio.socket.AF_INET6:
                v6only = endpoint.family == trio.socket.AF_INET6
                raw.setsockopt(_stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_V6ONLY, v6only)
            if configure is not None:  # socket options, before bind (Trio's view of it)
                configure(trio.socket.from_stdlib_socket(raw))
            raw.bind(address)  # a resolved, numeric address: no lookup, no wait
        except OSError as exc:
            raw.close()
            why = describe(exc)
            if exc.errno == errno.EACCES and 0 < endpoint.port < 1024:
                why += f" (port {endpoint.port} is privileged: run as root or pick another)"
            last = ConnectError(f"listen on {format_address(address)}", why)
            last.__cause__ = exc
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise last from exc
            continue
        return raw
    assert last is not None
    raise last


#: accept() errors that mean "out of fds or memory", not "this client is bad": the
#: listener waits for resources to free up instead of dying (as asyncio and libuv do).
ACCEPT_PRESSURE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

#: accept() errors about the one newcomer that was being accepted (it aborted or broke
#: the handshake): skip it and take the next.  Trio's SocketListener already retries
#: these; a listener of another kind might not.
ACCEPT_SKIP = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR})


def _say_pressure(why: str) -> None:
    say(f"accept: {why}; waiting for a free descriptor")


def _say_gone(why: str) -> None:
    say(f"connection: the peer was already gone ({why})")


async def accept(
    listener: trio.SocketListener,
    *,
    on_pressure: Callable[[str], None] = _say_pressure,
    on_gone: Callable[[str], None] | None = _say_gone,
) -> trio.SocketStream:
    """The listener's next *usable* client: the one accept of every server.

    * Out of fds or memory (:data:`ACCEPT_PRESSURE`; the newcomer stays in the kernel
      backlog): ``on_pressure(why)`` once per burst, then retry with a short backoff
      until an fd frees up.
    * A newcomer that aborted (:data:`ACCEPT_SKIP`) or reset while it waited in the
      backlog (its address can no longer be read: ENOTCONN) is closed and skipped
      (``on_gone(why)``), so it never becomes a session nor consumes a single-shot
      listener.
    * Any other error becomes :class:`ConnectError` (the listener itself is broken).
    """
    delay = 0.005
    while True:
        try:
            conn = await listener.accept()
        except OSError as exc:
            if exc.errno in ACCEPT_SKIP:
                continue
            if exc.errno not in ACCEPT_PRESSURE:
                raise ConnectError("accept", describe(exc)) from exc
            if delay == 0.005:
                on_pressure(describe(exc))
            await trio.sleep(delay)  # a backoff, not synchronisation
            delay = min(delay * 2, 0.2)
            continue
        try:
            conn.socket.getpeername()
        except OSError as exc:  # reset in the backlog: already gone, never a session
            await trio.aclose_forcefully(conn)
            if on_gone is not None:
                on_gone(describe(exc))
            continue
        return conn


async def peek(conn: trio.SocketStream, size: int) -> bytes:
    """The first ``size`` bytes the peer sent (fewer if it closed first), left unread.

    ``SO_RCVLOWAT`` makes the socket readable only once ``size`` bytes (or EOF, or an
    error) are in: a peer that trickles them costs no wake-ups.  A reset becomes
    :class:`ConnectionLost`.
    """
    sock = conn.socket
    sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_RCVLOWAT, size)
    try:
        await trio.lowlevel.wait_readable(sock)
        return await sock.recv(size, _stdsocket.MSG_PEEK)
    except OSError as exc:
        raise ConnectionLost("connection", describe(exc)) from exc
    finally:
        with contextlib.suppress(OSError):
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_RCVLOWAT, 1)


def is_local_address(host: str) -> bool:
    """True if ``host`` is an address of this machine (a UDP socket can bind to it;
    nothing is sent)."""
    family = _stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET
    try:
        with _stdsocket.socket(family, _stdsocket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


def reaches(listening: object, target: object) -> bool:
    """True if a connection to ``target`` would arrive at the listener bound to
    ``listening`` (both socket address tuples): the same port, and the same host or,
    for a wildcard listener, any address of this machine.  A relay uses it to refuse
    a target that is itself (a loop would wedge it: every client after the first
    would wait on a connection to itself)."""
    if not (isinstance(listening, tuple) and isinstance(target, tuple)):
        return False
    if len(listening) < 2 or len(target) < 2 or listening[1] != target[1]:
        return False
    here, there = _unmapped(str(listening[0])), _unmapped(str(target[0]))
    if here in ("::", "0.0.0.0"):
        return is_local_address(there)
    return here == there


def _unmapped(host: str) -> str:
    return host[7:] if host.startswith("::ffff:") and "." in host else host


def peer_address(stream: trio.SocketStream) -> object:
    """The peer's address.  A peer that reset the connection before we looked (e.g.
    while it waited in the accept queue) makes getpeername fail with ENOTCONN."""
    try:
        return stream.socket.getpeername()
    except OSError as exc:
        raise ConnectionLost("connection", f"the peer was already gone ({describe(exc)})") from exc


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

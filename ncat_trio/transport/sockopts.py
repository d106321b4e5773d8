"""Socket options asked for on the command line, applied before bind/connect.

Applied to a fresh socket *before* ``bind``/``connect``: ``SO_RCVBUF`` after connect
would miss the TCP window-scale negotiation (tcp(7)), and ``SO_REUSEPORT`` must be on
before ``bind`` to share a port.  Nothing here is ever switched on implicitly:
``--reuseport`` lets any other process of the same user bind the same port and take a
share of the connections, so it is explicit only.

Parsers raise :class:`UsageError`; a refused ``setsockopt`` becomes :class:`ConnectError`.
"""

from __future__ import annotations

import contextlib
import re
import socket as _stdsocket
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..errors import ConnectError, UsageError

#: Called on each fresh socket before bind/connect (see :func:`configure_with`).
Configure = Callable[[trio.socket.SocketType], None]


@dataclass(frozen=True)
class Keepalive:
    """TCP keepalive; ``None`` fields keep the kernel's defaults (tcp(7))."""

    idle: int | None = None  # TCP_KEEPIDLE: seconds of silence before the first probe
    interval: int | None = None  # TCP_KEEPINTVL: seconds between probes
    count: int | None = None  # TCP_KEEPCNT: unanswered probes before the reset


@dataclass(frozen=True)
class SocketOptions:
    """The socket options of ``--keepalive --sndbuf --rcvbuf --tos --ttl --reuseport
    --broadcast``; the defaults change nothing."""

    keepalive: Keepalive | None = None
    sndbuf: int | None = None
    rcvbuf: int | None = None
    tos: int | None = None  # IP_TOS / IPV6_TCLASS byte (DSCP << 2 | ECN)
    ttl: int | None = None  # IP_TTL / IPV6_UNICAST_HOPS
    reuseport: bool = False
    broadcast: bool = False  # SO_BROADCAST (UDP only)


#: Names accepted by --tos besides numbers: nc.openbsd's -T keywords (RFC 791/2474).
TOS_NAMES = {
    "lowdelay": 0x10,
    "throughput": 0x08,
    "reliability": 0x04,
    "lowcost": 0x02,
    "mincost": 0x02,
    "critical": 0xA0,
    "inetcontrol": 0xC0,
    "netcontrol": 0xE0,
    **{f"cs{n}": n << 5 for n in range(8)},
    **{f"af{c}{d}": ((c << 3) | (d << 1)) << 2 for c in range(1, 5) for d in range(1, 4)},
    "ef": 46 << 2,
}


def _bounded_int(text: str, low: int, high: int, what: str) -> int:
    stripped = text.strip()
    try:
        value = int(stripped, 0) if stripped.lower().startswith("0x") else int(stripped, 10)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}", "not a number") from None
    if not low <= value <= high:
        raise UsageError(f"invalid {what} {text!r}", f"must be {low}-{high}")
    return value


def parse_keepalive(text: str) -> Keepalive:
    """``""`` (just on), or ``IDLE,INTVL,CNT`` with any field left empty (``60,,5``)."""
    if not text.strip():
        return Keepalive()
    parts = text.split(",")
    if len(parts) > 3 or not re.fullmatch(r"[\d\s,]*", text):
        raise UsageError(f"invalid --keepalive {text!r}", "expected IDLE,INTVL,CNT (seconds)")
    names = ("keepalive idle", "keepalive interval", "keepalive count")
    limits = (32767, 32767, 127)  # the kernel's MAX_TCP_KEEPIDLE/INTVL/CNT
    values = [
        None if not part.strip() else _bounded_int(part, 1, limit, name)
        for part, name, limit in zip(parts, names, limits, strict=False)
    ]
    values += [None] * (3 - len(values))
    return Keepalive(*values)


def parse_tos(text: str) -> int:
    """A TOS byte: 0-255 (decimal or 0x..), or a name such as ``lowdelay`` or ``af41``."""
    named = TOS_NAMES.get(text.strip().lower())
    return named if named is not None else _bounded_int(text, 0, 255, "--tos")


def parse_ttl(text: str) -> int:
    return _bounded_int(text, 1, 255, "--ttl")


def _set(sock: trio.socket.SocketType, level: int, name: int, value: int, what: str) -> None:
    try:
        sock.setsockopt(level, name, value)
    except OSError as exc:
        raise ConnectError(f"cannot set {what}", (exc.strerror or str(exc)).lower()) from exc


def apply_socket_options(sock: trio.socket.SocketType, options: SocketOptions) -> None:
    """Set ``options`` on a fresh socket (before bind/connect)."""
    family, kind = sock.family, sock.type
    if options.reuseport:
        _set(sock, _stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEPORT, 1, "SO_REUSEPORT")
    if options.broadcast:
        _set(sock, _stdsocket.SOL_SOCKET, _stdsocket.SO_BROADCAST, 1, "SO_BROADCAST")
    if options.sndbuf is not None:
        _set(sock, _stdsocket.SOL_SOCKET, _stdsocket.SO_SNDBUF, options.sndbuf, "SO_SNDBUF")
    if options.rcvbuf is not None:
        _set(sock, _stdsocket.SOL_SOCKET, _stdsocket.SO_RCVBUF, options.rcvbuf, "SO_RCVBUF")
    keepalive = options.keepalive
    if keepalive is not None and kind == _stdsocket.SOCK_STREAM:
        _set(sock, _stdsocket.SOL_SOCKET, _stdsocket.SO_KEEPALIVE, 1, "SO_KEEPALIVE")
        for value, name, what in (
            (keepalive.idle, _stdsocket.TCP_KEEPIDLE, "TCP_KEEPIDLE"),
            (keepalive.interval, _stdsocket.TCP_KEEPINTVL, "TCP_KEEPINTVL"),
            (keepalive.count, _stdsocket.TCP_KEEPCNT, "TCP_KEEPCNT"),
        ):
            if value is not None:
                _set(sock, _stdsocket.IPPROTO_TCP, name, value, what)
    if family == _stdsocket.AF_INET:
        if options.tos is not None:
            _set(sock, _stdsocket.IPPROTO_IP, _stdsocket.IP_TOS, options.tos, "IP_TOS")
        if options.ttl is not None:
            _set(sock, _stdsocket.IPPROTO_IP, _stdsocket.IP_TTL, options.ttl, "IP_TTL")
    elif family == _stdsocket.AF_INET6:
        if options.tos is not None:
            _set(sock, _stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_TCLASS, options.tos, "IPV6_TCLASS")
        if options.ttl is not None:
            _set(
                sock,
                _stdsocket.IPPROTO_IPV6,
                _stdsocket.IPV6_UNICAST_HOPS,
                options.ttl,
                "IPV6_UNICAST_HOPS",
            )
        # A dual-stack socket also carries IPv4 (mapped) traffic, which takes the IPv4
        # options; Linux accepts them on an AF_INET6 socket (ipv6_setsockopt → ip_setsockopt).
        with contextlib.suppress(OSError):
            if options.tos is not None:
                sock.setsockopt(_stdsocket.IPPROTO_IP, _stdsocket.IP_TOS, options.tos)
            if options.ttl is not None:
                sock.setsockopt(_stdsocket.IPPROTO_IP, _stdsocket.IP_TTL, options.ttl)


def configure_with(options: SocketOptions) -> Configure | None:
    """A ``configure`` callback for :mod:`.net` / :mod:`.datagram`, or None if no options."""
    if options == SocketOptions():
        return None

    def configure(sock: trio.socket.SocketType) -> None:
        apply_socket_options(sock, options)

    return configure

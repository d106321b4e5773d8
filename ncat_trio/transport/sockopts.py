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
from functools import partial

import trio

from ..errors import ConnectError, UsageError, reason

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


def apply_socket_options(sock: trio.socket.SocketType, options: SocketOptions) -> None:
    """Set ``options`` on a fresh socket (before bind/connect)."""
    S, keepalive = _stdsocket, options.keepalive
    wanted: list[tuple[int | None, int, int, str]] = [  # (value or None, level, name, what)
        (1 if options.reuseport else None, S.SOL_SOCKET, S.SO_REUSEPORT, "SO_REUSEPORT"),
        (1 if options.broadcast else None, S.SOL_SOCKET, S.SO_BROADCAST, "SO_BROADCAST"),
        (options.sndbuf, S.SOL_SOCKET, S.SO_SNDBUF, "SO_SNDBUF"),
        (options.rcvbuf, S.SOL_SOCKET, S.SO_RCVBUF, "SO_RCVBUF"),
    ]
    if keepalive is not None and sock.type == S.SOCK_STREAM:
        wanted += [
            (1, S.SOL_SOCKET, S.SO_KEEPALIVE, "SO_KEEPALIVE"),
            (keepalive.idle, S.IPPROTO_TCP, S.TCP_KEEPIDLE, "TCP_KEEPIDLE"),
            (keepalive.interval, S.IPPROTO_TCP, S.TCP_KEEPINTVL, "TCP_KEEPINTVL"),
            (keepalive.count, S.IPPROTO_TCP, S.TCP_KEEPCNT, "TCP_KEEPCNT"),
        ]
    if sock.family == S.AF_INET:
        wanted += [
            (options.tos, S.IPPROTO_IP, S.IP_TOS, "IP_TOS"),
            (options.ttl, S.IPPROTO_IP, S.IP_TTL, "IP_TTL"),
        ]
    elif sock.family == S.AF_INET6:
        wanted += [
            (options.tos, S.IPPROTO_IPV6, S.IPV6_TCLASS, "IPV6_TCLASS"),
            (options.ttl, S.IPPROTO_IPV6, S.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"),
        ]
    for value, level, name, what in wanted:
        if value is not None:
            try:
                sock.setsockopt(level, name, value)
            except OSError as exc:
                raise ConnectError(f"cannot set {what}", reason(exc)) from exc
    if sock.family == S.AF_INET6:
        # A dual-stack socket also carries IPv4 (mapped) traffic, which takes the IPv4
        # options; Linux accepts them on an AF_INET6 socket (ipv6_setsockopt → ip_setsockopt).
        with contextlib.suppress(OSError):
            if options.tos is not None:
                sock.setsockopt(S.IPPROTO_IP, S.IP_TOS, options.tos)
            if options.ttl is not None:
                sock.setsockopt(S.IPPROTO_IP, S.IP_TTL, options.ttl)


def configure_with(options: SocketOptions) -> Configure | None:
    """A ``configure`` callback for :mod:`.net` / :mod:`.datagram`, or None if no options."""
    return None if options == SocketOptions() else partial(apply_socket_options, options=options)

"""Name resolution's one set of rules (-n, -4/-6, ``.invalid``, the one-line errors),
for Trio's resolver (:func:`.net.resolve`) and a blocking one (:func:`resolve_blocking`,
the port scan, which runs without Trio: its start-up is its cost, issue 16).
"""

from __future__ import annotations

import socket

from ..errors import ConnectError, reason
from .endpoint import Endpoint

AddrInfo = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int],
]


def lookup_args(
    endpoint: Endpoint, *, passive: bool = False, socktype: int = socket.SOCK_STREAM
) -> tuple[str | None, int, int, int, int, int]:
    """getaddrinfo's arguments for ``endpoint``; a name that must not be looked up
    raises :class:`ConnectError` here."""
    host = endpoint.host
    if host is not None and (
        host.rstrip(".").lower() == "invalid" or host.rstrip(".").lower().endswith(".invalid")
    ):
        # RFC 6761 §6.4: names under .invalid never resolve; don't ask a DNS server.
        raise ConnectError(
            f"cannot resolve {host}", "name or service not known (.invalid is reserved)"
        )
    flags = socket.AI_ADDRCONFIG if host not in (None, "localhost") else 0
    if endpoint.numeric:
        flags |= socket.AI_NUMERICHOST
    if passive:
        flags |= socket.AI_PASSIVE
    return host, endpoint.port, endpoint.family, socktype, 0, flags


def lookup_failed(endpoint: Endpoint, exc: OSError | UnicodeError) -> ConnectError:
    """The one line for a failed lookup."""
    if isinstance(exc, UnicodeError):
        return ConnectError(f"cannot resolve {endpoint.host}", "invalid host name")
    why = reason(exc)
    if endpoint.numeric and isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_NONAME:
        why = "not a numeric address (-n forbids DNS)"
    return ConnectError(f"cannot resolve {endpoint.host}", why)


def checked(endpoint: Endpoint, infos: list[AddrInfo]) -> list[AddrInfo]:
    if not infos:
        raise ConnectError(f"cannot resolve {endpoint.host}", "no addresses")
    return infos


def resolve_blocking(
    endpoint: Endpoint, *, passive: bool = False, socktype: int = socket.SOCK_STREAM
) -> list[AddrInfo]:
    """:func:`.net.resolve` without Trio (blocks the caller)."""
    try:
        infos = socket.getaddrinfo(*lookup_args(endpoint, passive=passive, socktype=socktype))
    except (socket.gaierror, UnicodeError) as exc:
        raise lookup_failed(endpoint, exc) from exc
    return checked(endpoint, infos)  # type: ignore[arg-type]

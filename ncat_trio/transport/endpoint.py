"""Where to connect or listen: a plain value, importable without Trio (the CLI builds it)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from ..diag import format_address
from ..errors import UsageError

#: An IP socket address as the socket module returns it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6.
IPSockAddr = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True)
class Endpoint:
    """Where to connect or listen.  ``host=None`` means "any" for a listener."""

    host: str | None
    port: int
    family: int = 0  # 0, AF_INET or AF_INET6 (-4/-6)
    numeric: bool = False  # -n: no DNS, the host must be a literal address

    def __str__(self) -> str:
        return format_address((self.host or "*", self.port))


def address_family(ipv4: bool, ipv6: bool) -> int:
    """-4/-6 as an address family (0: either)."""
    if ipv4 and ipv6:
        raise UsageError("-4 and -6", "choose one")
    return socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else 0

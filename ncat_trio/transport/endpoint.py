"""Where to connect or listen: a plain value, importable without Trio (the CLI builds it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..diag import format_address

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

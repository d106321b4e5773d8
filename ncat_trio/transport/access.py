"""``--allow``/``--deny`` CIDR rules for listeners: parsing, files, and the verdict.

* ``--deny`` wins over ``--allow``; with any allow rule, only matching peers get in.
* IPv4-mapped IPv6 (``::ffff:10.0.0.1``, what a dual-stack listener reports for an
  IPv4 client) is turned into IPv4 before matching, and so are mapped *rules*
  (``::ffff:10.0.0.0/104`` = ``10.0.0.0/8``): a v4 rule cannot be bypassed through
  the v6 spelling, nor a v6-spelled rule miss a v4 peer.
* A malformed rule is a :class:`UsageError` (exit 2), in a file with its line number.

The same rules as ``modes/relay.py`` (which has its own copy, written first); this is
the generic one for every listener.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from .. import diag
from ..errors import UsageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def normalise_address(host: str) -> IPAddress:
    """A peer address as an ``ip_address``; IPv4-mapped IPv6 becomes IPv4, scope dropped."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str, *, where: str = "") -> IPNetwork:
    """A rule: an address or CIDR (``10.0.0.0/8``, ``::1``, ``::ffff:10.0.0.0/104``)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise UsageError(
            f"invalid address rule {text.strip()!r}{where}", "expected an address or CIDR"
        ) from exc
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, max(0, network.prefixlen - 96)))
    return network


def read_rules(path: str) -> tuple[IPNetwork, ...]:
    """``--allowfile``/``--denyfile``: one rule per line; blank lines and ``#`` comments."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read rules file {path}", why.lower()) from exc
    rules = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            rules.append(parse_network(text, where=f" ({path} line {number})"))
    return tuple(rules)


@dataclass(frozen=True)
class AccessPolicy:
    """Which peers a listener serves: deny wins; with allow rules, only matches."""

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_rules(
        cls,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        allow_files: Iterable[str] = (),
        deny_files: Iterable[str] = (),
    ) -> AccessPolicy:
        """From command-line strings and files; raises :class:`UsageError`."""
        allowed = [parse_network(a) for a in allow]
        denied = [parse_network(d) for d in deny]
        for path in allow_files:
            allowed.extend(read_rules(path))
        for path in deny_files:
            denied.extend(read_rules(path))
        return cls(tuple(allowed), tuple(denied))

    @property
    def active(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, host: str) -> bool:
        try:
            address = normalise_address(host)
        except ValueError:  # not an IP peer: refuse whenever rules exist
            return not self.active
        if any(address in rule for rule in self.deny if rule.version == address.version):
            return False
        if not self.allow:
            return True
        return any(address in rule for rule in self.allow if rule.version == address.version)


async def admit(conn: trio.SocketStream, policy: AccessPolicy) -> bool:
    """True if ``conn``'s peer may be served; otherwise close it at once and log it.

    A peer that already reset (``getpeername`` fails) is closed and refused too.
    """
    if not policy.active:
        return True
    try:
        peer = conn.socket.getpeername()
    except OSError as exc:
        # Log first: a signal arriving during the close must not cancel the line.
        diag.say(f"refused a connection: the peer was already gone ({exc.strerror})")
        await trio.aclose_forcefully(conn)
        return False
    host = peer[0] if isinstance(peer, tuple) else str(peer)
    if policy.permits(host):
        return True
    diag.say(f"denied connection from {diag.format_address(peer)} (--allow/--deny)")
    await trio.aclose_forcefully(conn)
    return False


__all__ = ["AccessPolicy", "admit", "normalise_address", "parse_network", "read_rules"]

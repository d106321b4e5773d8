"""``--allow``/``--deny`` CIDR rules for listeners: parsing, files, and the verdict.

* ``--deny`` wins over ``--allow``; with any allow rule, only matching peers get in.
* IPv4-mapped IPv6 (``::ffff:10.0.0.1``, what a dual-stack listener reports for an
  IPv4 client) is turned into IPv4 before matching, and so are mapped *rules*
  (``::ffff:10.0.0.0/104`` = ``10.0.0.0/8``): a v4 rule cannot be bypassed through
  the v6 spelling, nor a v6-spelled rule miss a v4 peer.
* A malformed rule is a :class:`UsageError` (exit 2), in a file with its line number.
* Rules files are read whole at start, bounded: a regular file or a pipe (``<(cmd)``)
  of at most :data:`MAX_RULES_FILE` bytes; a directory, a device (``/dev/zero``) or a
  bigger file is a :class:`UsageError`, never a hang or an unbounded read.  An
  ``--allowfile`` with no rule in it is refused too: it would silently admit everyone.
* Datagrams (``listen -u``) are judged per source with :class:`DatagramGate`.

The one home of these rules: ``listen`` (TCP, UDP, TLS, ``-k``, exec) and ``relay``
(with ``--workers`` and the Python API) all use :class:`AccessPolicy`.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import trio

from .. import diag
from ..errors import UsageError, reason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

#: Largest rules file read (1 MiB, some 30 000 rules): ``--allowfile /dev/zero`` or a
#: runaway generator is an error at start, not a memory blow-up.
MAX_RULES_FILE = 1 << 20


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
        shown = text.strip()
        shown = shown if len(shown) <= 60 else shown[:60] + "..."  # one line, even from a file
        raise UsageError(
            f"invalid address rule {shown!r}{where}", "expected an address or CIDR"
        ) from exc
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, max(0, network.prefixlen - 96)))
    return network


def read_rules(path: str, *, flag: str = "rules file") -> tuple[IPNetwork, ...]:
    """``--allowfile``/``--denyfile``: one rule per line; blank lines and ``#`` comments.

    Bounded (module docstring): a regular file or a pipe, at most :data:`MAX_RULES_FILE`.
    """
    text = _read_bounded(path, flag)
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        rule = line.split("#", 1)[0].strip()
        if rule:
            where = f" ({flag} {diag.printable(path)} line {number})"
            rules.append(parse_network(rule, where=where))
    return tuple(rules)


def _read_bounded(path: str, flag: str) -> str:
    what = f"cannot read {flag} {diag.printable(path)}"
    try:
        # O_NONBLOCK: opening a FIFO nobody writes to must not hang the start.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(what, reason(exc)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UsageError(what, "it is a directory")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise UsageError(what, "not a regular file or a pipe")
        os.set_blocking(fd, True)  # a pipe's writer may still be on its way
        data = bytearray()
        while len(data) <= MAX_RULES_FILE:
            chunk = os.read(fd, MAX_RULES_FILE + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_RULES_FILE:
            raise UsageError(what, f"larger than {MAX_RULES_FILE} bytes")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(what, "not UTF-8 text") from exc
    except OSError as exc:
        raise UsageError(what, reason(exc)) from exc
    finally:
        os.close(fd)


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
            rules = read_rules(path, flag="--allowfile")
            if not rules:  # an empty allow list would mean "no allow rules": everyone
                raise UsageError(
                    f"--allowfile {diag.printable(path)}", "has no rules (it would admit everyone)"
                )
            allowed.extend(rules)
        for path in deny_files:
            denied.extend(read_rules(path, flag="--denyfile"))
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


class DatagramGate:
    """``listen -u`` access: judges each datagram's source before anything else sees it.

    A denied source is logged once (its address escaped); to keep a spray of spoofed
    sources from flooding stderr, at most :attr:`LOGGED` distinct sources are named,
    then one line says the rest are dropped silently.
    """

    LOGGED = 64

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy
        self.denied = 0  # datagrams dropped
        self._named: set[object] = set()

    def admits(self, address: Any) -> bool:
        if not self.policy.active:
            return True
        host = address[0] if isinstance(address, tuple) and address else address
        if isinstance(host, str) and self.policy.permits(host):
            return True
        self.denied += 1
        if address not in self._named and len(self._named) <= self.LOGGED:
            self._named.add(address)
            if len(self._named) > self.LOGGED:
                diag.say("denied datagrams from more sources: no longer logged (--allow/--deny)")
            else:
                shown = diag.format_address(address) if address else "(unnamed)"
                diag.say(f"denied datagram from {shown} (--allow/--deny)")
        return False


__all__ = [
    "MAX_RULES_FILE",
    "AccessPolicy",
    "DatagramGate",
    "admit",
    "normalise_address",
    "parse_network",
    "read_rules",
]

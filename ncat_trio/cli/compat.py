"""Which ``connect``/``listen`` flags each path honours: the one table (issue 15).

A flag that a path cannot honour is a usage error — exit 2, one line naming the flag
and why — never silently ignored (DESIGN.md §1, "Fail closed").  This module is the
one place that says which flag works where: :func:`check` runs first in
``cli/netcat.py``'s ``connect`` and ``listen``, before any value is parsed or any file
read, and ``tests/hostile/test_combinations.py`` walks the whole table through the CLI.

A *path* is what an invocation runs over: the transport (TCP, UDP ``-u``, a Unix
socket ``-U``; ``-U -u`` is both UNIX and UDP), and what is layered on or attached to
it (``--ssl``, ``--proxy``, ``-e/-c``, ``-k``).  Each :class:`Flag` lists the paths it
is refused on, with the reason; a key that is a tuple of paths refuses the flag only
when all of them are present (``-k`` with ``-u`` *and* ``-e``).  ``needs`` names a path
the flag is meaningless without (``--max-conns`` without ``-k``).  Value checks (a bad
port, ``-4`` with ``-6``, ``--ssl-key`` without ``--ssl-cert``) stay with the parsers.

The other commands (``relay``, ``scan``, ``ttcp``, ``clock``, ``send``/``receive``)
declare only the flags they honour, so click refuses the rest (``--ssl`` on ``relay``:
"No such option", exit 2); the walk checks that too.  Their own flags that mean
something only in one of their modes are :data:`COMMAND_RULES` (``--stratum`` without
``--proto ntp``, ``-w`` on a listening ``receive``, ``--seed`` without a fault), checked
by :func:`check_command` first in each of those commands.  (``receive --force -o -`` is
accepted as a no-op: a test pins it.)
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import UsageError


class Path(enum.Enum):
    """What a connect/listen runs over or with; the value is how users spell it."""

    TCP = "TCP"
    UDP = "-u"
    UNIX = "-U"
    TLS = "--ssl"
    PROXY = "--proxy"
    EXEC = "-e/-c"
    KEEP_OPEN = "-k"


Where = Path | tuple[Path, ...]


@dataclass(frozen=True)
class Flag:
    """One flag: how it is spelled, where it is refused (and why), what it needs."""

    spelling: str
    refused: Mapping[Where, str] = field(default_factory=dict)
    needs: Path | None = None
    needs_why: str = ""


# The reasons, each written once.
_STDIO = "with -e/-c the child has the connection: stdin/stdout are not used"
_NO_FIN = "UDP has no FIN (a datagram session ends at -i or -q)"
_DATAGRAM_REPORT = "no progress or summary for datagram sessions (-u) yet"
_EXEC_REPORT = "no progress or summary for -e/-c sessions yet"
_TLS_UDP = "TLS needs a stream, not datagrams (DTLS is not implemented)"
_PROXY: dict[Where, str] = {
    Path.UDP: "proxies tunnel TCP streams, not datagrams (-u)",
    Path.UNIX: "a proxy is reached over TCP, not a Unix socket (-U)",
}
_NO_ADDRESS = "a Unix socket has no IP address or port"
_QUIET_END = (
    "the quiet end of -w lives in the stream session: use -i SECS (idle, exit 4) "
    "or --connect-timeout SECS"
)
_ACCESS: dict[Where, str] = {
    Path.UNIX: "a Unix socket's peer has no IP address to match (use file permissions)"
}
_TCP_ONLY: dict[Where, str] = {Path.UDP: "TCP only", Path.UNIX: "TCP only, not Unix sockets (-U)"}
_IP_ONLY: dict[Where, str] = {Path.UNIX: "an IP option: not for Unix sockets (-U)"}
_ONE_SOCKET = "-u -k hears every sender on one socket: there are no connections to count"
_CHILD_PER_SENDER = "ncat starts a child per sender; without -k the first sender gets the child"
_REPORT: dict[Where, str] = {Path.UDP: _DATAGRAM_REPORT, Path.EXEC: _EXEC_REPORT}
_TLS: dict[Where, str] = {Path.UDP: _TLS_UDP}

#: connect/listen parameter name (as in cli/netcat.py) → its rules.  Every flag of
#: both commands is here (a test checks it), so a new flag needs a decision.
TABLE: dict[str, Flag] = {
    # -- transport and what runs on it
    "udp": Flag("-u"),
    "unix": Flag("-U"),
    "exec_": Flag("-e"),
    "sh_exec": Flag("-c"),
    "keep_open": Flag("-k", {(Path.UDP, Path.EXEC): _CHILD_PER_SENDER}),
    "max_conns": Flag(
        "--max-conns", {Path.UDP: _ONE_SOCKET}, needs=Path.KEEP_OPEN, needs_why="only with -k"
    ),
    "sequential": Flag(
        "--sequential", {Path.UDP: _ONE_SOCKET}, needs=Path.KEEP_OPEN, needs_why="only with -k"
    ),
    # -- addresses
    "source": Flag("-s", {Path.UNIX: _NO_ADDRESS}),
    "bind_source": Flag("-s", {Path.UNIX: _NO_ADDRESS}),  # listen -s ADDR (nc.openbsd)
    "source_port": Flag("-p", {Path.UNIX: _NO_ADDRESS}),
    "port_option": Flag("-p", {Path.UNIX: _NO_ADDRESS}),
    "ipv4": Flag("-4", {Path.UNIX: _NO_ADDRESS}),
    "ipv6": Flag("-6", {Path.UNIX: _NO_ADDRESS}),
    "numeric": Flag("-n"),
    # -- timing and half-close
    "wait": Flag("-w", {Path.UDP: _QUIET_END, Path.EXEC: _QUIET_END}),
    "connect_timeout": Flag(
        "--connect-timeout",
        {Path.UDP: "UDP has no connection to wait for (end the session with -i or -q)"},
    ),
    "linger": Flag("-q", {Path.EXEC: f"-q times the wait after stdin's EOF; {_STDIO}"}),
    "idle_timeout": Flag("-i"),
    "shutdown": Flag("-N", {Path.UDP: _NO_FIN}),
    "shutdown_when": Flag("--shutdown=WHEN", {Path.UDP: _NO_FIN}),
    "no_shutdown": Flag(
        "--no-shutdown",
        {Path.UDP: _NO_FIN, Path.EXEC: "the child closing its stdout always sends FIN"},
    ),
    # -- stdio
    "no_stdin": Flag("-d", {Path.EXEC: _STDIO}),
    "send_only": Flag("--send-only", {Path.EXEC: _STDIO}),
    "recv_only": Flag("--recv-only", {Path.EXEC: _STDIO}),
    "no_zerocopy": Flag("--no-zerocopy"),
    "rate": Flag(
        "--rate",
        {Path.UDP: "paces a byte stream, not datagrams (-u)", Path.EXEC: f"paces stdio; {_STDIO}"},
    ),
    "crlf": Flag("-C", {Path.UDP: "converts a byte stream, not datagrams (-u)", Path.EXEC: _STDIO}),
    # -- reporting
    "progress": Flag("-P", _REPORT),
    "progress_auto": Flag("--progress=auto", _REPORT),
    "size": Flag("--size", _REPORT),
    "stats": Flag("--stats", _REPORT),
    "json": Flag("--json", _REPORT),
    "json_file": Flag("--json-file", _REPORT),
    "verbose": Flag("-v"),
    "output": Flag("-o", {Path.UDP: "the hex dump taps streams, not datagrams (-u)"}),
    "append_output": Flag(
        "--append-output", {Path.UDP: "the hex dump taps streams, not datagrams (-u)"}
    ),
    # -- socket options
    "keepalive": Flag("--keepalive", _TCP_ONLY),
    "nodelay": Flag("--nodelay", _TCP_ONLY),
    "sndbuf": Flag("--sndbuf"),
    "rcvbuf": Flag("--rcvbuf"),
    "tos": Flag("--tos", _IP_ONLY),
    "ttl": Flag("--ttl", _IP_ONLY),
    "reuseport": Flag("--reuseport", _IP_ONLY),
    "broadcast": Flag(
        "--broadcast",
        {Path.TCP: "only for UDP (-u)", Path.UNIX: "only for UDP (-u), not Unix sockets (-U)"},
    ),
    # -- TLS (any --ssl-* implies --ssl)
    "ssl": Flag("--ssl", _TLS),
    "ssl_ca": Flag("--ssl-ca", _TLS),
    "ssl_system_ca": Flag("--ssl-system-ca", _TLS),
    "ssl_no_verify": Flag("--ssl-no-verify", _TLS),
    "ssl_cert": Flag("--ssl-cert", _TLS),
    "ssl_key": Flag("--ssl-key", _TLS),
    "ssl_servername": Flag("--ssl-servername", _TLS),
    "ssl_alpn": Flag("--ssl-alpn", _TLS),
    "ssl_allow_truncation": Flag("--ssl-allow-truncation", _TLS),
    # -- proxy (connect)
    "proxy": Flag("--proxy", _PROXY),
    "nc_proxy": Flag("-x", _PROXY),
    "nc_proxy_type": Flag("-X", _PROXY, needs=Path.PROXY, needs_why="needs -x ADDR[:PORT]"),
    "proxy_type": Flag(
        "--proxy-type", _PROXY, needs=Path.PROXY, needs_why="needs --proxy HOST[:PORT]"
    ),
    "proxy_auth": Flag(
        "--proxy-auth", _PROXY, needs=Path.PROXY, needs_why="needs --proxy HOST[:PORT]"
    ),
    # -- access control (listen): TCP, UDP (per datagram), TLS, -k, exec
    "allow": Flag("--allow", _ACCESS),
    "deny": Flag("--deny", _ACCESS),
    "allowfile": Flag("--allowfile", _ACCESS),
    "denyfile": Flag("--denyfile", _ACCESS),
}

#: Positional arguments: not flags.
ARGUMENTS = frozenset({"host", "port", "address"})

#: The flags that put an invocation on each path (TCP: neither -u nor -U).
_SELECTED_BY: dict[Path, frozenset[str]] = {
    Path.UDP: frozenset({"udp"}),
    Path.UNIX: frozenset({"unix"}),
    Path.TLS: frozenset(name for name in TABLE if name.startswith("ssl")),
    Path.PROXY: frozenset({"proxy", "nc_proxy"}),
    Path.EXEC: frozenset({"exec_", "sh_exec"}),
    Path.KEEP_OPEN: frozenset({"keep_open"}),
}


def paths_of(given: frozenset[str]) -> frozenset[Path]:
    """The paths an invocation with these flags (parameter names) runs on."""
    paths = {path for path, flags in _SELECTED_BY.items() if given & flags}
    if not paths & {Path.UDP, Path.UNIX}:
        paths.add(Path.TCP)
    return frozenset(paths)


def refusal(given: frozenset[str]) -> UsageError | None:
    """The usage error for the first flag (in table order) its paths cannot honour."""
    paths = paths_of(given)
    for name, flag in TABLE.items():
        if name not in given:
            continue
        for where, why in flag.refused.items():
            needed = where if isinstance(where, tuple) else (where,)
            if all(path in paths for path in needed):
                spelled = " ".join(path.value for path in needed)
                return UsageError(f"{flag.spelling} with {spelled}", f"not supported: {why}")
        if flag.needs is not None and flag.needs not in paths:
            return UsageError(flag.spelling, flag.needs_why)
    return None


def given(command: Callable[..., object], values: Mapping[str, object]) -> frozenset[str]:
    """The flags of ``command`` set to something other than their default."""
    parameters = inspect.signature(command).parameters
    return frozenset(
        name
        for name, value in values.items()
        if name in parameters and name not in ARGUMENTS and value != parameters[name].default
    )


def check(command: Callable[..., object], values: Mapping[str, object]) -> None:
    """Raise the :class:`UsageError` for a flag the invocation's paths cannot honour
    (then for one another flag makes meaningless: :data:`COMMAND_RULES`)."""
    error = refusal(given(command, values))
    if error is not None:
        raise error
    check_command(command.__name__, command, values)


# -- the other commands -------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A flag of another command that is honoured only when ``holds(values)``."""

    command: str  # as typed: "relay", "clock serve", "receive"
    name: str  # the parameter name
    spelling: str
    why: str
    holds: Callable[[Mapping[str, object]], bool]


_FAULTS = ("latency", "bandwidth", "slicer", "limit_data", "reset_peer", "stall", "slow_close")


def _faults(values: Mapping[str, object]) -> bool:
    return any(values.get(kind) for kind in _FAULTS)


def _connecting(values: Mapping[str, object]) -> bool:
    return not values.get("listen")


def _to_a_file(values: Mapping[str, object]) -> bool:
    return values.get("output") != "-"


def _reads_stdin(values: Mapping[str, object]) -> bool:
    return not (values.get("no_stdin") or values.get("recv_only"))


def _progress(values: Mapping[str, object]) -> bool:
    return bool(values.get("progress") or values.get("progress_auto"))


#: command → its rules (connect/listen too: flag-on-flag rules, after the path table).  The relay's fault flags (--latency ...) are what --toxicity
#: and --seed act on; send/receive listen or connect (--listen/--connect).
COMMAND_RULES: tuple[Rule, ...] = (
    *(
        rule
        for command in ("connect", "listen")
        for rule in (
            Rule(command, "size", "--size", "sets the -P percentage: only with -P/--progress",
                 _progress),
            Rule(command, "linger", "-q", "times the wait after stdin's EOF: not with "
                 "-d/--recv-only (stdin is not read)", _reads_stdin),
            Rule(command, "crlf", "-C", "converts stdin: not with -d/--recv-only (stdin is "
                 "not read)", _reads_stdin),
        )
    ),
    Rule("relay", "reject_over_limit", "--reject-over-limit", "needs --max-conns",
         lambda values: values.get("max_conns") is not None),
    Rule("relay", "toxicity", "--toxicity", "needs a fault flag (--latency, --stall, ...)",
         _faults),
    Rule("relay", "seed", "--seed", "needs a fault flag (it seeds the fault RNG)", _faults),
    Rule("clock serve", "stratum", "--stratum", "only with --proto ntp",
         lambda values: values.get("proto") == "ntp"),
    Rule("send", "connect_timeout", "-w", "times a connect: not with --listen", _connecting),
    Rule("receive", "connect_timeout", "-w", "times a connect: only with --connect",
         _connecting),
    Rule("receive", "json", "--json", "stdout carries the data with -o -", _to_a_file),
    Rule("receive", "resume", "--resume", "cannot resume onto stdout (-o -)", _to_a_file),
)  # fmt: skip


def check_command(name: str, command: Callable[..., object], values: Mapping[str, object]) -> None:
    """Raise the :class:`UsageError` for a flag of ``name`` its mode cannot honour."""
    flags = given(command, values)
    for rule in COMMAND_RULES:
        if rule.command == name and rule.name in flags and not rule.holds(values):
            raise UsageError(rule.spelling, rule.why)


__all__ = [
    "ARGUMENTS",
    "COMMAND_RULES",
    "TABLE",
    "Flag",
    "Path",
    "Rule",
    "check",
    "check_command",
    "given",
    "paths_of",
    "refusal",
]

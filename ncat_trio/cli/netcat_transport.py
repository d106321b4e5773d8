"""connect/listen flags for the transport and what runs on it (issue 7, part A):
``-u``, ``-U``, ``-e``, ``-c``, ``--max-conns``, ``--sequential`` and socket options.

typer-only declarations plus :func:`transport_fields`, which parses their strings into
the matching fields of :class:`~ncat_trio.modes.netcat.NetcatOptions`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from ..parse import parse_port, parse_size
from ..transport.endpoint import Endpoint
from .common import flag, value

TRANSPORT = "Transport"
EXEC = "Exec"
SOCKOPT = "Socket options"

Udp = flag(TRANSPORT, "-u", "--udp", help="UDP (with -U: Unix datagram sockets).")
Unix = value(
    TRANSPORT,
    "-U",
    "--unix",
    metavar="PATH",
    help="A Unix domain socket at PATH instead of HOST PORT.",
)
Exec = value(
    EXEC,
    "-e",
    "--exec",
    metavar='"CMD ARGS"',
    help="Attach CMD's stdin/stdout to the connection (words split, no shell).",
)
ShExec = value(
    EXEC, "-c", "--sh-exec", metavar='"CMD"', help="Like -e, but CMD is run by /bin/sh -c."
)
MaxConns = value(
    TRANSPORT,
    "--max-conns",
    metavar="N",
    help="listen -k: clients served at once (default 100); more are closed at once.",
)
Sequential = flag(
    TRANSPORT,
    "--sequential",
    help="listen -k: one client at a time, the next after it ends (OpenBSD nc).",
)
Keepalive = value(
    SOCKOPT,
    "--keepalive",
    metavar="[=IDLE,INTVL,CNT]",
    help="TCP keepalive; optionally its timers in seconds and probe count.",
)
SndBuf = value(SOCKOPT, "--sndbuf", metavar="BYTES", help="SO_SNDBUF (e.g. 256K).")
RcvBuf = value(SOCKOPT, "--rcvbuf", metavar="BYTES", help="SO_RCVBUF (e.g. 256K).")
Tos = value(
    SOCKOPT,
    "--tos",
    metavar="TOS",
    help="IP TOS / IPv6 traffic class: 0-255, 0x.., or lowdelay, throughput, af41, ef, ...",
)
Ttl = value(SOCKOPT, "--ttl", metavar="N", help="IP TTL / IPv6 hop limit (1-255).")
ReusePort = flag(
    SOCKOPT,
    "--reuseport",
    help="SO_REUSEPORT: share the port with other sockets that set it (never implicit).",
)
Broadcast = flag(
    SOCKOPT, "--broadcast", help="SO_BROADCAST: allow sending to broadcast addresses (UDP)."
)


def connect_endpoint(
    host: str | None, port: str | None, family: int, numeric: bool, unix: str | None
) -> Endpoint:
    """HOST PORT, or nothing with -U (the endpoint is then unused)."""
    if unix is not None:
        if host is not None or port is not None:
            raise UsageError("-U PATH", "takes no HOST PORT")
        return Endpoint(None, 0, family, numeric)
    if host is not None and port is None:
        joined = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\s]+):(\d+)", host)
        if joined is not None:  # `ncat-trio 127.0.0.1:8080`, `[::1]:8080`: nc takes two words
            name = joined.group(1) or joined.group(3)
            number = joined.group(2) or joined.group(4)
            raise UsageError(
                f"{host!r} is one word", f"give HOST and PORT apart: ncat-trio {name} {number}"
            )
    if host is None or port is None:
        raise UsageError(
            f"Missing argument '{'HOST' if host is None else 'PORT'}'", "give HOST PORT, or -U PATH"
        )
    return Endpoint(host, parse_port(port), family, numeric)


def listen_words(words: list[str], unix: str | None) -> list[str]:
    """With -U, no [HOST] PORT may be given (a placeholder port stands in)."""
    if unix is None:
        return words
    if words:
        raise UsageError("-U PATH", "takes no [HOST] PORT")
    return ["0"]


def _size(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    size = parse_size(text, what=what)
    if not 1 <= size <= 2**31 - 1:
        raise UsageError(f"invalid {what} {text!r}", "must be 1 byte to 2 GiB")
    return size


def transport_fields(v: Mapping[str, Any]) -> dict[str, Any]:
    """The transport fields of NetcatOptions from the flags *v* (``-k``'s ``--max-conns`` and
    ``--sequential`` are listen's only); UsageError for bad values.

    Which flag works on which path (-u, -U, -k, -e ...) is cli/compat.py's table."""
    from ..transport.sockopts import (  # lazy: keeps start-up light
        SocketOptions,
        parse_keepalive,
        parse_tos,
        parse_ttl,
    )

    exec_, sh_exec, unix = v["exec_"], v["sh_exec"], v["unix"]
    max_conns, sequential = v.get("max_conns"), v.get("sequential", False)
    keepalive, tos, ttl = v["keepalive"], v["tos"], v["ttl"]
    if exec_ is not None and sh_exec is not None:
        raise UsageError("-e and -c", "choose one")
    command = None
    if exec_ is not None or sh_exec is not None:
        from ..modes.exec import ExecCommand  # lazy: keeps start-up light

        command = ExecCommand.from_sh(sh_exec) if exec_ is None else ExecCommand.from_exec(exec_)
    if unix is not None and not unix.strip():
        raise UsageError("-U", "empty path")
    conns = 100
    if max_conns is not None:
        try:
            conns = int(max_conns, 10)
        except ValueError:
            raise UsageError(f"invalid --max-conns {max_conns!r}", "not a decimal number") from None
        if conns < 1:
            raise UsageError(f"invalid --max-conns {max_conns!r}", "must be at least 1")
    if sequential and max_conns is not None:
        raise UsageError("--sequential", "serves one client at a time: no --max-conns")
    socket_options = SocketOptions(
        keepalive=None if keepalive is None else parse_keepalive(keepalive),
        sndbuf=_size(v["sndbuf"], "--sndbuf"),
        rcvbuf=_size(v["rcvbuf"], "--rcvbuf"),
        tos=None if tos is None else parse_tos(tos),
        ttl=None if ttl is None else parse_ttl(ttl),
        reuseport=v["reuseport"],
        broadcast=v["broadcast"],
    )
    return {
        "udp": v["udp"],
        "unix_path": unix,
        "exec_command": command,
        "max_conns": conns,
        "sequential": sequential,
        "socket_options": socket_options,
    }

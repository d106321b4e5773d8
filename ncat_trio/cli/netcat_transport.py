"""connect/listen flags for the transport and what runs on it (issue 7, part A):
``-u``, ``-U``, ``-e``, ``-c``, ``--max-conns``, ``--sequential`` and socket options.

typer-only declarations plus :func:`with_transport`, which folds the parsed strings
into a :class:`~ncat_trio.modes.netcat.NetcatOptions` (``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from ..parse import parse_port, parse_size
from ..transport.endpoint import Endpoint

if TYPE_CHECKING:
    from ..modes.netcat import NetcatOptions

TRANSPORT = "Transport"
EXEC = "Exec"
SOCKOPT = "Socket options"

Udp = Annotated[
    bool,
    typer.Option(
        "-u", "--udp", help="UDP (with -U: Unix datagram sockets).", rich_help_panel=TRANSPORT
    ),
]
Unix = Annotated[
    str | None,
    typer.Option(
        "-U",
        "--unix",
        metavar="PATH",
        help="A Unix domain socket at PATH instead of HOST PORT.",
        rich_help_panel=TRANSPORT,
    ),
]
Exec = Annotated[
    str | None,
    typer.Option(
        "-e",
        "--exec",
        metavar='"CMD ARGS"',
        help="Attach CMD's stdin/stdout to the connection (words split, no shell).",
        rich_help_panel=EXEC,
    ),
]
ShExec = Annotated[
    str | None,
    typer.Option(
        "-c",
        "--sh-exec",
        metavar='"CMD"',
        help="Like -e, but CMD is run by /bin/sh -c.",
        rich_help_panel=EXEC,
    ),
]
MaxConns = Annotated[
    str | None,
    typer.Option(
        "--max-conns",
        metavar="N",
        help="listen -k: clients served at once (default 100); more are closed at once.",
        rich_help_panel=TRANSPORT,
    ),
]
Sequential = Annotated[
    bool,
    typer.Option(
        "--sequential",
        help="listen -k: one client at a time, the next after it ends (OpenBSD nc).",
        rich_help_panel=TRANSPORT,
    ),
]
Keepalive = Annotated[
    str | None,
    typer.Option(
        "--keepalive",
        metavar="[=IDLE,INTVL,CNT]",
        help="TCP keepalive; optionally its timers in seconds and probe count.",
        rich_help_panel=SOCKOPT,
    ),
]
SndBuf = Annotated[
    str | None,
    typer.Option(
        "--sndbuf", metavar="BYTES", help="SO_SNDBUF (e.g. 256K).", rich_help_panel=SOCKOPT
    ),
]
RcvBuf = Annotated[
    str | None,
    typer.Option(
        "--rcvbuf", metavar="BYTES", help="SO_RCVBUF (e.g. 256K).", rich_help_panel=SOCKOPT
    ),
]
Tos = Annotated[
    str | None,
    typer.Option(
        "--tos",
        metavar="TOS",
        help="IP TOS / IPv6 traffic class: 0-255, 0x.., or lowdelay, throughput, af41, ef, ...",
        rich_help_panel=SOCKOPT,
    ),
]
Ttl = Annotated[
    str | None,
    typer.Option(
        "--ttl", metavar="N", help="IP TTL / IPv6 hop limit (1-255).", rich_help_panel=SOCKOPT
    ),
]
ReusePort = Annotated[
    bool,
    typer.Option(
        "--reuseport",
        help="SO_REUSEPORT: share the port with other sockets that set it (never implicit).",
        rich_help_panel=SOCKOPT,
    ),
]
Broadcast = Annotated[
    bool,
    typer.Option(
        "--broadcast",
        help="SO_BROADCAST: allow sending to broadcast addresses (UDP).",
        rich_help_panel=SOCKOPT,
    ),
]


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
    value = parse_size(text, what=what)
    if not 1 <= value <= 2**31 - 1:
        raise UsageError(f"invalid {what} {text!r}", "must be 1 byte to 2 GiB")
    return value


def with_transport(
    options: NetcatOptions,
    *,
    udp: bool = False,
    unix: str | None = None,
    exec_: str | None = None,
    sh_exec: str | None = None,
    max_conns: str | None = None,
    sequential: bool = False,
    keepalive: str | None = None,
    sndbuf: str | None = None,
    rcvbuf: str | None = None,
    tos: str | None = None,
    ttl: str | None = None,
    reuseport: bool = False,
    broadcast: bool = False,
) -> NetcatOptions:
    """``options`` with the transport flags parsed in; UsageError for bad values.

    Which flag works on which path (-u, -U, -k, -e ...) is cli/compat.py's table."""
    from ..transport.sockopts import (  # lazy: keeps start-up light
        SocketOptions,
        parse_keepalive,
        parse_tos,
        parse_ttl,
    )

    if exec_ is not None and sh_exec is not None:
        raise UsageError("-e and -c", "choose one")
    command = None
    if exec_ is not None:
        from ..modes.exec import ExecCommand  # lazy: keeps start-up light

        command = ExecCommand.from_exec(exec_)
    elif sh_exec is not None:
        from ..modes.exec import ExecCommand  # lazy: keeps start-up light

        command = ExecCommand.from_sh(sh_exec)
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
        sndbuf=_size(sndbuf, "--sndbuf"),
        rcvbuf=_size(rcvbuf, "--rcvbuf"),
        tos=None if tos is None else parse_tos(tos),
        ttl=None if ttl is None else parse_ttl(ttl),
        reuseport=reuseport,
        broadcast=broadcast,
    )
    session = options.session
    if command is not None:  # the child has the connection: stdio is not ours to open
        session = dataclasses.replace(session, send=False, receive=False)
    return dataclasses.replace(
        options,
        session=session,
        udp=udp,
        unix_path=unix,
        exec_command=command,
        max_conns=conns,
        sequential=sequential,
        socket_options=socket_options,
    )

"""``clock serve`` and ``clock probe``: typer signatures → frozen options → run."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import UsageError
from ..modes.clock_defaults import NTP_PORT, NTP_SERVE_PORT, PROTOCOLS, ROUNDTRIP_PORT
from ..parse import parse_duration, parse_port
from ..transport.endpoint import Endpoint
from . import common, compat
from .common import (
    CONN,
    OUT,
    TIME,
    Bind,
    IPv4,
    IPv6,
    JsonFile,
    Numeric,
    json_option,
    option,
    verbose_option,
)
from .panels import PanelledCommand, new_app

app = new_app(
    "clock", "Measure clock offset and round trip to a server (roundtrip or SNTPv4), or serve."
)

Proto = Annotated[
    str,
    option(
        CONN,
        "--proto",
        metavar="roundtrip|ntp",
        help="Wire format: muduo's 16-byte roundtrip frames, or SNTPv4 (RFC 4330).",
    ),
]
Port = Annotated[
    str | None,
    option(
        CONN,
        "-p",
        "--port",
        metavar="PORT",
        help=f"Port (default: roundtrip {ROUNDTRIP_PORT}; ntp {NTP_SERVE_PORT} "
        f"to serve, {NTP_PORT} to probe).",
    ),
]
Tcp = Annotated[
    bool, option(CONN, "--tcp", help="roundtrip over TCP (TCP_NODELAY) instead of UDP.")
]


def _proto(proto: str, tcp: bool) -> str:
    if proto not in PROTOCOLS:
        raise UsageError(f"invalid --proto {proto!r}", "use roundtrip or ntp")
    if tcp and proto != "roundtrip":
        raise UsageError("--tcp", "only roundtrip runs over TCP (NTP is UDP only)")
    return proto


def serve(
    port: Port = None,
    bind: Bind = None,
    proto: Proto = "roundtrip",
    tcp: Tcp = False,
    stratum: Annotated[
        int,
        option(
            OUT, "--stratum", metavar="N", min=1, max=15, help="ntp: the stratum we claim (1-15)."
        ),
    ] = 10,
    ipv4: IPv4 = False,
    ipv6: IPv6 = False,
    numeric: Numeric = False,
    verbose: Annotated[bool, verbose_option("Log drops and connections.")] = False,
) -> int:
    """Answer clock probes until interrupted (port 0 picks one).

    Prints `ncat-trio: listening on ADDR:PORT (PROTO over udp|tcp)` on stderr once ready.
    """
    compat.check_command("clock serve", serve, locals())  # --stratum without ntp: exit 2
    from .. import runner  # lazy: keeps start-up light
    from ..modes import clock  # lazy: keeps start-up light

    proto = _proto(proto, tcp)
    number = (
        clock.default_port(proto, serve=True) if port is None else parse_port(port, allow_zero=True)
    )
    options = clock.ServeOptions(
        endpoint=Endpoint(bind, number, common.address_family(ipv4, ipv6), numeric),
        proto=proto,
        tcp=tcp,
        stratum=stratum,
        verbose=verbose,
    )
    return runner.run(lambda: clock.serve_main(options))


def probe(
    host: Annotated[str, typer.Argument(metavar="HOST", help="The server to measure against.")],
    port: Port = None,
    proto: Proto = "roundtrip",
    tcp: Tcp = False,
    count: Annotated[
        int,
        option(TIME, "-c", "--count", metavar="COUNT", min=1, help="Probes to send."),
    ] = 8,
    interval: Annotated[
        str,
        option(TIME, "--interval", metavar="SECS", help="Time between probes."),
    ] = "0.2",
    timeout: Annotated[
        str,
        option(TIME, "--timeout", metavar="SECS", help="How long each probe waits for its reply."),
    ] = "1",
    as_json: Annotated[bool, json_option("Print the summary as one JSON object.")] = False,
    json_file: JsonFile = None,
    ipv4: IPv4 = False,
    ipv6: IPv6 = False,
    numeric: Numeric = False,
    verbose: Annotated[bool, verbose_option("One line per probe on stderr.")] = False,
) -> int:
    """Probe HOST COUNT times; print the best (smallest round trip) offset, median, spread.

    Exit 0 if at least one valid reply came back; 4 if none did, 1 if the port is
    unreachable, 6 if the server only sent invalid replies (e.g. a kiss-o'-death).
    """
    from .. import runner  # lazy: keeps start-up light
    from ..modes import clock  # lazy: keeps start-up light

    proto = _proto(proto, tcp)
    number = clock.default_port(proto, serve=False) if port is None else parse_port(port)
    wait = parse_duration(timeout, what="--timeout")
    if wait <= 0:
        raise UsageError(f"invalid --timeout {timeout!r}", "must be more than 0")
    options = clock.ProbeOptions(
        endpoint=Endpoint(host, number, common.address_family(ipv4, ipv6), numeric),
        proto=proto,
        tcp=tcp,
        count=count,
        interval=parse_duration(interval, what="--interval"),
        timeout=wait,
        json=as_json,
        json_file=common.checked_json_file(json_file),
        verbose=verbose,
    )
    return runner.run(lambda: clock.probe_main(options))


app.command(no_args_is_help=False, cls=PanelledCommand)(serve)
app.command(no_args_is_help=True, cls=PanelledCommand)(probe)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="clock")

"""``scan HOST PORTS…``: typer signature → frozen ScanOptions → run (nc's ``-z`` lands here)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from ..errors import UsageError
from ..parse import parse_duration
from ..transport.endpoint import Endpoint


def scan(
    host: Annotated[str, typer.Argument(metavar="HOST", help="Host name or address to scan.")],
    ports: Annotated[
        list[str],
        typer.Argument(
            metavar="PORTS...", help="Ports and ranges: 22,80,8000-8100 (or several words)."
        ),
    ],
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", metavar="N", help="At most N connects in flight."),
    ] = 100,
    timeout: Annotated[
        str,
        typer.Option(
            "-w",
            "--timeout",
            metavar="SECS",
            help="Per-port connect timeout; no answer counts as not open.",
        ),
    ] = "3",
    ipv4: Annotated[bool, typer.Option("-4", help="IPv4 only.")] = False,
    ipv6: Annotated[bool, typer.Option("-6", help="IPv6 only.")] = False,
    numeric: Annotated[
        bool, typer.Option("-n", "--numeric", help="No DNS: HOST is a literal address.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("-v", "--verbose", help="Also report closed ports and a summary on stderr."),
    ] = False,
) -> int:
    """Report which TCP ports accept a connection: `ADDRESS PORT open` lines on stdout.

    Exit 0 if any port is open, 1 if none, 2 for bad arguments.
    """
    from .. import runner  # lazy: keeps start-up light
    from ..modes import scan as scan_mode  # lazy: keeps start-up light

    if ipv4 and ipv6:
        raise UsageError("-4 and -6", "choose one")
    if not 1 <= concurrency <= 10000:
        raise UsageError(f"invalid --concurrency {concurrency}", "must be 1-10000")
    family = socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else 0
    options = scan_mode.ScanOptions(
        endpoint=Endpoint(host, 0, family, numeric),
        ports=scan_mode.parse_ports(ports),
        concurrency=concurrency,
        timeout=parse_duration(timeout, what="timeout (-w)"),
        verbose=verbose,
    )
    return runner.run(lambda: scan_mode.scan_main(options))


def register(app: typer.Typer) -> None:
    app.command()(scan)

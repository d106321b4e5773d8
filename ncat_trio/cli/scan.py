"""``scan HOST PORTS…``: typer signature → frozen ScanOptions → run (nc's ``-z`` lands here)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import CONN, TIME, IPv4, IPv6, JsonFile, Numeric, json_option, option, verbose_option
from .panels import PanelledCommand


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
        option(CONN, "--concurrency", metavar="N", help="At most N connects in flight."),
    ] = 100,
    timeout: Annotated[
        str,
        option(
            TIME,
            "-w",
            "--timeout",
            metavar="SECS",
            help="Per-port connect timeout; no answer counts as not open.",
        ),
    ] = "3",
    ipv4: IPv4 = False,
    ipv6: IPv6 = False,
    numeric: Numeric = False,
    verbose: Annotated[
        bool, verbose_option("Also report closed ports and a summary on stderr.")
    ] = False,
    json: Annotated[
        bool,
        json_option("Print one JSON object (open, closed, filtered ports) instead of the lines."),
    ] = False,
    json_file: JsonFile = None,
    nc_style: Annotated[bool, typer.Option("--nc-style", hidden=True)] = False,
) -> int:
    """Report which TCP ports accept a connection: `ADDRESS PORT open` lines on stdout.

    Exit 0 if any port is open, 1 if none, 2 for bad arguments.
    """
    from .. import runner  # lazy: keeps start-up light
    from ..modes.scan import scan_main  # lazy: keeps start-up light
    from .scan_options import build

    options = build(
        host,
        ports,
        concurrency=concurrency,
        timeout=timeout,
        ipv4=ipv4,
        ipv6=ipv6,
        numeric=numeric,
        verbose=verbose,
        json=json,
        json_file=json_file,
        nc_style=nc_style,
    )
    return runner.run_blocking(lambda: scan_main(options))


def register(app: typer.Typer) -> None:
    app.command(cls=PanelledCommand)(scan)

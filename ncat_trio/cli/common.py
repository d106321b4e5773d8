"""Options and helpers that several commands share, defined once."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from ..errors import UsageError

CONN = "Connection"
TIME = "Timeouts"
IO = "I/O"
OUT = "Output"

IPv4 = Annotated[bool, typer.Option("-4", help="IPv4 only.", rich_help_panel=CONN)]
IPv6 = Annotated[bool, typer.Option("-6", help="IPv6 only.", rich_help_panel=CONN)]
Numeric = Annotated[
    bool,
    typer.Option(
        "-n", "--numeric", help="No DNS: hosts are literal addresses.", rich_help_panel=CONN
    ),
]
ConnectTimeout = Annotated[
    str | None,
    typer.Option(
        "-w",
        "--connect-timeout",
        metavar="SECS",
        help="Give up connecting after SECS (exit 4).",
        rich_help_panel=TIME,
    ),
]

NoZeroCopy = Annotated[
    bool,
    typer.Option(
        "--no-zerocopy",
        help="Copy through user space instead of splice/sendfile (debugging, comparisons).",
        rich_help_panel=IO,
    ),
]
#: relay's old spelling of --no-zerocopy, still taken.
NoSplice = Annotated[bool, typer.Option("--no-splice", hidden=True)]
JsonFile = Annotated[
    str | None,
    typer.Option(
        "--json-file",
        metavar="FILE",
        help="Append the JSON summary to FILE, one object per line (docs/json.md).",
        rich_help_panel=OUT,
    ),
]


def checked_json_file(path: str | None) -> str | None:
    """``--json-file``: refused at once (exit 5) if it could not be written at the end."""
    if path is not None:
        from ..json_summary import check_appendable  # lazy: keeps start-up light

        check_appendable(path)
    return path


def address_family(ipv4: bool, ipv6: bool) -> int:
    """-4/-6 as an address family (0: either)."""
    if ipv4 and ipv6:
        raise UsageError("-4 and -6", "choose one")
    return socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else 0

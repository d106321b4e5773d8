"""``ttcp receive`` / ``ttcp transmit``, and the classic ``ttcp -r`` / ``ttcp -t HOST``.

The classic spellings are rewritten into the subcommands by :func:`rewrite_classic`,
which the group runs on its own arguments before typer parses them; nothing outside
this module knows about them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import UsageError
from ..parse import parse_port, parse_size
from ..proto.ttcp import DEFAULT_LENGTH, DEFAULT_NUMBER, DEFAULT_PORT, INT32_MAX, LENGTH_LIMIT
from ..transport.endpoint import Endpoint
from .common import CONN, IO, Bind, JsonFile, checked_json_file, json_option, option
from .panels import PanelledCommand, PanelledGroup, new_app

_CLASSIC_FLAGS = "rkD"  # getopt letters without a value that may be bundled: -rk
_COMMANDS = ("receive", "transmit")


def rewrite_classic(args: list[str]) -> list[str]:
    """``-r …`` → ``receive …``; ``-t HOST …`` / ``-tHOST …`` → ``transmit HOST …``.

    Bundled value-less flags are split as getopt would (``-rk`` → ``receive -k``).
    Arguments after ``--`` and lines that already name a subcommand are left alone.
    """
    if not args or args[0] in _COMMANDS:
        return args
    receive = False
    host: str | None = None
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            out.extend(args[index - 1 :])
            break
        if len(arg) < 2 or arg[0] != "-" or arg[1] == "-" or not _is_classic_bundle(arg):
            out.append(arg)
            continue
        flags = arg[1:]
        if "t" in flags:
            flags, value = flags.split("t", 1)
            if not value:
                if index >= len(args):
                    raise UsageError("ttcp -t", "expected a host: ttcp -t HOST")
                value = args[index]
                index += 1
            if host is not None:
                raise UsageError("ttcp -t", "given twice")
            host = value
        if "r" in flags:
            receive = True
            flags = flags.replace("r", "")
        if flags:
            out.append("-" + flags)
    if receive and host is not None:
        raise UsageError("ttcp", "choose one of -r (receive) and -t HOST (transmit)")
    if receive:
        return ["receive", *out]
    if host is not None:
        return ["transmit", host, *out]
    return args


def _is_classic_bundle(arg: str) -> bool:
    """``-r``, ``-rk``, ``-t``, ``-Dt``, ``-tHOST``: value-less letters, optionally ending in t."""
    head = arg[1:].split("t", 1)[0]
    return all(letter in _CLASSIC_FLAGS for letter in head) and ("t" in arg or "r" in head)


class ClassicSpellings(PanelledGroup):
    """The ``ttcp`` group: rewrites ``-r`` / ``-t HOST`` before parsing."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        result: list[str] = super().parse_args(ctx, rewrite_classic(list(args)))
        return result


app = new_app(
    "ttcp",
    "TCP throughput test, wire-compatible with muduo's ttcp (classic: -r / -t HOST).",
    ClassicSpellings,
)

Json = Annotated[bool, json_option("Print one JSON object instead of the lines.")]
Port = Annotated[
    str, option(CONN, "-p", "--port", metavar="PORT", help="TCP port (receive: 0 picks one).")
]
KeepOpen = Annotated[
    bool,
    option(CONN, "-k", "--keep-open", help="Serve one session after another; don't exit."),
]
MaxLength = Annotated[
    str,
    option(
        IO,
        "--max-length",
        metavar="BYTES",
        help="Refuse sessions with longer payloads (e.g. 1M).",
    ),
]
Verify = Annotated[
    bool,
    option(IO, "--verify", help="Check payload data against the pattern (mismatch: exit 6)."),
]
Host = Annotated[str, typer.Argument(metavar="HOST", help="The receiver's host name or address.")]
Length = Annotated[
    str,
    option(IO, "-l", "--length", metavar="BYTES", help="Payload length (e.g. 1024, 64K)."),
]
Number = Annotated[str, option(IO, "-n", "--number", metavar="N", help="Number of payloads.")]
NoDelay = Annotated[bool, option(CONN, "-D", "--nodelay", help="Set TCP_NODELAY (Nagle off).")]
Window = Annotated[
    str,
    option(
        IO,
        "--window",
        metavar="W",
        help="Payloads in flight before waiting for acks (1: stop-and-wait).",
    ),
]


def _count(text: str, what: str, low: int, high: int) -> int:
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdecimal():
        raise UsageError(f"invalid {what} {text!r}", "not a decimal number")
    value = int(stripped)
    if not low <= value <= high:
        raise UsageError(f"invalid {what} {text!r}", f"must be {low}-{high}")
    return value


def _bounded_size(text: str, what: str) -> int:
    value = parse_size(text, what=what)
    if value > LENGTH_LIMIT:
        raise UsageError(f"invalid {what} {text!r}", f"must be at most {LENGTH_LIMIT}")
    return value


@app.command(cls=PanelledCommand)
def receive(
    port: Port = str(DEFAULT_PORT),
    bind: Bind = None,
    keep_open: KeepOpen = False,
    max_length: MaxLength = "64M",
    verify: Verify = False,
    json_output: Json = False,
    json_file: JsonFile = None,
) -> int:
    """Receive: listen, ack every payload, print the session's numbers (`ttcp -r`).

    Prints `port = P` on stdout and `ncat-trio: listening on ADDR:PORT` on stderr once ready.
    """
    from .. import runner  # lazy: keeps start-up light
    from ..modes import ttcp  # lazy: keeps start-up light

    options = ttcp.TtcpReceiveOptions(
        endpoint=Endpoint(bind, parse_port(port, allow_zero=True)),
        session=ttcp.ReceiveOptions(
            max_length=_bounded_size(max_length, "--max-length"), verify=verify
        ),
        keep_open=keep_open,
        json=json_output,
        json_file=checked_json_file(json_file),
    )
    return runner.run(lambda: ttcp.receive_main(options))


@app.command(no_args_is_help=True, cls=PanelledCommand)
def transmit(
    host: Host,
    port: Port = str(DEFAULT_PORT),
    length: Length = str(DEFAULT_LENGTH),
    number: Number = str(DEFAULT_NUMBER),
    nodelay: NoDelay = False,
    window: Window = "1",
    json_output: Json = False,
    json_file: JsonFile = None,
) -> int:
    """Transmit: connect to HOST, send the session and payloads, print the rate (`ttcp -t HOST`)."""
    from .. import runner  # lazy: keeps start-up light
    from ..modes import ttcp  # lazy: keeps start-up light

    options = ttcp.TtcpTransmitOptions(
        endpoint=Endpoint(host, parse_port(port)),
        session=ttcp.TransmitOptions(
            number=_count(number, "number (-n)", 0, INT32_MAX),
            length=_bounded_size(length, "length (-l)"),
            window=_count(window, "window", 1, INT32_MAX),
        ),
        nodelay=nodelay,
        json=json_output,
        json_file=checked_json_file(json_file),
    )
    return runner.run(lambda: ttcp.transmit_main(options))

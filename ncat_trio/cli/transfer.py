"""``send`` and ``receive``: typer signatures → frozen options → run.

By default the receiver listens and the sender connects (``nc -l 9000 > f`` /
``nc host 9000 < f``); ``send --listen`` and ``receive --connect`` swap the roles
for a receiver behind NAT.  Exit codes: PROTOCOL.md, "Exit codes".
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import UsageError
from ..parse import parse_duration, parse_port
from ..transport.endpoint import Endpoint
from . import compat
from .common import (
    CONN,
    OUT,
    TIME,
    ConnectTimeout,
    IPv4,
    IPv6,
    JsonFile,
    Numeric,
    address_family,
    checked_json_file,
    flag,
    json_option,
    option,
    params,
    value,
    with_params,
)
from .panels import PanelledCommand

Progress = flag(OUT, "--progress", help="Live progress on stderr, as connect -P.")
Json = Annotated[bool, json_option("Print a JSON summary on stdout when verified.")]
Quiet = flag(OUT, "-q", "--quiet", help="No summary line on stderr.")
IdleTimeout = value(
    TIME,
    "-i",
    "--idle-timeout",
    metavar="SECS",
    help="Fail (exit 4) when nothing is sent or received for SECS (a peer that hangs "
    "without closing). Local hashing and fsync don't count. Default: wait.",
)


def send_endpoint(words: list[str], *, listen: bool) -> tuple[str | None, str, str]:
    """(host, port, file) from ``HOST PORT [FILE]``, or with --listen ``[HOST] PORT [FILE]``.

    With --listen two words are ``PORT FILE``; to bind a host and send stdin, say
    ``HOST PORT -``.
    """
    if listen:
        if len(words) == 1:
            return None, words[0], "-"
        if len(words) == 2:
            return None, words[0], words[1]
        if len(words) == 3:
            return words[0], words[1], words[2]
        raise UsageError("send --listen", "expected [HOST] PORT [FILE|-]")
    if len(words) in (2, 3):
        return words[0], words[1], words[2] if len(words) == 3 else "-"
    raise UsageError("send", "expected HOST PORT [FILE|-]")


#: The flags send and receive both take, after their own (in --help order).
_SHARED = params(
    connect_timeout=ConnectTimeout, idle_timeout=IdleTimeout, ipv4=IPv4, ipv6=IPv6,
    numeric=Numeric, progress=Progress, json=Json, json_file=JsonFile, quiet=Quiet,
)  # fmt: skip


def _endpoint(host: str | None, port: str, listen: bool, v: dict[str, Any]) -> Endpoint:
    family = address_family(v["ipv4"], v["ipv6"])
    return Endpoint(host, parse_port(port, allow_zero=listen), family, v["numeric"])


def _shared(v: dict[str, Any]) -> dict[str, Any]:
    """The fields of SendOptions and ReceiveOptions filled alike from the shared flags."""
    w, idle = v["connect_timeout"], v["idle_timeout"]  # -w, -i
    return {
        "connect_timeout": None if w is None else parse_duration(w, what="connect timeout (-w)"),
        "idle_timeout": None if idle is None else parse_duration(idle, what="idle timeout (-i)"),
        "progress": v["progress"],
        "json": v["json"],
        "json_file": checked_json_file(v["json_file"]),
        "quiet": v["quiet"],
    }


@with_params(_SHARED)
def send(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="HOST PORT [FILE|-]",
            help="Where to send, and the file (default: stdin). With --listen: [HOST] PORT [FILE|-].",
        ),
    ],
    listen: Annotated[
        bool,
        option(
            CONN,
            "--listen/--connect",
            help="Wait for the receiver to connect (it is behind NAT), or connect (default).",
        ),
    ] = False,
    name: Annotated[
        str | None,
        option(
            OUT,
            "--name",
            metavar="NAME",
            help="Name to send (default: the file's base name, or 'stdin').",
        ),
    ] = None,
    **shared: Any,
) -> int:
    """Send a file (or stdin) and exit 0 only when the receiver confirms it is on disk, verified.

    The receiver acknowledges after writing, fsync and a sha256 check. No
    acknowledgement (connection lost): exit 3. The receiver's refusal or digest
    mismatch: the receiver's exit code (5 local I/O, 6 protocol, 7 integrity).
    """
    compat.check_command("send", send, {**locals(), **shared})  # -w with --listen: exit 2
    from .. import runner  # lazy: keeps start-up light
    from ..modes import transfer  # lazy: keeps start-up light

    host, port, path = send_endpoint(list(words), listen=listen)
    options = transfer.SendOptions(
        endpoint=_endpoint(host, port, listen, shared),
        path=path,
        name=None if name is None else transfer.checked_name(name),
        listen=listen,
        **_shared(shared),
    )
    return runner.run(lambda: transfer.send_main(options))


@with_params(_SHARED)
def receive(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="[HOST] PORT",
            help="Address to listen on (default: all) and port (0 picks one); with --connect: the sender's HOST PORT.",
        ),
    ],
    output: Annotated[
        str | None,
        option(
            OUT,
            "-o",
            "--output",
            metavar="FILE|DIR|-",
            help="Where to write: a file, a directory (the sender's name is used), or - for stdout. Default: the sender's name in the current directory.",
        ),
    ] = None,
    listen: Annotated[
        bool,
        option(CONN, "--listen/--connect", help="Listen for the other side, or connect to it."),
    ] = True,
    force: Annotated[bool, option(OUT, "--force", help="Replace an existing file.")] = False,
    resume: Annotated[
        bool,
        option(
            OUT, "--resume", help="Keep a partial file when cut, and continue from it next time."
        ),
    ] = False,
    **shared: Any,
) -> int:
    """Receive one file, verify its sha256, and only then give it its name.

    Listens by default and prints `ncat-trio: listening on ADDR:PORT` on stderr once
    ready. The file is written under a temporary name and renamed into place after
    the digest matched; it is never put over an existing file without --force.
    Exit 7 on a digest mismatch or a short stream.
    """
    # -w listening, --force onto -o -
    compat.check_command("receive", receive, {**locals(), **shared})
    from .. import runner  # lazy: keeps start-up light
    from ..modes import transfer  # lazy: keeps start-up light
    from ..modes.transfer_session import ReceiveTarget

    if listen and len(words) in (1, 2):
        host = words[0] if len(words) == 2 else None
    elif not listen and len(words) == 2:
        host = words[0]
    else:
        raise UsageError("receive", "expected [HOST] PORT (with --connect: HOST PORT)")
    options = transfer.ReceiveOptions(
        endpoint=_endpoint(host, words[-1], listen, shared),
        target=ReceiveTarget(output=output, force=force, resume=resume),
        listen=listen,
        **_shared(shared),
    )
    return runner.run(lambda: transfer.receive_main(options))


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True, cls=PanelledCommand)(send)
    app.command(no_args_is_help=True, cls=PanelledCommand)(receive)

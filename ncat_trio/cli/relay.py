"""``relay``: typer signature → frozen :class:`RelayOptions` → run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UsageError
from ..parse import parse_duration, parse_port, parse_size
from ..transport.endpoint import Endpoint
from . import compat
from .common import (
    CONN,
    IO,
    OUT,
    TIME,
    JsonFile,
    NoSplice,
    NoZeroCopy,
    access_params,
    access_policy,
    address_family,
    checked_json_file,
    json_option,
    option,
    params,
    verbose_option,
    with_params,
)
from .panels import PanelledCommand

if TYPE_CHECKING:
    from ..transport.faults import AnyFault


LIMITS = "Limits and access"
FAULTS = "Fault injection (DIR is up, down or both; default both)"


def parse_host_port(
    text: str, *, what: str, default_host: str | None = None, allow_zero: bool = False
) -> Endpoint:
    """``HOST:PORT``, ``[V6]:PORT`` or (with a default host) ``PORT``."""
    host: str | None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise UsageError(f"invalid {what} {text!r}", "expected [IPV6]:PORT")
    elif ":" in text:
        host, _, port = text.rpartition(":")
        if ":" in host:
            raise UsageError(f"invalid {what} {text!r}", "write IPv6 addresses as [ADDR]:PORT")
    elif default_host is not None or allow_zero:
        host, port = default_host, text
    else:
        raise UsageError(f"invalid {what} {text!r}", "expected HOST:PORT")
    if host == "":
        raise UsageError(f"invalid {what} {text!r}", "empty host")
    return Endpoint(host, parse_port(port, allow_zero=allow_zero, what=f"{what} port"))


def _fault(flag: str, metavar: str, text: str) -> Any:
    return Annotated[
        list[str] | None, option(FAULTS, flag, metavar=metavar, help=f"{text} (repeatable).")
    ]


#: The fault flags, in --help order; each is ``parse_fault``'s kind with ``_`` for ``-``.
_FAULTS = params(
    latency=_fault("--latency", "[DIR:]DELAY[/JITTER]", "Delay each chunk."),
    bandwidth=_fault("--bandwidth", "[DIR:]BYTES/S", "Cap the rate."),
    slicer=_fault("--slicer", "[DIR:]SIZE[/VAR[/DELAY]]", "Cut data into small segments."),
    limit_data=_fault(
        "--limit-data", "[DIR:]BYTES", "Close the connection after BYTES in that direction."
    ),
    reset_peer=_fault(
        "--reset-peer",
        "[DIR:]SECS|BYTESB",
        "Reset (RST) after SECS, or after BYTES with a B suffix (64KB).",
    ),
    stall=_fault(
        "--stall",
        "[DIR:]SECS",
        "toxiproxy's timeout: forward nothing, close after SECS (0: never).",
    ),
    slow_close=_fault("--slow-close", "[DIR:]SECS", "Delay the forwarded FIN."),
)


@with_params(
    access_params(
        LIMITS,
        allow="Only these clients get in (repeatable).",
        deny="These clients are reset at once (repeatable; wins over --allow).",
    ),
    after="idle_timeout",
)
@with_params(_FAULTS, after="json_file")
def relay(
    listen: Annotated[
        str,
        typer.Argument(
            metavar="[LISTEN_HOST:]LISTEN_PORT",
            help="Where to listen (no host: all addresses, dual-stack; port 0 picks one).",
        ),
    ],
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="TARGET_HOST:PORT...",
            help="Targets, used round-robin; one that refuses is skipped.",
        ),
    ],
    buffer: Annotated[
        str,
        option(
            IO,
            "--buffer",
            metavar="BYTES",
            help="Most bytes held in user space per direction; the reader stops while the writer lags.",
        ),
    ] = "256K",
    connect_timeout: Annotated[
        str,
        option(
            TIME,
            "--connect-timeout",
            metavar="SECS",
            help="Give up on a target after SECS and try the next.",
        ),
    ] = "10",
    ipv4: Annotated[bool, option(CONN, "-4", help="Listen on IPv4 only.")] = False,
    ipv6: Annotated[bool, option(CONN, "-6", help="Listen on IPv6 only.")] = False,
    no_zerocopy: NoZeroCopy = False,
    no_splice: NoSplice = False,
    max_conns: Annotated[
        int | None,
        option(
            LIMITS,
            "--max-conns",
            metavar="N",
            min=1,
            help="At most N clients at once; the next waits in the listen backlog.",
        ),
    ] = None,
    reject_over_limit: Annotated[
        bool,
        option(
            LIMITS,
            "--reject-over-limit",
            help="With --max-conns: reset clients over the limit instead of making them wait.",
        ),
    ] = False,
    idle_timeout: Annotated[
        str | None,
        option(
            TIME,
            "--idle-timeout",
            metavar="SECS",
            help="Close a connection when no data moves either way for SECS.",
        ),
    ] = None,
    drain_timeout: Annotated[
        str,
        option(
            TIME,
            "--drain-timeout",
            metavar="SECS",
            help="On SIGTERM: stop accepting, let transfers finish for SECS, then cancel (exit 143).",
        ),
    ] = "5",
    verbose: Annotated[
        bool,
        verbose_option(
            "One line per connection: peer, target, bytes each way, duration, how it ended."
        ),
    ] = False,
    stats: Annotated[
        str | None,
        option(
            OUT,
            "--stats",
            metavar="SECS",
            help="Print a statistics line every SECS (SIGUSR1 prints one at any time).",
        ),
    ] = None,
    json_log: Annotated[bool, option(OUT, "--json-log", help="Log lines as JSON objects.")] = False,
    json: Annotated[
        bool, json_option("At exit, write a JSON summary (totals, how it ended) on stdout.")
    ] = False,
    json_file: JsonFile = None,
    toxicity: Annotated[
        float,
        option(
            FAULTS,
            "--toxicity",
            metavar="P",
            min=0.0,
            max=1.0,
            help="Probability that a connection gets the faults above (each decided per connection).",
        ),
    ] = 1.0,
    workers: Annotated[
        int,
        option(
            CONN,
            "--workers",
            metavar="N",
            min=1,
            help="Linux: N processes share the port (SO_REUSEPORT), one Trio run each; limits and stats are per worker.",
        ),
    ] = 1,
    seed: Annotated[
        int | None,
        option(
            FAULTS,
            "--seed",
            metavar="N",
            help="Seed the fault RNG (toxicity, jitter, slicer variation).",
        ),
    ] = None,
    **rules: Any,
) -> int:
    """Relay TCP: accept clients on LISTEN_PORT, connect each to a TARGET, copy both ways.

    Bounded (--buffer per direction), half-close passes through, resets propagate.
    Prints `ncat-trio: listening on ADDR:PORT` on stderr once ready.
    """
    # a flag its mode cannot honour: exit 2
    compat.check_command("relay", relay, {**locals(), **rules})
    from .. import runner  # lazy: keeps start-up light
    from ..modes import relay as relay_mode  # lazy: keeps start-up light
    from ..transport.faults import parse_fault  # lazy: keeps start-up light

    family = address_family(ipv4, ipv6)
    where = parse_host_port(listen, what="listen address", allow_zero=True)
    size = parse_size(buffer, what="--buffer")
    if size < 1:
        raise UsageError(f"invalid --buffer {buffer!r}", "must be at least 1 byte")
    faults: list[AnyFault] = []
    for param in _FAULTS:
        kind = param.name.replace("_", "-")  # limit_data: --limit-data
        faults.extend(
            parse_fault(kind, text, toxicity=toxicity) for text in rules[param.name] or ()
        )
    options = relay_mode.RelayOptions(
        listen=Endpoint(where.host, where.port, family),
        targets=tuple(parse_host_port(t, what="target") for t in targets),
        buffer=size,
        connect_timeout=parse_duration(connect_timeout, what="--connect-timeout"),
        max_conns=max_conns,
        reject_over_limit=reject_over_limit,
        idle_timeout=None
        if idle_timeout is None
        else parse_duration(idle_timeout, what="--idle-timeout"),
        access=access_policy(rules),
        drain_timeout=parse_duration(drain_timeout, what="--drain-timeout"),
        verbose=verbose,
        stats_interval=None
        if stats is None
        else _positive(parse_duration(stats, what="--stats"), "--stats"),
        json_log=json_log,
        json=json,
        json_file=checked_json_file(json_file),
        faults=tuple(faults),
        seed=seed,
        splice=not (no_zerocopy or no_splice),
    )
    if workers > 1:
        from ..modes import relay_workers

        return relay_workers.run_workers(options, workers)
    return runner.run(lambda: relay_mode.relay_main(options))


def _positive(value: float, what: str) -> float:
    if value <= 0:
        raise UsageError(f"invalid {what} {value:g}", "must be more than 0")
    return value


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True, cls=PanelledCommand)(relay)

"""``connect``, ``listen`` and ``demo``: typer signatures → frozen options → run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UsageError
from ..parse import parse_duration, parse_port, parse_size
from ..transport.endpoint import Endpoint
from . import compat
from . import netcat_flags as flags
from . import netcat_transport as transport
from .common import (
    CONN,
    IO,
    OUT,
    TIME,
    IPv4,
    IPv6,
    JsonFile,
    NoZeroCopy,
    Numeric,
    access_policy,
    address_family,
    checked_json_file,
    flag,
    json_option,
    params,
    value,
    verbose_option,
    with_params,
)
from .panels import PanelledCommand

if TYPE_CHECKING:
    from ..modes import netcat


Verbose = Annotated[bool, verbose_option("Log connections on stderr.")]
NoDelay = flag(CONN, "--nodelay", help="Set TCP_NODELAY (Nagle off).")
Linger = value(
    TIME,
    "-q",
    "--linger",
    metavar="SECS",
    help="After stdin EOF, wait at most SECS for the peer's EOF, then close (exit 0).",
)
Idle = value(
    TIME,
    "-i",
    "--idle-timeout",
    metavar="SECS",
    help="Fail (exit 4) when no data moves either way for SECS.",
)
Shutdown = flag(
    IO,
    "-N",
    "--shutdown",
    help="Send FIN at stdin EOF at once (nc.openbsd -N; --shutdown=now|idle|never).",
)
NoShutdown = flag(
    IO,
    "--no-shutdown",
    help="Never send FIN; keep reading until the peer closes (--shutdown=never).",
)
Wait = value(
    TIME,
    "-w",
    "--wait",
    metavar="SECS",
    help="nc.openbsd's -w: give up connecting after SECS (exit 4), and end the session "
    "(exit 0) once nothing has moved either way for SECS.",
)
ConnectOnly = value(
    TIME,
    "--connect-timeout",
    metavar="SECS",
    help="Give up connecting after SECS (exit 4); no effect once connected.",
)
#: ``--shutdown=WHEN`` (typer cannot give the -N flag a value: cli/argv.py rewrites it).
ShutdownWhen = Annotated[str | None, typer.Option("--shutdown-when", hidden=True)]
#: ``--shutdown=idle`` (the default): the FIN waits until the peer has sent nothing for this
#: long.  Measured (README, "Differences"): nginx and tinyproxy/ncat's proxy delivered all of
#: a 52 MB reply with 0.1 s and 0.5 s, a FIN at once lost 80-100% of it; a server that reads
#: to EOF (socat EXEC:sha256sum) answered 0.45 s later than with -N.  (An upload of
#: modes/netcat.BULK_UPLOAD or more to a silent peer skips the wait: a file copy.)
FIN_QUIET = 0.5
NoStdin = flag(IO, "-d", "--no-stdin", help="Do not read stdin (same as --recv-only).")
SendOnly = flag(IO, "--send-only", help="Only send stdin; discard what arrives.")
Rate = value(
    IO,
    "--rate",
    metavar="BYTES/S",
    help="Limit each direction to BYTES per second (K/M/G = KiB/MiB/GiB), smoothly.",
)
Progress = flag(
    OUT,
    "-P",
    "--progress",
    help="Show progress on stderr (--progress=auto: only when stderr is a terminal).",
)
ProgressAuto = Annotated[bool, typer.Option("--progress-auto", hidden=True)]
Size = value(
    OUT,
    "--size",
    metavar="BYTES",
    help="Bytes expected on stdin, for the progress percentage and ETA.",
)
Stats = flag(OUT, "--stats", help="Print a summary line on stderr at the end.")
Json = Annotated[bool, json_option("Write a JSON summary on stderr at the end (docs/json.md).")]
RecvOnly = flag(IO, "--recv-only", help="Only receive to stdout; never send.")


def _fin_policy(now: bool, never: bool, when: str | None) -> dict[str, Any]:
    """``-N`` / ``--no-shutdown`` / ``--shutdown=now|idle[:SECS]|never`` (default idle)."""
    chosen = [w for w in ("now" if now else None, "never" if never else None, when) if w]
    if len(set(chosen)) > 1:
        raise UsageError("-N/--shutdown/--no-shutdown", f"contradict each other ({chosen})")
    word = chosen[0] if chosen else "idle"
    name, _, seconds = word.partition(":")
    if name == "now" and not seconds:
        return {"shutdown": True, "fin_after_quiet": None}
    if name == "never" and not seconds:
        return {"shutdown": False, "fin_after_quiet": None}
    if name == "idle":
        quiet = FIN_QUIET if not seconds else parse_duration(seconds, what="--shutdown=idle")
        return {"shutdown": True, "fin_after_quiet": quiet}
    raise UsageError(f"invalid --shutdown={word!r}", "expected now, idle, idle:SECS or never")


def _connect_timeout(wait: str | None, connect_only: str | None) -> float | None:
    """``--connect-timeout`` (connect only) or ``-w`` (connect and quiet, as nc.openbsd)."""
    if wait is not None and connect_only is not None:
        raise UsageError("-w and --connect-timeout", "choose one (-w also ends a quiet session)")
    if connect_only is not None:
        return parse_duration(connect_only, what="--connect-timeout")
    return None if wait is None else parse_duration(wait, what="-w")


def _rate(text: str | None) -> float | None:
    if text is None:
        return None
    rate = parse_size(text.removesuffix("/s"), what="rate (--rate)")
    if rate <= 0:
        raise UsageError(f"invalid rate (--rate) {text!r}", "must be positive")
    return float(rate)


Host = Annotated[
    str | None, typer.Argument(metavar="HOST", help="Host name or address to connect to.")
]
Port = Annotated[str | None, typer.Argument(metavar="PORT", help="Port (1-65535).")]
Source = value(CONN, "-s", "--source", metavar="ADDR", help="Local address to connect from.")
SourcePort = value(CONN, "-p", "--source-port", metavar="PORT", help="Local port to connect from.")
Address = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[HOST] PORT",
        help="Address to bind (default: all, dual-stack) and port (0 picks one).",
    ),
]
PortOption = value(
    CONN, "-p", "--port", metavar="PORT", help="Port to listen on (nc's -l -p PORT)."
)
BindSource = value(
    CONN,
    "-s",
    "--source",
    metavar="ADDR",
    help="Address to listen on (nc.openbsd's -l -s ADDR -p PORT).",
)
KeepOpen = flag(CONN, "-k", "--keep-open", help="After a client ends, serve the next one.")

# The groups, in --help order.  Only connect: source/-p/--connect-timeout, the TLS client
# and proxy flags; only listen: -p PORT, -s ADDR, -k, --max-conns/--sequential, --allow...
_SESSION = params(
    linger=Linger, idle_timeout=Idle, shutdown=Shutdown, no_shutdown=NoShutdown,
    shutdown_when=ShutdownWhen, no_stdin=NoStdin, send_only=SendOnly, recv_only=RecvOnly,
    no_zerocopy=NoZeroCopy, rate=Rate, progress=Progress, progress_auto=ProgressAuto,
    size=Size, stats=Stats, json=Json, json_file=JsonFile,
    udp=transport.Udp, unix=transport.Unix, exec_=transport.Exec, sh_exec=transport.ShExec,
)  # fmt: skip
_SOCKET = params(
    keepalive=transport.Keepalive, sndbuf=transport.SndBuf, rcvbuf=transport.RcvBuf,
    tos=transport.Tos, ttl=transport.Ttl, reuseport=transport.ReusePort,
    broadcast=transport.Broadcast, ipv4=IPv4, ipv6=IPv6, numeric=Numeric, nodelay=NoDelay,
    verbose=Verbose,
)  # fmt: skip
_TEXT = params(crlf=flags.Crlf, output=flags.Output, append_output=flags.AppendOutput)
_CLIENT = params(
    ssl=flags.Ssl, ssl_ca=flags.SslCa, ssl_system_ca=flags.SslSystemCa,
    ssl_no_verify=flags.SslNoVerify, ssl_cert=flags.SslCert, ssl_key=flags.SslKey,
    ssl_servername=flags.SslServername, ssl_alpn=flags.SslAlpn,
    ssl_allow_truncation=flags.SslAllowTruncation, proxy=flags.Proxy,
    proxy_type=flags.ProxyTypeFlag, proxy_auth=flags.ProxyAuth, nc_proxy=flags.NcProxy,
    nc_proxy_type=flags.NcProxyType,
)  # fmt: skip
_SERVER = params(
    ssl=flags.Ssl, ssl_cert=flags.SslCert, ssl_key=flags.SslKey, ssl_ca=flags.SslCa,
    ssl_alpn=flags.SslAlpn, ssl_allow_truncation=flags.SslAllowTruncation,
) + flags.ACCESS_PARAMS  # fmt: skip


def _options(
    v: dict[str, Any], endpoint: Endpoint, *, exclusive: bool, **only: Any
) -> netcat.NetcatOptions:
    """The options connect and listen build alike from their flags *v*, plus *only* theirs."""
    from ..modes import netcat  # lazy: keeps start-up light

    if v["send_only"] and (v["recv_only"] or v["no_stdin"]):
        raise UsageError("--send-only", "cannot be combined with --recv-only/-d")
    linger, idle, wait, size = v["linger"], v["idle_timeout"], v["wait"], v["size"]
    # -e/-c: the child has the connection: stdio is not ours to open
    child = v["exec_"] is not None or v["sh_exec"] is not None
    session = netcat.SessionOptions(
        send=not (v["no_stdin"] or v["recv_only"] or child),
        receive=not (v["send_only"] or child),
        **_fin_policy(v["shutdown"], v["no_shutdown"], v["shutdown_when"]),
        linger=None if linger is None else parse_duration(linger, what="linger (-q)"),
        idle_timeout=None if idle is None else parse_duration(idle, what="idle timeout (-i)"),
        quiet_exit=None if wait is None else parse_duration(wait, what="-w"),
        zerocopy=not v["no_zerocopy"],
        rate=_rate(v["rate"]),
        exclusive=exclusive,
    )
    report = netcat.ReportOptions(
        progress="auto" if v["progress_auto"] else "always" if v["progress"] else "never",
        size=None if size is None else parse_size(size, what="--size"),
        stats=v["stats"],
        json=v["json"],
        json_file=checked_json_file(v["json_file"]),
    )
    return netcat.NetcatOptions(
        endpoint=endpoint,
        session=session,
        nodelay=v["nodelay"],
        verbose=v["verbose"],
        report=report,
        crlf=v["crlf"],
        output=flags.dump_options(v["output"], v["append_output"]),
        **transport.transport_fields(v),
        **only,
    )


@with_params(
    params(host=Host, port=Port, source=Source, source_port=SourcePort, wait=Wait),
    params(connect_timeout=ConnectOnly),
    _SESSION,
    _SOCKET,
    _CLIENT,
    _TEXT,
)
def connect(**v: Any) -> int:
    """Connect to HOST PORT: stdin goes to the socket, the socket goes to stdout."""
    compat.check(connect, v)  # first: a flag this path cannot honour is exit 2
    from .. import runner  # lazy: keeps start-up light
    from ..modes import netcat  # lazy: keeps start-up light

    family = address_family(v["ipv4"], v["ipv6"])
    numeric = v["numeric"]
    src = None
    if v["source"] is not None or v["source_port"] is not None:
        sport = v["source_port"]
        sport = 0 if sport is None else parse_port(sport, what="source port (-p)")
        src = Endpoint(v["source"], sport, family, numeric)
    endpoint = transport.connect_endpoint(v["host"], v["port"], family, numeric, v["unix"])
    tls = flags.tls_options(v, server=False)
    proxy = flags.proxy_settings(
        *flags.nc_proxy_spelling(v["proxy"], v["proxy_type"], v["nc_proxy"], v["nc_proxy_type"]),
        v["proxy_auth"],
        family=family,
        numeric=numeric,
    )
    flags.check_target_name(endpoint.host, tls=tls, proxy=proxy)
    options = _options(
        v,
        endpoint,
        exclusive=True,  # one session in this process
        source=src,
        connect_timeout=_connect_timeout(v["wait"], v["connect_timeout"]),
        tls=tls,
        proxy=proxy,
    )
    return runner.run(lambda: netcat.connect_main(options))


@with_params(
    params(address=Address, port_option=PortOption, bind_source=BindSource),
    params(keep_open=KeepOpen, wait=Wait),
    _SESSION,
    params(max_conns=transport.MaxConns, sequential=transport.Sequential),
    _SOCKET,
    _SERVER,
    _TEXT,
)
def listen(**v: Any) -> int:
    """Listen on [HOST] PORT and serve a client: socket to stdout, stdin to the socket.

    Prints `ncat-trio: listening on ADDR:PORT` on stderr (the real port) once ready.
    """
    compat.check(listen, v)  # first: before any rules file is read
    from .. import runner  # lazy: keeps start-up light
    from ..modes import netcat  # lazy: keeps start-up light

    words = list(v["address"] or [])
    port_option = v["port_option"]
    if v["bind_source"] is not None:  # nc.openbsd: -l -s ADDR -p PORT
        if len(words) + (port_option is not None) != 1:
            raise UsageError("listen -s ADDR", "takes the port alone (-p PORT or PORT)")
        words.insert(0, v["bind_source"])
    if port_option is not None:
        words.append(port_option)
    words = transport.listen_words(words, v["unix"])
    if not words or len(words) > 2:
        raise UsageError("listen", "expected [HOST] PORT (or -p PORT)")
    host = words[0] if len(words) == 2 else None
    family = address_family(v["ipv4"], v["ipv6"])
    endpoint = Endpoint(host, parse_port(words[-1], allow_zero=True), family, v["numeric"])
    options = _options(
        v,
        endpoint,
        exclusive=not v["keep_open"],  # -k: sessions share the thread
        keep_open=v["keep_open"],
        tls=flags.tls_options(v, server=True),
        access=access_policy(v),
    )
    return runner.run(lambda: netcat.listen_main(options))


def demo(
    size: Annotated[
        str, typer.Option("--size", metavar="BYTES", help="Payload size each way (e.g. 16M).")
    ] = "16M",
) -> int:
    """Run a real loopback demo: a listener and a client, payloads both ways, verified."""
    from .. import runner  # lazy: keeps start-up light
    from ..modes import demo as demo_mode

    nbytes = parse_size(size, what="--size")
    return runner.run(lambda: demo_mode.demo_main(nbytes))


def register(app: typer.Typer) -> None:
    app.command(cls=PanelledCommand)(connect)
    app.command(cls=PanelledCommand)(listen)
    app.command(cls=PanelledCommand)(demo)

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
    Numeric,
    address_family,
    checked_json_file,
)
from .panels import PanelledCommand

if TYPE_CHECKING:
    from ..modes import netcat


Verbose = Annotated[
    bool, typer.Option("-v", "--verbose", help="Log connections on stderr.", rich_help_panel=OUT)
]
NoDelay = Annotated[
    bool, typer.Option("--nodelay", help="Set TCP_NODELAY (Nagle off).", rich_help_panel=CONN)
]
Linger = Annotated[
    str | None,
    typer.Option(
        "-q",
        "--linger",
        metavar="SECS",
        help="After stdin EOF, wait at most SECS for the peer's EOF, then close (exit 0).",
        rich_help_panel=TIME,
    ),
]
Idle = Annotated[
    str | None,
    typer.Option(
        "-i",
        "--idle-timeout",
        metavar="SECS",
        help="Fail (exit 4) when no data moves either way for SECS.",
        rich_help_panel=TIME,
    ),
]
Shutdown = Annotated[
    bool,
    typer.Option(
        "-N",
        "--shutdown",
        help="Send FIN at stdin EOF at once (nc.openbsd -N; --shutdown=now|idle|never).",
        rich_help_panel=IO,
    ),
]
NoShutdown = Annotated[
    bool,
    typer.Option(
        "--no-shutdown",
        help="Never send FIN; keep reading until the peer closes (--shutdown=never).",
        rich_help_panel=IO,
    ),
]
Wait = Annotated[
    str | None,
    typer.Option(
        "-w",
        "--wait",
        metavar="SECS",
        help="nc.openbsd's -w: give up connecting after SECS (exit 4), and end the session "
        "(exit 0) once nothing has moved either way for SECS.",
        rich_help_panel=TIME,
    ),
]
ConnectOnly = Annotated[
    str | None,
    typer.Option(
        "--connect-timeout",
        metavar="SECS",
        help="Give up connecting after SECS (exit 4); no effect once connected.",
        rich_help_panel=TIME,
    ),
]
#: ``--shutdown=WHEN`` (typer cannot give the -N flag a value: cli/__init__.py rewrites it).
ShutdownWhen = Annotated[str | None, typer.Option("--shutdown-when", hidden=True)]
#: ``--shutdown=idle`` (the default): the FIN waits until the peer has sent nothing for this
#: long.  Measured (README, "Differences"): nginx and tinyproxy/ncat's proxy delivered all of
#: a 52 MB reply with 0.1 s and 0.5 s, a FIN at once lost 80-100% of it; a server that reads
#: to EOF (socat EXEC:sha256sum) answered 0.45 s later than with -N.
FIN_QUIET = 0.5
NoStdin = Annotated[
    bool,
    typer.Option(
        "-d", "--no-stdin", help="Do not read stdin (same as --recv-only).", rich_help_panel=IO
    ),
]
SendOnly = Annotated[
    bool,
    typer.Option("--send-only", help="Only send stdin; discard what arrives.", rich_help_panel=IO),
]
NoZeroCopy = Annotated[
    bool,
    typer.Option(
        "--no-zerocopy",
        help="Copy through user space instead of splice/sendfile (debugging, comparisons).",
        rich_help_panel=IO,
    ),
]
Rate = Annotated[
    str | None,
    typer.Option(
        "--rate",
        metavar="BYTES/S",
        help="Limit each direction to BYTES per second (K/M/G = KiB/MiB/GiB), smoothly.",
        rich_help_panel=IO,
    ),
]
Progress = Annotated[
    bool,
    typer.Option(
        "-P",
        "--progress",
        help="Show progress on stderr (--progress=auto: only when stderr is a terminal).",
        rich_help_panel=OUT,
    ),
]
ProgressAuto = Annotated[bool, typer.Option("--progress-auto", hidden=True)]
Size = Annotated[
    str | None,
    typer.Option(
        "--size",
        metavar="BYTES",
        help="Bytes expected on stdin, for the progress percentage and ETA.",
        rich_help_panel=OUT,
    ),
]
Stats = Annotated[
    bool,
    typer.Option("--stats", help="Print a summary line on stderr at the end.", rich_help_panel=OUT),
]
Json = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Write a JSON summary on stderr at the end (docs/json.md).",
        rich_help_panel=OUT,
    ),
]
RecvOnly = Annotated[
    bool,
    typer.Option("--recv-only", help="Only receive to stdout; never send.", rich_help_panel=IO),
]


def _session(
    linger: str | None,
    idle: str | None,
    wait: str | None,
    fin: tuple[bool, bool, str | None],
    no_stdin: bool,
    send_only: bool,
    recv_only: bool,
    no_zerocopy: bool,
    rate: str | None = None,
    *,
    exclusive: bool = False,
) -> netcat.SessionOptions:
    from ..modes import netcat  # lazy: keeps start-up light

    if send_only and (recv_only or no_stdin):
        raise UsageError("--send-only", "cannot be combined with --recv-only/-d")
    return netcat.SessionOptions(
        send=not (no_stdin or recv_only),
        receive=not send_only,
        **_fin_policy(*fin),
        linger=None if linger is None else parse_duration(linger, what="linger (-q)"),
        idle_timeout=None if idle is None else parse_duration(idle, what="idle timeout (-i)"),
        quiet_exit=None if wait is None else parse_duration(wait, what="-w"),
        zerocopy=not no_zerocopy,
        rate=_rate(rate),
        exclusive=exclusive,
    )


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
    value = parse_size(text.removesuffix("/s"), what="rate (--rate)")
    if value <= 0:
        raise UsageError(f"invalid rate (--rate) {text!r}", "must be positive")
    return float(value)


def _reporting(
    progress: bool,
    progress_auto: bool,
    size: str | None,
    stats: bool,
    json: bool,
    json_file: str | None,
) -> netcat.ReportOptions:
    from ..modes import netcat  # lazy: keeps start-up light

    return netcat.ReportOptions(
        progress="auto" if progress_auto else "always" if progress else "never",
        size=None if size is None else parse_size(size, what="--size"),
        stats=stats,
        json=json,
        json_file=checked_json_file(json_file),
    )


def connect(
    host: Annotated[
        str | None, typer.Argument(metavar="HOST", help="Host name or address to connect to.")
    ] = None,
    port: Annotated[str | None, typer.Argument(metavar="PORT", help="Port (1-65535).")] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "-s",
            "--source",
            metavar="ADDR",
            help="Local address to connect from.",
            rich_help_panel=CONN,
        ),
    ] = None,
    source_port: Annotated[
        str | None,
        typer.Option(
            "-p",
            "--source-port",
            metavar="PORT",
            help="Local port to connect from.",
            rich_help_panel=CONN,
        ),
    ] = None,
    wait: Wait = None,
    connect_timeout: ConnectOnly = None,
    linger: Linger = None,
    idle_timeout: Idle = None,
    shutdown: Shutdown = False,
    no_shutdown: NoShutdown = False,
    shutdown_when: ShutdownWhen = None,
    no_stdin: NoStdin = False,
    send_only: SendOnly = False,
    recv_only: RecvOnly = False,
    no_zerocopy: NoZeroCopy = False,
    rate: Rate = None,
    progress: Progress = False,
    progress_auto: ProgressAuto = False,
    size: Size = None,
    stats: Stats = False,
    json: Json = False,
    json_file: JsonFile = None,
    udp: transport.Udp = False,
    unix: transport.Unix = None,
    exec_: transport.Exec = None,
    sh_exec: transport.ShExec = None,
    keepalive: transport.Keepalive = None,
    sndbuf: transport.SndBuf = None,
    rcvbuf: transport.RcvBuf = None,
    tos: transport.Tos = None,
    ttl: transport.Ttl = None,
    reuseport: transport.ReusePort = False,
    broadcast: transport.Broadcast = False,
    ipv4: IPv4 = False,
    ipv6: IPv6 = False,
    numeric: Numeric = False,
    nodelay: NoDelay = False,
    verbose: Verbose = False,
    ssl: flags.Ssl = False,
    ssl_ca: flags.SslCa = None,
    ssl_system_ca: flags.SslSystemCa = False,
    ssl_no_verify: flags.SslNoVerify = False,
    ssl_cert: flags.SslCert = None,
    ssl_key: flags.SslKey = None,
    ssl_servername: flags.SslServername = None,
    ssl_alpn: flags.SslAlpn = None,
    ssl_allow_truncation: flags.SslAllowTruncation = False,
    proxy: flags.Proxy = None,
    proxy_type: flags.ProxyTypeFlag = None,
    proxy_auth: flags.ProxyAuth = None,
    nc_proxy: flags.NcProxy = None,
    nc_proxy_type: flags.NcProxyType = None,
    crlf: flags.Crlf = False,
    output: flags.Output = None,
    append_output: flags.AppendOutput = False,
) -> int:
    """Connect to HOST PORT: stdin goes to the socket, the socket goes to stdout."""
    compat.check(connect, locals())  # first: a flag this path cannot honour is exit 2
    from .. import runner  # lazy: keeps start-up light
    from ..modes import netcat  # lazy: keeps start-up light

    family = address_family(ipv4, ipv6)
    src = None
    if source is not None or source_port is not None:
        sport = 0 if source_port is None else parse_port(source_port, what="source port (-p)")
        src = Endpoint(source, sport, family, numeric)
    options = netcat.NetcatOptions(
        endpoint=transport.connect_endpoint(host, port, family, numeric, unix),
        session=_session(
            linger,
            idle_timeout,
            wait,
            (shutdown, no_shutdown, shutdown_when),
            no_stdin,
            send_only,
            recv_only,
            no_zerocopy,
            rate,
            exclusive=True,  # one session in this process
        ),
        source=src,
        connect_timeout=_connect_timeout(wait, connect_timeout),
        nodelay=nodelay,
        verbose=verbose,
        report=_reporting(progress, progress_auto, size, stats, json, json_file),
        tls=flags.tls_options(
            ssl,
            server=False,
            ca=ssl_ca,
            system_ca=ssl_system_ca,
            no_verify=ssl_no_verify,
            cert=ssl_cert,
            key=ssl_key,
            servername=ssl_servername,
            alpn=ssl_alpn,
            allow_truncation=ssl_allow_truncation,
        ),
        proxy=flags.proxy_settings(
            *flags.nc_proxy_spelling(proxy, proxy_type, nc_proxy, nc_proxy_type),
            proxy_auth,
            family=family,
            numeric=numeric,
        ),
        crlf=crlf,
        output=flags.dump_options(output, append_output),
    )
    flags.check_target_name(options.endpoint.host, tls=options.tls, proxy=options.proxy)
    options = transport.with_transport(
        options, udp=udp, unix=unix, exec_=exec_, sh_exec=sh_exec, keepalive=keepalive,
        sndbuf=sndbuf, rcvbuf=rcvbuf, tos=tos, ttl=ttl, reuseport=reuseport, broadcast=broadcast,
    )  # fmt: skip
    return runner.run(lambda: netcat.connect_main(options))


def listen(
    address: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[HOST] PORT",
            help="Address to bind (default: all, dual-stack) and port (0 picks one).",
        ),
    ] = None,
    port_option: Annotated[
        str | None,
        typer.Option(
            "-p",
            "--port",
            metavar="PORT",
            help="Port to listen on (nc's -l -p PORT).",
            rich_help_panel=CONN,
        ),
    ] = None,
    bind_source: Annotated[
        str | None,
        typer.Option(
            "-s",
            "--source",
            metavar="ADDR",
            help="Address to listen on (nc.openbsd's -l -s ADDR -p PORT).",
            rich_help_panel=CONN,
        ),
    ] = None,
    keep_open: Annotated[
        bool,
        typer.Option(
            "-k",
            "--keep-open",
            help="After a client ends, serve the next one.",
            rich_help_panel=CONN,
        ),
    ] = False,
    wait: Wait = None,
    linger: Linger = None,
    idle_timeout: Idle = None,
    shutdown: Shutdown = False,
    no_shutdown: NoShutdown = False,
    shutdown_when: ShutdownWhen = None,
    no_stdin: NoStdin = False,
    send_only: SendOnly = False,
    recv_only: RecvOnly = False,
    no_zerocopy: NoZeroCopy = False,
    rate: Rate = None,
    progress: Progress = False,
    progress_auto: ProgressAuto = False,
    size: Size = None,
    stats: Stats = False,
    json: Json = False,
    json_file: JsonFile = None,
    udp: transport.Udp = False,
    unix: transport.Unix = None,
    exec_: transport.Exec = None,
    sh_exec: transport.ShExec = None,
    max_conns: transport.MaxConns = None,
    sequential: transport.Sequential = False,
    keepalive: transport.Keepalive = None,
    sndbuf: transport.SndBuf = None,
    rcvbuf: transport.RcvBuf = None,
    tos: transport.Tos = None,
    ttl: transport.Ttl = None,
    reuseport: transport.ReusePort = False,
    broadcast: transport.Broadcast = False,
    ipv4: IPv4 = False,
    ipv6: IPv6 = False,
    numeric: Numeric = False,
    nodelay: NoDelay = False,
    verbose: Verbose = False,
    ssl: flags.Ssl = False,
    ssl_cert: flags.SslCert = None,
    ssl_key: flags.SslKey = None,
    ssl_ca: flags.SslCa = None,
    ssl_alpn: flags.SslAlpn = None,
    ssl_allow_truncation: flags.SslAllowTruncation = False,
    allow: flags.Allow = None,
    deny: flags.Deny = None,
    allowfile: flags.AllowFile = None,
    denyfile: flags.DenyFile = None,
    crlf: flags.Crlf = False,
    output: flags.Output = None,
    append_output: flags.AppendOutput = False,
) -> int:
    """Listen on [HOST] PORT and serve a client: socket to stdout, stdin to the socket.

    Prints `ncat-trio: listening on ADDR:PORT` on stderr (the real port) once ready.
    """
    compat.check(listen, locals())  # first: before any rules file is read
    from .. import runner  # lazy: keeps start-up light
    from ..modes import netcat  # lazy: keeps start-up light

    words = list(address or [])
    if bind_source is not None:  # nc.openbsd: -l -s ADDR -p PORT
        if len(words) + (port_option is not None) != 1:
            raise UsageError("listen -s ADDR", "takes the port alone (-p PORT or PORT)")
        words.insert(0, bind_source)
    if port_option is not None:
        words.append(port_option)
    words = transport.listen_words(words, unix)
    if not words or len(words) > 2:
        raise UsageError("listen", "expected [HOST] PORT (or -p PORT)")
    host = words[0] if len(words) == 2 else None
    options = netcat.NetcatOptions(
        endpoint=Endpoint(
            host, parse_port(words[-1], allow_zero=True), address_family(ipv4, ipv6), numeric
        ),
        session=_session(
            linger,
            idle_timeout,
            wait,
            (shutdown, no_shutdown, shutdown_when),
            no_stdin,
            send_only,
            recv_only,
            no_zerocopy,
            rate,
            exclusive=not keep_open,  # -k: sessions share the thread
        ),
        keep_open=keep_open,
        nodelay=nodelay,
        verbose=verbose,
        report=_reporting(progress, progress_auto, size, stats, json, json_file),
        tls=flags.tls_options(
            ssl,
            server=True,
            ca=ssl_ca,
            cert=ssl_cert,
            key=ssl_key,
            alpn=ssl_alpn,
            allow_truncation=ssl_allow_truncation,
        ),
        access=flags.access_policy(allow, deny, allowfile, denyfile),
        crlf=crlf,
        output=flags.dump_options(output, append_output),
    )
    options = transport.with_transport(
        options, udp=udp, unix=unix, exec_=exec_, sh_exec=sh_exec, max_conns=max_conns,
        sequential=sequential, keepalive=keepalive, sndbuf=sndbuf, rcvbuf=rcvbuf, tos=tos,
        ttl=ttl, reuseport=reuseport, broadcast=broadcast,
    )  # fmt: skip
    return runner.run(lambda: netcat.listen_main(options))


def demo(
    size: Annotated[
        str, typer.Option("--size", metavar="BYTES", help="Payload size each way (e.g. 16M).")
    ] = "16M",
) -> int:
    """Run a real loopback demo: a listener and a client, payloads both ways, verified."""
    from .. import runner  # lazy: keeps start-up light
    from ..modes import demo as demo_mode
    from ..parse import parse_size

    nbytes = parse_size(size, what="--size")
    return runner.run(lambda: demo_mode.demo_main(nbytes))


def register(app: typer.Typer) -> None:
    app.command(cls=PanelledCommand)(connect)
    app.command(cls=PanelledCommand)(listen)
    app.command(cls=PanelledCommand)(demo)

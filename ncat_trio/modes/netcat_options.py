"""The options of connect/listen, as typed pieces: how a session behaves
(:class:`SessionOptions`), what it reports (:class:`ReportOptions`), where its stream
goes (:class:`StreamPlace`), and :class:`NetcatOptions`, the whole that the CLI and API
users build.  Each helper mode takes only the piece it needs (issue 17): the stream
factory a :class:`StreamPlace`, exec an :class:`~.exec.ExecCommand` and the session's
options, ``-k`` the session's options and its limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..transport.access import AccessPolicy
from ..transport.endpoint import Endpoint
from ..transport.sockopts import SocketOptions
from ..transport.stdio import CHUNK
from ..transport.tls import TlsOptions
from .netcat_layers import DumpOptions, ProxySettings

if TYPE_CHECKING:
    from .exec import ExecCommand


@dataclass(frozen=True)
class SessionOptions:
    """How one connection's two directions behave."""

    send: bool = True  # read stdin and send it (False: -d/--no-stdin/--recv-only)
    receive: bool = True  # write what arrives to stdout (False: --send-only, discarded)
    shutdown: bool = True  # send FIN after stdin EOF (False: --no-shutdown, never)
    # With ``shutdown``: hold the FIN until the peer has sent nothing for this many seconds
    # (``--shutdown=idle``, the CLI's default; None: at stdin EOF, ``-N``).  Servers that
    # take a FIN as an abort (nginx, tinyproxy, ncat's proxy: README, "Differences")
    # finish sending first; a server that reads to EOF gets the FIN this much later.
    fin_after_quiet: float | None = None
    linger: float | None = None  # -q: max seconds to wait for peer EOF after stdin EOF
    idle_timeout: float | None = None  # -i: fail when nothing moves for this long
    # -w (nc.openbsd): *end* the session, exit 0, when nothing has moved either way for
    # this long (nc.openbsd -w 2 against a silent server exits 0 after 2 s; measured)
    quiet_exit: float | None = None
    exit_on_peer_eof: bool = False  # stop uploading at peer EOF (set for a TTY stdin)
    chunk_size: int = CHUNK
    zerocopy: bool = True  # splice/sendfile where the fds allow (--no-zerocopy: never)
    rate: float | None = None  # --rate: bytes per second in each direction (portable pump)
    # The session has its thread to itself (the CLI without -k): the stdin → socket copy
    # may wait in poll(2) for up to 10 ms before Trio runs (transport/zerocopy.py).
    exclusive: bool = False


@dataclass(frozen=True)
class ReportOptions:
    """What to tell the user besides the data: progress, a summary, JSON."""

    progress: str = "never"  # -P: "always"; --progress=auto: only when stderr is a TTY
    size: int | None = None  # --size: bytes expected on stdin, for progress percentages
    stats: bool = False  # --stats: a summary line on stderr at the end
    json: bool = False  # --json: a JSON summary on stderr (stdout is the data)
    json_file: str | None = None


@dataclass(frozen=True)
class StreamPlace:
    """Where a connect/listen stream goes: a TCP endpoint (from ``source`` when given) or
    a Unix socket path, with the socket options applied before bind/connect."""

    endpoint: Endpoint
    unix_path: str | None = None  # -U PATH: a Unix socket; `endpoint` is then unused
    source: Endpoint | None = None  # connect: -s/-p
    nodelay: bool = False
    socket_options: SocketOptions = field(default_factory=SocketOptions)


@dataclass(frozen=True)
class NetcatOptions:
    """Everything connect/listen needs; built by the CLI or by API users."""

    endpoint: Endpoint
    session: SessionOptions = field(default_factory=SessionOptions)
    source: Endpoint | None = None  # connect: -s/-p
    connect_timeout: float | None = None  # connect: -w
    keep_open: bool = False  # listen: -k, serve the next client after one ends
    nodelay: bool = False
    verbose: bool = False
    report: ReportOptions = field(default_factory=lambda: ReportOptions())
    tls: TlsOptions | None = None  # --ssl (modes/netcat_layers.py: TLS, proxy, -C, -o)
    proxy: ProxySettings | None = None  # connect: --proxy
    access: AccessPolicy = field(default_factory=AccessPolicy)  # listen: --allow/--deny
    crlf: bool = False  # -C: LF -> CRLF on send
    output: DumpOptions | None = None  # -o: hex dump of both directions
    # issue 7 part A: transport and what runs on it (cli/netcat_transport.py)
    udp: bool = False  # -u: datagrams (modes/netcat_udp.py)
    unix_path: str | None = None  # -U PATH: a Unix socket; `endpoint` is then unused
    exec_command: ExecCommand | None = None  # -e/-c: a child per connection (modes/exec.py)
    max_conns: int = 100  # listen -k: clients at once (modes/keep_open.py)
    sequential: bool = False  # listen -k: one client after another (OpenBSD nc)
    socket_options: SocketOptions = field(default_factory=SocketOptions)

    @property
    def place(self) -> StreamPlace:
        """Where the stream goes (the piece :mod:`.stream_endpoints` takes)."""
        return StreamPlace(
            self.endpoint, self.unix_path, self.source, self.nodelay, self.socket_options
        )

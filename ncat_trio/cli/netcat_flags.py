"""The ``--ssl*``, ``--proxy*``, ``--allow/--deny``, ``-C`` and ``-o`` flags of connect/listen.

Typer ``Annotated`` aliases used in ``cli/netcat.py``'s signatures, and the builders
that turn their strings into the frozen options of ``modes/netcat.py``
(``TlsOptions``, ``ProxySettings``, ``AccessPolicy``, ``DumpOptions``).  Every bad
value is a :class:`UsageError` (exit 2) raised before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError, UsageError
from ..parse import parse_host_name, parse_port
from ..proto.proxy import ProxyType, parse_proxy_auth
from ..transport.endpoint import Endpoint
from .common import access_params, flag, value

if TYPE_CHECKING:
    from ..modes.netcat_layers import DumpOptions, ProxySettings
    from ..transport.tls import TlsOptions

TLS = "TLS"
PROXY = "Proxy"
ACCESS = "Access control"
TEXT = "Text and debugging"

Ssl = flag(
    TLS,
    "--ssl",
    help="TLS. Clients verify the server's certificate (system CAs or --ssl-ca) and "
    "name; listeners without --ssl-cert generate a temporary self-signed one.",
)
SslCa = value(
    TLS,
    "--ssl-ca",
    metavar="FILE",
    help="PEM CA certificates to trust INSTEAD of the system store, as in ncat and curl "
    "(listen: require client certificates from them).",
)
SslSystemCa = flag(
    TLS, "--ssl-system-ca", help="With --ssl-ca: trust the system store too (curl's --ca-native)."
)
SslNoVerify = flag(
    TLS, "--ssl-no-verify", help="Do NOT check the server's certificate (warns on stderr)."
)
SslCert = value(TLS, "--ssl-cert", metavar="FILE", help="PEM certificate (chain) to present.")
SslKey = value(TLS, "--ssl-key", metavar="FILE", help="PEM private key for --ssl-cert.")
SslServername = value(
    TLS, "--ssl-servername", metavar="NAME", help="SNI name to send and to verify (default: HOST)."
)
SslAlpn = value(
    TLS,
    "--ssl-alpn",
    metavar="LIST",
    help="ALPN protocols to offer, comma-separated (e.g. h2,http/1.1).",
)
SslAllowTruncation = flag(
    TLS,
    "--ssl-allow-truncation",
    help="A peer that closes without TLS close_notify (ncat does) ends its side "
    "cleanly: one stderr line, exit 0, instead of exit 7.",
)
Proxy = value(
    PROXY,
    "--proxy",
    metavar="HOST[:PORT]",
    help="Connect through this proxy (port default: 1080 SOCKS, 3128 HTTP).",
)
ProxyTypeFlag = value(
    PROXY,
    "--proxy-type",
    metavar="TYPE",
    help="http (CONNECT, the default, as in ncat), socks5 (the proxy resolves names) "
    "or socks4 (4a for names).",
)
ProxyAuth = value(
    PROXY,
    "--proxy-auth",
    metavar="USER:PASS",
    help="Proxy credentials (SOCKS5 user/password, HTTP Basic; SOCKS4: the user id).",
)
NcProxy = value(
    PROXY,
    "-x",
    metavar="ADDR[:PORT]",
    help="nc.openbsd's proxy flag: --proxy ADDR[:PORT], SOCKS5 unless -X says otherwise.",
)
NcProxyType = value(
    PROXY,
    "-X",
    metavar="4|5|connect",
    help="nc.openbsd's proxy protocol for -x: 4 (socks4), 5 (socks5), connect (http).",
)
_NC_PROXY_TYPES = {"4": "socks4", "5": "socks5", "connect": "http"}
#: listen's --allow/--deny/--allowfile/--denyfile.
ACCESS_PARAMS = access_params(
    ACCESS,
    allow="Serve only clients in this address or network (repeatable; IPv4/IPv6).",
    deny="Close clients from this address or network at once (repeatable; wins).",
)
Crlf = flag(TEXT, "-C", "--crlf", help="Send line feeds as CRLF (uses the portable copy path).")
Output = value(
    TEXT,
    "-o",
    "--output",
    metavar="FILE",
    help="Hex dump of both directions to FILE (ncat's -x layout, > sent, < received).",
)
AppendOutput = flag(TEXT, "--append-output", help="Append to the -o file instead of replacing it.")


def tls_options(v: Mapping[str, Any], *, server: bool) -> TlsOptions | None:
    """``--ssl`` and companions from the flags *v* (listen has no ``--ssl-system-ca``,
    ``--ssl-no-verify`` or ``--ssl-servername``); any ``--ssl-*`` flag implies ``--ssl``
    (as in ncat)."""
    from ..transport.tls import TlsOptions  # lazy: keeps start-up light

    ca, cert, key, alpn = v["ssl_ca"], v["ssl_cert"], v["ssl_key"], v["ssl_alpn"]
    system_ca, no_verify = v.get("ssl_system_ca", False), v.get("ssl_no_verify", False)
    servername = v.get("ssl_servername")
    allow_truncation = v["ssl_allow_truncation"]
    wanted = v["ssl"] or ca or system_ca or no_verify or cert or key or servername or alpn
    if not (wanted or allow_truncation):
        return None
    if key is not None and cert is None:
        raise UsageError("--ssl-key", "needs --ssl-cert")
    if no_verify and ca is not None:
        raise UsageError("--ssl-no-verify", "contradicts --ssl-ca")
    if no_verify and system_ca:
        raise UsageError("--ssl-no-verify", "contradicts --ssl-system-ca")
    if servername is not None:
        servername = parse_host_name(servername, what="--ssl-servername")
    protocols: tuple[str, ...] = ()
    if alpn is not None:
        protocols = tuple(p.strip() for p in alpn.split(","))
        # RFC 7301 names are bytes, but Python's ssl takes ASCII only (and they are
        # printable in every registered name): anything else was a traceback (issue 15).
        if not all(p and p.isascii() and p.isprintable() and len(p) <= 255 for p in protocols):
            raise UsageError(
                f"invalid --ssl-alpn {alpn!r}", "expected printable ASCII names like h2,http/1.1"
            )
    return TlsOptions(
        server=server,
        verify=not no_verify,
        ca_file=ca,
        system_ca=system_ca,
        cert_file=cert,
        key_file=key,
        server_name=servername,
        alpn=protocols,
        allow_truncation=allow_truncation,
    )


def check_target_name(host: str | None, *, tls: TlsOptions | None, proxy: object) -> None:
    """HOST goes on the wire as typed when it is the TLS server name (no --ssl-servername)
    or a proxy's CONNECT target: the same checks as --ssl-servername (exit 2, not a
    traceback; and no CR LF into an HTTP CONNECT request)."""
    if host is None:
        return
    if proxy is not None or (tls is not None and not tls.server and tls.server_name is None):
        parse_host_name(host, what="host")


def proxy_settings(
    proxy: str | None, kind: str | None, auth: str | None, *, family: int, numeric: bool
) -> ProxySettings | None:
    """``--proxy HOST[:PORT] --proxy-type T --proxy-auth U:P``."""
    if proxy is None:  # --proxy-type/--proxy-auth alone: refused by cli/compat.py
        return None
    try:
        proxy_type = ProxyType((kind or "http").lower())
    except ValueError:
        raise UsageError(
            f"invalid --proxy-type {kind!r}", "expected http, socks5 or socks4"
        ) from None
    default_port = 3128 if proxy_type is ProxyType.HTTP else 1080
    host, port = _host_port(proxy, default_port)
    username = password = None
    if auth is not None:
        try:
            username, password = parse_proxy_auth(auth)
        except LocalProtocolError as exc:  # proto's word for bad input; on argv, exit 2
            raise UsageError(exc.what, exc.why) from exc
    from ..modes.netcat_layers import ProxySettings  # lazy: keeps start-up light

    return ProxySettings(Endpoint(host, port, family, numeric), proxy_type, username, password)


def nc_proxy_spelling(
    proxy: str | None, kind: str | None, nc_proxy: str | None, nc_kind: str | None
) -> tuple[str | None, str | None]:
    """nc.openbsd's ``-x ADDR[:PORT] [-X 4|5|connect]`` as ``--proxy`` / ``--proxy-type``.

    As in nc.openbsd, ``-x`` without ``-X`` is SOCKS5 (``--proxy`` alone is HTTP, as ncat).
    """
    if nc_kind is not None and nc_proxy is None:
        raise UsageError("-X", "needs -x ADDR[:PORT] (or use --proxy-type with --proxy)")
    if nc_proxy is None:
        return proxy, kind
    if proxy is not None or kind is not None:
        raise UsageError("-x/-X", "choose them or --proxy/--proxy-type, not both")
    word = (nc_kind or "5").lower()
    if word not in _NC_PROXY_TYPES:
        raise UsageError(f"invalid -X {nc_kind!r}", "expected 4, 5 or connect")
    return nc_proxy, _NC_PROXY_TYPES[word]


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"invalid --proxy {text!r}", "expected [ADDRESS]:PORT")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:  # a name, or an IPv6 address without a port
        host, port_text = text, ""
    if not host:
        raise UsageError(f"invalid --proxy {text!r}", "no host")
    port = default_port if not port_text else parse_port(port_text, what="proxy port")
    return host, port


def dump_options(output: str | None, append: bool) -> DumpOptions | None:
    if output is None:
        if append:
            raise UsageError("--append-output", "needs -o/--output FILE")
        return None
    from ..modes.netcat_layers import DumpOptions  # lazy: keeps start-up light

    return DumpOptions(output, append)

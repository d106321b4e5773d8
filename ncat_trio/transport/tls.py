"""TLS for connect and listen: contexts, the handshake, and TLS's closing policy.

* Verification is **on** for clients: the system trust store or ``--ssl-ca``, and the
  host name (or ``--ssl-servername``) checked against the certificate.  ``--ssl-ca``
  *replaces* the system store, as in ncat and curl (``--cacert``): pinning a private CA
  must not leave every public CA trusted too.  ``--ssl-system-ca`` adds the system
  store back (curl's ``--ca-native``).  A listener never trusts the system store for
  client certificates (``create_default_context(CLIENT_AUTH)`` loads none).
  ``--ssl-no-verify`` turns both off and says so on stderr every time.
* A server without ``--ssl-cert/--ssl-key`` generates a temporary self-signed
  certificate (EC P-256, one day) with ``cryptography`` when it is importable and
  prints its SHA-256 fingerprint, so a client can pin it by eye.  Without
  ``cryptography`` it fails with a message asking for ``--ssl-cert/--ssl-key``: the
  runtime dependencies stay trio and typer, and no ``openssl`` binary is shelled out to.
* Closing (README, "TLS"; :mod:`.tls_stream` does the mechanics).  Under **TLS 1.3**
  stdin EOF sends our ``close_notify`` at once, the TLS counterpart of a FIN (RFC 8446
  §6.1: it closes our write side only), and we keep receiving until the peer's.  Two
  ncat-trio ends that both reach stdin EOF therefore both finish, and a reply the peer
  sends after our EOF still arrives.  Under **TLS 1.2** there is no half-close (the peer
  must answer ``close_notify`` at once and may drop its pending writes), so stdin EOF
  sends nothing: we receive until the peer's ``close_notify`` (or ``-q SECS`` runs
  out), then send ours and close.
* A peer that closes TCP without ``close_notify`` is a truncation: :class:`TlsTruncated`,
  exit 7, after everything received was written.  ``--ssl-allow-truncation`` makes it
  one stderr line and the peer's EOF (ncat ends its side with a bare FIN); our upload can
  go on after it (``OP_IGNORE_UNEXPECTED_EOF`` keeps OpenSSL from breaking the
  connection; :mod:`.tls_stream` still tells the truncation apart).
* :class:`TlsStream` is not a ``trio.SocketStream``, so ``zerocopy.classify`` never
  matches it: the bytes must pass through OpenSSL in user space.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import math
import os
import ssl
import tempfile
from dataclasses import dataclass

import trio

from .. import diag
from ..errors import ConnectError, NcatTimeout, UsageError
from .pump import STREAM_ERRORS
from .tls_stream import TlsStream, TlsTruncated


@dataclass(frozen=True)
class TlsOptions:
    """``--ssl`` and its companions, for one side of a connection."""

    server: bool = False
    verify: bool = True  # client: check the chain and name; False: --ssl-no-verify
    ca_file: str | None = None  # client: trust these; server: require client certs from them
    system_ca: bool = False  # client: with ca_file, trust the system store too
    cert_file: str | None = None  # server certificate (client: a client certificate)
    key_file: str | None = None
    server_name: str | None = None  # SNI and the name checked (default: the host)
    alpn: tuple[str, ...] = ()
    allow_truncation: bool = False  # --ssl-allow-truncation: a bare TCP EOF is an EOF


def _load(context: ssl.SSLContext, options: TlsOptions) -> None:
    try:
        if options.cert_file is not None:
            context.load_cert_chain(options.cert_file, options.key_file)
        if options.ca_file is not None:
            context.load_verify_locations(options.ca_file)
    except (OSError, ssl.SSLError) as exc:
        what = "--ssl-ca" if options.cert_file is None else "--ssl-cert/--ssl-key"
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise UsageError(f"cannot load {what}", str(reason).lower()) from exc
    if options.alpn:
        context.set_alpn_protocols(list(options.alpn))
    # A bare TCP EOF must not break the connection (we may still send after an allowed
    # truncation); tls_stream.TlsStream tells it apart from close_notify by itself.
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """A client context: verifying unless ``verify=False`` (announced on stderr)."""
    if options.ca_file is None or options.system_ca:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # What create_default_context builds, minus the system store (it loads that
        # whenever it is given no CA): CERT_REQUIRED and check_hostname are this
        # protocol's defaults; _load then adds --ssl-ca alone.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        diag.say(
            "WARNING: --ssl-no-verify: the server's certificate is NOT checked; "
            "anyone on the path can read and change this connection"
        )
    _load(context, options)
    return context


def server_context(options: TlsOptions) -> ssl.SSLContext:
    """A server context from ``--ssl-cert/--ssl-key`` or a generated self-signed pair."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if options.cert_file is None:
        cert_pem, key_pem, fingerprint = self_signed_certificate()
        # load_cert_chain only reads files: a private directory, removed at once.
        with tempfile.TemporaryDirectory(prefix="ncat-trio-") as folder:
            cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            with open(cert_path, "wb") as file:
                file.write(cert_pem)
            with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as file:
                file.write(key_pem)
            context.load_cert_chain(cert_path, key_path)
        diag.say(
            "TLS: generated a temporary self-signed certificate "
            f"(use --ssl-cert/--ssl-key for a permanent one); SHA-256 fingerprint {fingerprint}"
        )
    if options.ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED  # clients must present a cert from this CA
    _load(context, options)
    return context


def fingerprint(der: bytes) -> str:
    """``AB:CD:…``: the SHA-256 fingerprint as ``openssl x509 -fingerprint`` prints it."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def self_signed_certificate(common_name: str = "ncat-trio") -> tuple[bytes, bytes, str]:
    """(certificate PEM, key PEM, SHA-256 fingerprint) of a fresh one-day certificate."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError as exc:
        raise UsageError(
            "--ssl listener needs a certificate",
            "give --ssl-cert FILE --ssl-key FILE (generating a temporary one needs the "
            "'cryptography' package, which is not installed)",
        ) from exc
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem, fingerprint(certificate.public_bytes(serialization.Encoding.DER))


def _handshake_failure(exc: BaseException) -> str:
    """The reason a handshake failed, in words: the verify message when there is one."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError | OSError):
        cause = cause.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError) or (
        isinstance(cause, ssl.SSLError) and cause.reason == "UNEXPECTED_EOF_WHILE_READING"
    ):
        return "the peer closed during the handshake (did it reject our certificate?)"
    if isinstance(cause, ssl.SSLError):
        if cause.reason:
            return cause.reason.replace("_", " ").lower()
        return str(cause)
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return "the peer closed the connection during the handshake"


def describe(stream: TlsStream) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384, ALPN h2, peer certificate SHA-256 …`` for -v."""
    cipher = stream.cipher()
    parts = [f"{stream.version()} {cipher[0] if cipher else '?'}"]
    alpn = stream.selected_alpn_protocol()
    if alpn:
        parts.append(f"ALPN {diag.printable(alpn)}")  # the peer's choice
    der = stream.getpeercert()
    if der:
        parts.append(f"peer certificate SHA-256 {fingerprint(der)}")
    return ", ".join(parts)


async def start_tls(
    conn: trio.abc.Stream,
    context: ssl.SSLContext,
    *,
    server: bool,
    server_name: str | None,
    peer_name: str,
    handshake_timeout: float | None = None,
    allow_truncation: bool = False,
) -> TlsStream:
    """Run the handshake on ``conn``; failures are :class:`ConnectError` naming the reason.

    On failure ``conn`` is closed.  ``handshake_timeout`` bounds the handshake (exit 4).
    """
    stream = TlsStream(
        conn,
        context,
        server_side=server,
        server_hostname=server_name,
        peer_name=peer_name,
        allow_truncation=allow_truncation,
    )
    try:
        with trio.fail_after(math.inf if handshake_timeout is None else handshake_timeout):
            await stream.do_handshake()
    except trio.TooSlowError as exc:
        await trio.aclose_forcefully(conn)
        raise NcatTimeout(
            f"TLS handshake with {peer_name}", f"no answer within {handshake_timeout:g} s"
        ) from exc
    except STREAM_ERRORS as exc:  # a handshake's failure: ConnectError, in TLS words
        await trio.aclose_forcefully(conn)
        raise ConnectError(f"TLS handshake with {peer_name}", _handshake_failure(exc)) from exc
    return stream


__all__ = [
    "TlsOptions",
    "TlsStream",
    "TlsTruncated",
    "client_context",
    "describe",
    "fingerprint",
    "self_signed_certificate",
    "server_context",
    "start_tls",
]

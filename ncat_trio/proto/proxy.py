"""Proxy CONNECT handshakes, sans-I/O: SOCKS5 (RFC 1928/1929), SOCKS4/4a, HTTP CONNECT.

Why hand-written and not python-socks (which does support Trio): the runtime
dependencies are trio and typer only; python-socks opens its own socket (so ``-s``/``-p``
source binding, ``-4/-6`` and our error translation would be lost or duplicated);
and these handshakes are a few dozen bytes each way.  A pure state machine can be
fed its replies split at every byte, which is how ``tests/proto/test_proxy.py`` checks it.

Use: ``ProxyHandshake(...)``; send :meth:`data_to_send`; read at most
:meth:`bytes_wanted` bytes and pass them to :meth:`receive_data` (``b""`` = EOF);
call :meth:`next_event` until it returns :class:`Established` (or raises).  The
machine never asks for a byte beyond its reply, so nothing the target sends after
the handshake is swallowed and the socket can go straight to the data pumps.

Errors: the proxy said no → :class:`ProxyRefused` (a ConnectError, exit 1); the
proxy broke the protocol or closed → :class:`RemoteProtocolError` (exit 6).
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import struct
from dataclasses import dataclass

from ..diag import printable
from ..errors import ConnectError, LocalProtocolError, RemoteProtocolError
from .receive_buffer import NEED_DATA as NEED_DATA
from .receive_buffer import NeedData, ReceiveBuffer


class ProxyType(enum.Enum):
    SOCKS5 = "socks5"
    SOCKS4 = "socks4"
    HTTP = "http"


class ProxyRefused(ConnectError):
    """The proxy answered and refused: authentication or the CONNECT itself."""


@dataclass(frozen=True)
class Established:
    """The tunnel is open; ``bound`` is what the proxy reported (may be empty)."""

    bound: str = ""


class _State(enum.Enum):
    SOCKS5_METHOD = "waiting for the SOCKS5 method choice"
    SOCKS5_AUTH = "waiting for the SOCKS5 authentication reply"
    SOCKS5_REPLY = "waiting for the SOCKS5 CONNECT reply"
    SOCKS4_REPLY = "waiting for the SOCKS4 reply"
    HTTP_REPLY = "waiting for the HTTP CONNECT response"
    ESTABLISHED = "established"


SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
SOCKS4_REPLIES = {
    0x5B: "request rejected or failed",
    0x5C: "rejected: the proxy cannot reach identd on the client",
    0x5D: "rejected: identd reports a different user id",
}
MAX_HTTP_RESPONSE = 16 * 1024


class ProxyHandshake:
    """One client handshake through one proxy to ``host:port``."""

    def __init__(
        self,
        kind: ProxyType,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        proxy_name: str = "proxy",
    ) -> None:
        self.kind = kind
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.proxy_name = proxy_name
        self._in = ReceiveBuffer("proxy receive_data")
        self._out = bytearray()
        self._bound = ""  # what the proxy reported, once established
        if kind is ProxyType.SOCKS5:
            methods = b"\x00\x02" if username is not None else b"\x00"
            self._out += bytes([5, len(methods)]) + methods
            self.state = _State.SOCKS5_METHOD
        elif kind is ProxyType.SOCKS4:
            self._out += self._socks4_request()
            self.state = _State.SOCKS4_REPLY
        else:
            self._out += self._http_request()
            self.state = _State.HTTP_REPLY

    # --- the I/O side's interface ----------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes to write to the proxy now (and forget)."""
        data, self._out = bytes(self._out), bytearray()
        return data

    def bytes_wanted(self) -> int:
        """How many bytes may be read without reading past the proxy's reply (0: done)."""
        state, have = self.state, len(self._in)
        if state is _State.ESTABLISHED:
            return 0
        if state is not _State.HTTP_REPLY:
            total = self._socks_reply_length()
            return (total if total is not None else 5) - have
        # HTTP: the fewest bytes that could complete b"\r\n\r\n".
        received = self._in.peek(have)
        for matched in (3, 2, 1):
            if received.endswith(b"\r\n\r\n"[:matched]):
                return 4 - matched
        return 4

    def receive_data(self, data: bytes | bytearray) -> None:
        """Bytes from the proxy; ``b""`` means it closed."""
        self._in.feed(data)

    def next_event(self) -> Established | NeedData:
        """:class:`Established`, or ``NEED_DATA``; raises on a refusal or a broken reply."""
        while self.state is not _State.ESTABLISHED:
            before = self.state
            self._step()
            if self.state is before:
                if self._in.eof:
                    raise RemoteProtocolError(
                        self.proxy_name, f"closed the connection while {self.state.value}"
                    )
                return NEED_DATA
        return Established(self._bound)

    # --- requests --------------------------------------------------------------------

    def _target_bytes_socks5(self) -> bytes:
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            name = self._idna()
            if not 0 < len(name) < 256:
                raise LocalProtocolError(
                    f"SOCKS5 target {self.host!r}", "host name must be 1-255 bytes"
                ) from None
            return b"\x03" + bytes([len(name)]) + name  # remote DNS: the proxy resolves
        return (b"\x01" if address.version == 4 else b"\x04") + address.packed

    def _idna(self) -> bytes:
        # The CLI checks HOST first (parse.parse_host_name); this keeps any other
        # caller's bad name a one-line error rather than a UnicodeError traceback.
        try:
            return self.host.encode("idna")
        except UnicodeError:
            raise LocalProtocolError(
                f"{self.kind.value} target {printable(self.host)!r}", "not a valid host name"
            ) from None

    def _socks4_request(self) -> bytes:
        head = struct.pack("!BBH", 4, 1, self.port)
        user = (self.username or "").encode("utf-8") + b"\x00"
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:  # SOCKS4a: 0.0.0.x and the name after the user id
            return head + b"\x00\x00\x00\x01" + user + self._idna() + b"\x00"
        if address.version != 4:
            raise LocalProtocolError(
                f"SOCKS4 target {self.host}", "SOCKS4 carries IPv4 only (use --proxy-type socks5)"
            )
        return head + address.packed + user

    def _http_request(self) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = f"{host}:{self.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            lines.append(f"Proxy-Authorization: Basic {token}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    # --- replies ---------------------------------------------------------------------

    def _socks_reply_length(self) -> int | None:
        """The length of the SOCKS reply awaited; None while a SOCKS5 CONNECT reply's
        first 5 bytes, which tell it, have not all come."""
        if self.state is not _State.SOCKS5_REPLY:
            return 8 if self.state is _State.SOCKS4_REPLY else 2
        head = self._in.peek(5)
        if len(head) < 5:
            return None
        atyp = head[3]
        if atyp == 1:
            return 4 + 4 + 2
        if atyp == 4:
            return 4 + 16 + 2
        if atyp == 3:
            return 4 + 1 + head[4] + 2
        raise RemoteProtocolError(self.proxy_name, f"SOCKS5 reply with address type {atyp}")

    def _step(self) -> None:
        state = self.state
        if state is _State.HTTP_REPLY:
            end = self._in.peek(len(self._in)).find(b"\r\n\r\n")
            if end < 0:
                if len(self._in) > MAX_HTTP_RESPONSE:
                    raise RemoteProtocolError(self.proxy_name, "HTTP response header too long")
                return
            head = self._in.take(end + 4)
            assert head is not None
            self._http_status(head)
            return
        length = self._socks_reply_length()
        reply = None if length is None else self._in.take(length)
        if reply is None:
            return
        if state is _State.SOCKS5_METHOD:
            if reply[0] != 5:
                raise RemoteProtocolError(
                    self.proxy_name, f"not a SOCKS5 proxy (version {reply[0]})"
                )
            if reply[1] == 0:
                self._send_socks5_connect()
            elif reply[1] == 2 and self.username is not None:
                user = self.username.encode("utf-8")
                password = (self.password or "").encode("utf-8")
                if len(user) > 255 or len(password) > 255:
                    raise LocalProtocolError("--proxy-auth", "user and password: 255 bytes each")
                self._out += bytes([1, len(user)]) + user + bytes([len(password)]) + password
                self.state = _State.SOCKS5_AUTH
            elif reply[1] == 0xFF:
                wanted = "username/password" if self.username is not None else "no authentication"
                raise ProxyRefused(self.proxy_name, f"SOCKS5: no acceptable method ({wanted})")
            else:
                raise RemoteProtocolError(
                    self.proxy_name, f"SOCKS5: chose method {reply[1]}, which was not offered"
                )
        elif state is _State.SOCKS5_AUTH:
            if reply[1] != 0:
                raise ProxyRefused(self.proxy_name, "SOCKS5: authentication failed (--proxy-auth)")
            self._send_socks5_connect()
        elif state is _State.SOCKS5_REPLY:
            if reply[0] != 5:
                raise RemoteProtocolError(self.proxy_name, f"SOCKS5 reply version {reply[0]}")
            if reply[1] != 0:
                why = SOCKS5_REPLIES.get(reply[1], f"reply code {reply[1]}")
                raise ProxyRefused(self.proxy_name, f"SOCKS5: {why}")
            self._finish(self._socks5_bound(reply))
        else:  # SOCKS4_REPLY
            if reply[0] != 0:
                raise RemoteProtocolError(self.proxy_name, f"SOCKS4 reply version {reply[0]}")
            if reply[1] != 0x5A:
                why = SOCKS4_REPLIES.get(reply[1], f"reply code {reply[1]:#x}")
                raise ProxyRefused(self.proxy_name, f"SOCKS4: {why}")
            port = struct.unpack("!H", reply[2:4])[0]
            self._finish(f"{ipaddress.IPv4Address(reply[4:8])}:{port}")

    def _send_socks5_connect(self) -> None:
        self._out += b"\x05\x01\x00" + self._target_bytes_socks5() + struct.pack("!H", self.port)
        self.state = _State.SOCKS5_REPLY

    def _socks5_bound(self, reply: bytes) -> str:
        atyp, port = reply[3], struct.unpack("!H", reply[-2:])[0]
        if atyp == 1:
            return f"{ipaddress.IPv4Address(reply[4:8])}:{port}"
        if atyp == 4:
            return f"[{ipaddress.IPv6Address(reply[4:20])}]:{port}"
        return f"{printable(reply[5:-2].decode('ascii', 'replace'))}:{port}"  # the proxy's name

    def _http_status(self, head: bytes) -> None:
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise RemoteProtocolError(
                self.proxy_name, f"not an HTTP response: '{printable(status_line)}'"
            )
        code = int(parts[1])
        if 200 <= code < 300:
            self._finish("")
            return
        reason = printable(parts[2]) if len(parts) > 2 else ""  # the proxy's words: escaped
        why = f"HTTP {code} {reason}".strip()
        if code == 407:
            why += " (--proxy-auth missing or wrong)"
        raise ProxyRefused(self.proxy_name, f"refused CONNECT: {why}")

    def _finish(self, bound: str) -> None:
        self.state = _State.ESTABLISHED
        self._bound = bound


def parse_proxy_auth(text: str) -> tuple[str, str]:
    """``user:pass`` (the password may contain colons)."""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise LocalProtocolError("invalid --proxy-auth", "expected USER:PASSWORD")
    return user, password

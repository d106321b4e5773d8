"""A TLS stream over ``ssl.SSLObject`` and memory BIOs that can half-close under TLS 1.3.

``trio.SSLStream`` can send ``close_notify`` only as part of closing, after which it
receives nothing.  TLS 1.3 allows more (RFC 8446 §6.1): ``close_notify`` closes the
*sender's* write side only, and OpenSSL lets ``SSL_read`` go on after ``SSL_shutdown``
has sent it, until the peer's own ``close_notify``.  :meth:`TlsStream.send_eof` does
exactly that: the TLS counterpart of a TCP FIN.  Under TLS 1.2 (no half-close: a peer
must answer ``close_notify`` at once and may drop its pending writes) it sends nothing
and the caller's policy applies (:mod:`.tls`, README "TLS").

Two OpenSSL details this class is built around (checked with OpenSSL 3.0):

* ``SSLObject.unwrap()`` calls ``SSL_shutdown`` twice; the second call *reads*, and a
  complete application-data record it reads there is fatal ("application data after
  close notify").  So :meth:`send_eof` first decrypts every complete record already
  received into :attr:`_plaintext`, leaving nothing but partial records for it.
* The contexts set ``OP_IGNORE_UNEXPECTED_EOF`` (:func:`.tls.client_context`): a TCP EOF
  without ``close_notify`` then reads as ``SSL_ERROR_ZERO_RETURN`` and does not break
  the connection, so our side can still send.  The truncation is told apart here: we
  pass the TCP EOF to OpenSSL only after it has processed every complete record, so a
  zero return *after* that EOF can only be a truncation.
"""

from __future__ import annotations

import ssl

import trio

from .. import diag
from ..errors import IntegrityError
from .pump import STREAM_ERRORS

#: Plaintext and ciphertext moved per read: TLS records are at most 16 KiB.
READ_SIZE = 65536


class TlsTruncated(IntegrityError):
    """The peer closed the TCP connection without a TLS ``close_notify``: the data
    that arrived may be cut short, and nothing proves otherwise (exit 7)."""


class TlsStream(trio.abc.HalfCloseableStream):
    """TLS over ``transport``: ``send_eof`` sends ``close_notify`` (TLS 1.3), reading
    goes on until the peer's, and a TCP EOF without one is :class:`TlsTruncated`.

    ``allow_truncation``: report a truncation as one stderr line and read it as the
    peer's EOF instead (``--ssl-allow-truncation``; ncat ends with a bare FIN).
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None,
        peer_name: str,
        allow_truncation: bool = False,
    ) -> None:
        self.transport = transport
        self.peer_name = peer_name
        self.allow_truncation = allow_truncation
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
        )
        self._send_lock = trio.Lock()  # one writer of the transport; keeps records in order
        self._plaintext = bytearray()  # decrypted by send_eof before receive_some asked
        self._transport_eof = False  # the TCP EOF has been passed to OpenSSL
        self._eof_seen = False  # OpenSSL read the peer's EOF (close_notify, or TCP's)
        self._eof_reported = False  # receive_some has returned it (or raised it)
        self.truncated = False  # the peer closed TCP without close_notify
        self._eof_sent = False  # our close_notify is out
        self._closed = False
        self.eof_requested = False  # send_eof was called (whatever it could send)

    # --- the handshake and the plumbing ---------------------------------------------

    async def do_handshake(self) -> None:
        """Run the handshake; ``ssl.SSLError`` (an ``OSError``) names why it failed."""
        while True:
            try:
                self._ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()  # it may wait for an answer to what it wrote
                if self._transport_eof:
                    raise ssl.SSLEOFError("the peer closed during the handshake") from None
                await self._feed()
        await self._flush()

    async def _flush(self) -> None:
        """Send whatever OpenSSL has written (records, alerts) to the transport."""
        async with self._send_lock:
            while self._outgoing.pending:  # also what was written while we sent
                await self.transport.send_all(self._outgoing.read())

    async def _flush_from_receive(self) -> None:
        """Reading may make OpenSSL write (a KeyUpdate answer).  Never wait for the
        lock here: its holder may be blocked until the peer reads, and the peer until
        we do.  The holder sends what is pending before it lets go."""
        if self._outgoing.pending and not self._send_lock.locked():
            await self._flush()

    async def _feed(self) -> None:
        """Pass the next bytes from the transport to OpenSSL (or its EOF)."""
        data = await self.transport.receive_some(READ_SIZE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
            self._transport_eof = True

    # --- receiving ------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")
        size = READ_SIZE if max_bytes is None else max_bytes
        if self._plaintext:
            buffered = bytes(self._plaintext[:size])
            del self._plaintext[:size]
            return buffered
        while not self._eof_seen:
            data = self._read(size)
            if data is None:  # OpenSSL needs more bytes from the transport
                await self._flush_from_receive()
                await self._feed()
            elif data:
                await self._flush_from_receive()
                return data
        await trio.lowlevel.checkpoint()
        return self._report_eof()

    def _read(self, size: int) -> bytes | None:
        """One ``SSLObject.read``: plaintext, b"" at the peer's close_notify (which sets
        ``_eof_seen``), or None while a record is incomplete."""
        try:
            data = self._ssl.read(size)
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLZeroReturnError:
            data = b""
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS: {exc.reason or exc}") from exc
        if not data:
            self._eof_seen = True
        return data

    def _report_eof(self) -> bytes:
        """The peer's close_notify is b""; after the TCP EOF it is a truncation."""
        reported, self._eof_reported = self._eof_reported, True
        if reported or not self._transport_eof:
            return b""
        self.truncated = True
        error = TlsTruncated(
            self.peer_name,
            "TLS truncated: the peer closed without close_notify "
            "(what arrived was written, but may be incomplete)",
        )
        if not self.allow_truncation:
            raise error
        diag.say(f"{error} [--ssl-allow-truncation: taken as its EOF]")
        return b""

    def _decrypt_received(self) -> None:
        """Move every complete record already received into :attr:`_plaintext`."""
        while not self._eof_seen:
            data = self._read(READ_SIZE)
            if not data:  # incomplete, or the EOF: receive_some reports it after the plaintext
                return
            self._plaintext += data

    # --- sending --------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")
        if self.eof_requested:
            raise trio.ClosedResourceError("send_eof was called: nothing more can be sent")
        if data:
            try:
                self._ssl.write(data)
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError(f"TLS: {exc.reason or exc}") from exc
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    @property
    def half_close(self) -> bool:
        """True when ``send_eof`` sends ``close_notify`` (TLS 1.3 and later)."""
        version = self._ssl.version()
        return version is not None and version not in ("TLSv1", "TLSv1.1", "TLSv1.2")

    async def send_eof(self) -> None:
        """TLS 1.3: send ``close_notify`` now and keep receiving.  TLS 1.2: nothing
        (the close_notify waits for :meth:`aclose`)."""
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")
        if self.eof_requested:
            await trio.lowlevel.checkpoint()
            return
        self.eof_requested = True
        if not self.half_close:
            await trio.lowlevel.checkpoint()
            return
        await self._send_close_notify()

    async def _send_close_notify(self) -> None:
        if self._eof_sent:
            return
        self._decrypt_received()
        self._eof_sent = True
        try:
            self._ssl.unwrap()  # SSL_shutdown: close_notify into the outgoing BIO
        except ssl.SSLWantReadError:
            pass  # sent; the peer's has not come yet, which is the point
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS: {exc.reason or exc}") from exc
        await self._flush()

    # --- closing --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Send ``close_notify`` if it has not been sent, then close the transport."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            if not self._eof_sent:
                self.eof_requested = True
                await self._send_close_notify()
        except STREAM_ERRORS:
            pass  # the peer is gone: nothing to tell it
        finally:
            await self.transport.aclose()

    # --- for -v -------------------------------------------------------------------

    def version(self) -> str | None:
        return self._ssl.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._ssl.cipher()

    def selected_alpn_protocol(self) -> str | None:
        return self._ssl.selected_alpn_protocol()

    def getpeercert(self) -> bytes | None:
        """The peer certificate (DER), if it sent one."""
        return self._ssl.getpeercert(binary_form=True)

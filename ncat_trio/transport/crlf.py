"""``-C/--crlf``: line feeds sent as CRLF, for line protocols (SMTP, HTTP by hand).

Like ncat, a LF already preceded by CR is left alone, so ``\\r\\n`` input is not
doubled; the last byte of each chunk is remembered, so a CR at the end of one read
and a LF at the start of the next still count as one ``\\r\\n``.  Only what is *sent*
is translated; what arrives is written as is.
"""

from __future__ import annotations

import trio


class CrlfTranslator:
    """Stateful LF → CRLF over a sequence of chunks."""

    def __init__(self) -> None:
        self._last_was_cr = False

    def translate(self, data: bytes | bytearray) -> bytes:
        if not data:
            return b""
        out = bytearray()
        start = 0
        while (index := data.find(b"\n", start)) >= 0:
            out += data[start:index]
            previous_cr = data[index - 1] == 0x0D if index > 0 else self._last_was_cr
            out += b"\n" if previous_cr else b"\r\n"
            start = index + 1
        out += data[start:]
        self._last_was_cr = data[-1] == 0x0D
        return bytes(out)


class CrlfReceiveStream(trio.abc.ReceiveStream):
    """stdin with LF → CRLF applied (not an fd stream: the portable pump is used)."""

    def __init__(self, inner: trio.abc.ReceiveStream) -> None:
        self.inner = inner
        self._translator = CrlfTranslator()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return self._translator.translate(await self.inner.receive_some(max_bytes))

    async def aclose(self) -> None:
        await self.inner.aclose()

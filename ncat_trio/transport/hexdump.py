"""``-o/--output FILE``: a hex dump of both directions, in ncat's ``-x`` layout.

ncat writes each buffer as lines of ``OFFSET   16 hex bytes (8 + 8)  ASCII`` with no
mark of direction.  Ours adds one column in front, ``>`` for bytes sent to the peer
and ``<`` for bytes received, and the offset runs per direction over the whole
session (ncat restarts it at every buffer), so a line says where its bytes are::

    > 00000000  68 65 6c 6c 6f 20 66 72  6f 6d 20 63 6c 69 65 6e  hello.from.clien
    < 00000000  6f 6b 0a                                          ok.

Non-printable bytes and spaces are ``.`` as in ncat.  Lines are written as the data
moves (the file is opened line-buffered), so a crash still leaves what was seen.

:class:`TappedStream` puts the dump around a connection.  It is not a
``trio.SocketStream``: with ``-o`` the kernel-copy paths are never used, and every
byte passes through here.
"""

from __future__ import annotations

import io

import trio

from ..errors import LocalIOError, reason

SENT = ">"
RECEIVED = "<"
_PRINTABLE = bytes(range(0x21, 0x7F))


def _ascii(chunk: bytes) -> str:
    return "".join(chr(b) if b in _PRINTABLE else "." for b in chunk)


def format_lines(direction: str, offset: int, data: bytes) -> list[str]:
    """The dump lines for ``data`` whose first byte is at ``offset`` in its direction."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        hex_part = f"{left:<23}  {right:<23}"
        lines.append(f"{direction} {offset + start:08x}  {hex_part}  {_ascii(chunk)}")
    return lines


class HexDumpFile:
    """The open dump file and the two running offsets."""

    def __init__(self, path: str, *, append: bool = False) -> None:
        self.path = path
        try:
            self._file: io.TextIOBase = open(  # noqa: SIM115  (closed by close())
                path, "a" if append else "w", encoding="ascii", buffering=1
            )
        except OSError as exc:
            raise LocalIOError(f"cannot open --output {path}", reason(exc)) from exc
        self.offsets = {SENT: 0, RECEIVED: 0}

    def record(self, direction: str, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        offset = self.offsets[direction]
        self.offsets[direction] = offset + len(data)
        try:
            self._file.write("".join(line + "\n" for line in format_lines(direction, offset, data)))
        except OSError as exc:
            raise LocalIOError(f"--output {self.path}", reason(exc)) from exc

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise LocalIOError(f"--output {self.path}", reason(exc)) from exc


class TappedStream(trio.abc.HalfCloseableStream):
    """A connection whose every byte, both ways, is recorded in a :class:`HexDumpFile`."""

    def __init__(self, inner: trio.abc.HalfCloseableStream, dump: HexDumpFile) -> None:
        self.inner = inner
        self.dump = dump

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        self.dump.record(SENT, data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        if data:
            self.dump.record(RECEIVED, data)
        return data

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.dump.close()

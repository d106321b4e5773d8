"""What every sans-I/O machine in ``proto/`` shares: its sentinels and its receive buffer.

h11's shape (``_util.py``'s sentinels, ``_receive_buffer.py``): ``receive_data(bytes)``
feeds a :class:`ReceiveBuffer` (``b""`` is EOF), ``next_event()`` parses from its front
and returns an event or :data:`NEED_DATA`.  Unlike h11's one ``bytearray``, the buffer
is a queue of the chunks as they came, never concatenated: ttcp walks past 256 KiB of
payload per read without copying it, and the transfer receiver hands a received chunk
out as its ``Data`` unchanged.  Only a message cut by a chunk boundary is joined (it is
a few bytes, or at most one bounded header).
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Literal

from ..errors import LocalProtocolError


class Sentinel(enum.Enum):
    """What ``next_event()`` returns when it has no event to give."""

    NEED_DATA = "NEED_DATA"  # nothing complete is buffered: call receive_data first
    PAUSED = "PAUSED"  # transfer: it is our turn to send (an Offer or an Ack)
    CLOSED = "CLOSED"  # roundtrip: the stream ended cleanly, on a frame boundary

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = Sentinel.NEED_DATA
PAUSED: Final = Sentinel.PAUSED
CLOSED: Final = Sentinel.CLOSED
#: The type of :data:`NEED_DATA`, for ``next_event() -> Event | NeedData``.
NeedData = Literal[Sentinel.NEED_DATA]

_Chunk = bytes | memoryview


class ReceiveBuffer:
    """Bytes received and not parsed yet, and whether the peer's EOF has come.

    ``feed(b"")`` records EOF; data after it is a :class:`LocalProtocolError` naming
    ``what``.  A ``bytearray`` or ``memoryview`` is copied as it is fed, unless the
    buffer was made with ``borrow=True``: then it is kept as a view until
    :meth:`detach`, which the machine calls before it returns :data:`NEED_DATA` (so
    the caller may reuse its buffer from then on, and only a partial message, a few
    bytes, is ever copied).  ``size`` is ``len(self)`` without a Python call.
    """

    __slots__ = ("_borrow", "_borrowed", "_chunks", "_offset", "_what", "eof", "size")

    def __init__(self, what: str, *, borrow: bool = False) -> None:
        self._what = what
        self._borrow = borrow
        self._borrowed = False  # a chunk may be a view of the caller's buffer
        self._chunks: deque[_Chunk] = deque()
        self._offset = 0  # into _chunks[0]
        self.size = 0
        self.eof = False

    def __len__(self) -> int:
        return self.size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` from the peer; ``b""`` means the peer closed its side."""
        if not data:
            self.eof = True
            return
        if self.eof:
            raise LocalProtocolError(self._what, "data after EOF")
        if type(data) is not bytes:
            if not self._borrow:
                data = bytes(data)
            else:
                data = memoryview(data)
                if data.format != "B" or data.ndim != 1:
                    data = data.cast("B")
                self._borrowed = True
        self._chunks.append(data)
        self.size += len(data)

    def detach(self) -> None:
        """Replace views of the caller's buffer by copies of their unread bytes."""
        if self._borrowed:
            self._borrowed = False
            rest = b"".join(self._chunks)[self._offset :]  # a partial message: small
            self._chunks = deque([rest]) if rest else deque()
            self._offset = 0

    def discard(self) -> None:
        """Forget everything buffered (EOF stays recorded)."""
        self._chunks.clear()
        self._offset = self.size = 0
        self._borrowed = False

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the front, left in place.  When they span chunks, those
        chunks (only those) are joined into one, so peeking again stays cheap."""
        if not self._chunks:
            return b""
        first = self._chunks[0]
        if self._offset + n > len(first) and len(self._chunks) > 1:
            parts = [self._chunks.popleft()]
            held = len(parts[0])
            while self._chunks and held < self._offset + n:
                parts.append(self._chunks.popleft())
                held += len(parts[-1])
            first = b"".join(parts)
            self._chunks.appendleft(first)
        return bytes(first[self._offset : self._offset + n])

    def take(self, n: int) -> bytes | None:
        """Remove and return exactly ``n`` bytes, or None if fewer are buffered."""
        return None if self.size < n else self.take_up_to(n)

    def take_up_to(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes; a whole received chunk is not copied."""
        if not self._chunks or n <= 0:
            return b""
        first = self._chunks[0]
        end = self._offset + n
        if end <= len(first) or len(self._chunks) == 1:  # the common case: one chunk
            out = first if self._offset == 0 and end >= len(first) else first[self._offset : end]
            self.drop(len(out))
            return out if type(out) is bytes else bytes(out)
        parts = bytearray()
        while len(parts) < n and self._chunks:  # a message cut by a chunk boundary
            first = self._chunks[0]
            piece = first[self._offset : self._offset + n - len(parts)]
            parts += piece
            self.drop(len(piece))
        return bytes(parts)

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        """Remove ``layout.size`` bytes (``len(self)`` must hold them) and unpack them."""
        first = self._chunks[0]
        if self._offset + layout.size <= len(first):  # no slice, no copy
            values = layout.unpack_from(first, self._offset)
            self.drop(layout.size)
            return values
        return layout.unpack(self.take_up_to(layout.size))

    def unpack_front(self, layout: struct.Struct, span: int) -> tuple[Any, ...] | None:
        """``layout`` unpacked at the front, if the first chunk holds the next ``span``
        bytes (``span >= layout.size``); nothing is removed.  None otherwise."""
        if self._chunks and self._offset + span <= len(self._chunks[0]):
            return layout.unpack_from(self._chunks[0], self._offset)
        return None

    def skip(self, n: int, check: Callable[[_Chunk, int, int], None] | None = None) -> int:
        """Remove up to ``n`` bytes; return how many.  ``check(chunk, start, end)`` sees them."""
        done = 0
        while done < n and self._chunks:
            first = self._chunks[0]
            step = min(n - done, len(first) - self._offset)
            if check is not None:
                check(first, self._offset, self._offset + step)
            self.drop(step)
            done += step
        return done

    def drop(self, n: int) -> None:
        """Remove ``n`` bytes that the first chunk holds (as :meth:`unpack_front` found)."""
        self._offset += n
        self.size -= n
        if self._offset == len(self._chunks[0]):
            self._chunks.popleft()
            self._offset = 0


__all__ = ["CLOSED", "NEED_DATA", "PAUSED", "NeedData", "ReceiveBuffer", "Sentinel"]

"""A socket stream read and written through its fd (:class:`Wire`): Python's cheapest loop.

*Exclusive* (nothing else in this Trio thread needs to run meanwhile: one session per
process, as ttcp's CLI): the socket is blocking with ``SO_RCVTIMEO``/``SO_SNDTIMEO`` of
:data:`EXCLUSIVE_WAIT_MS`, so a read or write waits in the kernel, as a C peer's does,
and only a wait that times out is handed to Trio.  Trio's wake-up path (epoll re-arm,
scheduler pass), or a poll() before each read, costs a syscall and some Python per
round trip: with this and ttcp's bulk path, two processes on one CPU went from 2100 to
2550-2650 MiB/s at 64 KiB (C pair: 3050).  Signals and other tasks wait at most that
long.  Any one-session-per-process loop (a blocking netcat sender) can use it.
"""

from __future__ import annotations

import contextlib
import os
import socket as _socket
import struct

import trio

from .pump import STREAM_ERRORS, Side, translate, translated

#: Receive size.  Python's cost is per call, not per byte, so ask for a lot at once.
CHUNK = 256 * 1024
#: ``exclusive``: longest blocking read or write before the wait is handed to Trio.
EXCLUSIVE_WAIT_MS = 10
#: ``exclusive``: calls that did not wait in Trio between two checkpoints.
EXCLUSIVE_YIELD_EVERY = 64
_TIMEVAL = struct.Struct("@ll")  # struct timeval for SO_RCVTIMEO / SO_SNDTIMEO
_NO_TIMEOUT = _TIMEVAL.pack(0, 0)


class Wire:
    """``send_all`` / ``receive_some`` for the session loops, as cheap as the stream allows.

    On a ``trio.SocketStream`` it calls ``os.readv`` / ``os.write`` on the socket's
    fd and waits with ``trio.lowlevel.wait_readable`` / ``wait_writable`` only on
    EAGAIN.  Trio's ``SocketStream`` adds a scheduler pass to every call that does
    not block; in a two-process stop-and-wait ping-pong the fd path made 1.8× the
    round trips at 1 KiB and 8 % more at 64 KiB (DESIGN.md §5: Python pays per call,
    not per byte).
    A call that does not block is then no checkpoint, so every ``YIELD_EVERY``-th one
    yields explicitly: a peer that always answers at once cannot starve other tasks
    or a Ctrl-C.  With ``exclusive``, the fd is blocking with send and receive
    timeouts of ``EXCLUSIVE_WAIT_MS`` while the wire is entered (``with wire:``; see the
    module docstring), so EAGAIN means "timed out".
    Any other stream (memory streams in tests, TLS) uses its own methods.  Failures
    become :class:`ConnectionLost` naming ``peer``.
    """

    YIELD_EVERY = 32

    def __init__(self, stream: trio.abc.Stream, peer: Side, *, exclusive: bool = False) -> None:
        self._stream = stream
        self._peer = peer
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self._unblocked = 0  # calls since the last checkpoint
        self._exclusive = exclusive and self._fd >= 0
        # Exclusive: nothing but the signal watcher waits for our checkpoints, and each
        # costs ~3 µs (a scheduler pass and an epoll_wait): 2-3 % of a 1 KiB round trip
        # at every 16th.  A signal still waits at most EXCLUSIVE_YIELD_EVERY calls of
        # at most EXCLUSIVE_WAIT_MS each (0.64 s for a peer that trickles bytes).
        self._yield_every = EXCLUSIVE_YIELD_EVERY if self._exclusive else self.YIELD_EVERY
        # One buffer for every read: a fresh 256 KiB bytes object per read cost ~12 % at
        # 64 KiB payloads.  The protocol machines copy nothing they keep past NEED_DATA.
        self._buffer = bytearray(CHUNK if self._fd >= 0 else 0)
        self._buffers = (self._buffer,)  # for readv, made once
        self._view = memoryview(self._buffer)

    @property
    def direct(self) -> bool:
        """True when the fd path is in use."""
        return self._fd >= 0

    def __enter__(self) -> Wire:
        if self._exclusive:
            assert isinstance(self._stream, trio.SocketStream)
            timeout = _TIMEVAL.pack(0, EXCLUSIVE_WAIT_MS * 1000)
            with translated(self._peer):
                for option in (_socket.SO_RCVTIMEO, _socket.SO_SNDTIMEO):
                    self._stream.socket.setsockopt(_socket.SOL_SOCKET, option, timeout)
                os.set_blocking(self._fd, True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._exclusive:  # give the stream back as Trio expects it: non-blocking
            assert isinstance(self._stream, trio.SocketStream)
            with contextlib.suppress(OSError):  # a dead socket is closed next anyway
                os.set_blocking(self._fd, False)
                for option in (_socket.SO_RCVTIMEO, _socket.SO_SNDTIMEO):
                    self._stream.socket.setsockopt(_socket.SOL_SOCKET, option, _NO_TIMEOUT)

    async def send_all(self, data: bytes) -> None:
        try:
            if self._fd < 0:
                await self._stream.send_all(data)
                return
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            if sent != len(data):
                view = memoryview(data)[sent:]
                while True:
                    await trio.lowlevel.wait_writable(self._fd)
                    self._unblocked = 0
                    try:
                        sent = os.write(self._fd, view)
                    except BlockingIOError:
                        sent = 0
                    if sent == len(view):
                        break
                    view = view[sent:]
            self._unblocked += 1
            if self._unblocked >= self._yield_every:
                await self._yield()
        except STREAM_ERRORS as exc:
            raise translate(exc, self._peer) from exc

    async def receive(self) -> bytes | bytearray | memoryview:
        """Some bytes; b"" at EOF.  A view of a buffer that the next call reuses."""
        try:
            if self._fd < 0:
                return await self._stream.receive_some(CHUNK)
            while True:
                try:
                    count = os.readv(self._fd, self._buffers)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(self._fd)
                    self._unblocked = 0
                    continue
                self._unblocked += 1
                if self._unblocked >= self._yield_every:
                    await self._yield()
                return self._view[:count]
        except STREAM_ERRORS as exc:
            raise translate(exc, self._peer) from exc

    async def _yield(self) -> None:
        self._unblocked = 0
        await trio.lowlevel.checkpoint()

"""The fast paths: ``os.splice``, ``os.sendfile`` and big reused buffers, driven by
Trio's fd waits.

Python's per-chunk cost dominates a byte pump (DESIGN.md §5: a plain Trio pump reached
~0.5× nc.openbsd here, splice through 1 MiB pipes ~1.4–2×).  So when both ends of a
direction are real fds of the right kinds, each is moved the way that measured fastest:

==========================  ===================================================
pipe → socket               ``readv`` into one reused 256 KiB buffer, ``send``
                            (see :meth:`_KernelCopy._read_send`)
regular file → socket       ``sendfile(socket, file)`` (the file offset advances,
                            as ``cat`` would advance it)
socket → pipe               ``splice(socket, pipe)``
socket → /dev/null          ``recv(MSG_TRUNC)``: TCP discards in the kernel
socket → regular file       ``recv_into`` one reused buffer, ``write`` (splice
                            into the page cache measured slower here)
socket → anything else      ``splice(socket, private pipe)`` then
(file, socket)              ``splice(private pipe, sink)``
==========================  ===================================================

Every fd involved is one we own or a non-blocking description we opened ourselves
(see ``stdio``); nothing inherited is made non-blocking.  Each loop yields to Trio at
every wait and at least every ``YIELD_EVERY`` bytes, so cancellation stays prompt.
The portable pump remains the fallback, and ``zerocopy=False`` forces it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import socket
import stat
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from .pump import Side, SinkGone, pump, translate
from .stdio import CHUNK, FdKind, FileReceiveStream, FileSendStream, fd_kind

YIELD_EVERY = 1 << 20
PIPE_SIZE = 1 << 20
SEND_BUFFER = 256 * 1024
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # Linux value
# At most this much unsent in the kernel before the socket reports writable again, per
# source kind (see ``copy``).
NOTSENT_LOWAT = {"file": 512 * 1024, "pipe": 64 * 1024}
# errnos that mean "the socket end failed" rather than the local pipe or file.
_SOCKET_ERRNOS = {errno.ECONNRESET, errno.ETIMEDOUT, errno.ENOTCONN, errno.ECONNABORTED}

OnChunk = Callable[[int], None] | None


@dataclass(frozen=True)
class FdEnd:
    fd: int
    # "socket", "pipe", "file" (a regular file as a source), "regfile" (a regular file as
    # a sink), "null" (/dev/null as a sink)
    kind: str


def classify(stream: object) -> FdEnd | None:
    """The fd behind a stream we can splice, or None for the portable path."""
    if isinstance(stream, trio.SocketStream):
        return FdEnd(stream.socket.fileno(), "socket")
    if isinstance(stream, FileSendStream):  # a regular file or /dev/null, as a sink
        fd = stream.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            # Measured here: socket -> pipe -> regular file cost 2.6 s of system time per
            # GiB against 0.6 s for recv + write (the page-cache splice path is slow on
            # this kernel/filesystem), so files are written from user space, from one
            # reused buffer (``recv_into``).  Splice into O_APPEND would fail anyway.
            return FdEnd(fd, "regfile")
        return FdEnd(fd, "null" if fd_kind(fd) is FdKind.DEVNULL else "file")
    if isinstance(stream, FileReceiveStream):
        fd = stream.fileno()
        # sendfile needs a source it can map: a regular file, not /dev/null (EINVAL).
        return FdEnd(fd, "file") if stat.S_ISREG(os.fstat(fd).st_mode) else None
    if isinstance(stream, trio.lowlevel.FdStream):
        fd = stream.fileno()
        return FdEnd(fd, "pipe") if stat.S_ISFIFO(os.fstat(fd).st_mode) else None
    return None


def _enlarge_pipe(fd: int) -> None:
    # EPERM above /proc/sys/fs/pipe-max-size for this user: keep the default size.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)


def _socket_on(fd: int) -> socket.socket:
    """A socket object for calls Trio's socket has no sync form of (``recv_into`` with
    flags, ``send`` on a view), on a dup: one made on ``fd`` itself would close it."""
    return socket.socket(fileno=os.dup(fd))


def _readable_bytes(fd: int) -> int:
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little", signed=True)
    except OSError:
        return 0


def _blame(exc: OSError, from_end: FdEnd, to_end: FdEnd, from_side: Side, to_side: Side) -> Side:
    """Which end a failed splice/sendfile between ``from_end`` and ``to_end`` is about."""
    if exc.errno == errno.EPIPE:  # the reader of what we write went away
        return to_side
    if exc.errno in _SOCKET_ERRNOS:
        return from_side if from_end.kind == "socket" else to_side
    return from_side if from_end.kind != "socket" else to_side  # the local end


async def copy(
    source: trio.abc.ReceiveStream,
    sink: trio.abc.SendStream | None,
    *,
    source_side: Side,
    sink_side: Side,
    chunk_size: int = CHUNK,
    on_chunk: OnChunk = None,
    zerocopy: bool = True,
) -> int:
    """Like :func:`pump`, through the kernel when both fds allow it."""
    if zerocopy and hasattr(os, "splice") and sink is not None:
        src, dst = classify(source), classify(sink)
        if src is not None and dst is not None and "socket" in (src.kind, dst.kind):
            lowat = NOTSENT_LOWAT.get(src.kind)
            if isinstance(sink, trio.SocketStream) and lowat is not None:
                # Wake the sender only when little is left unsent.  From a pipe, 256 KiB
                # sends with 64 KiB unsent let a receiver that reads in small pieces keep
                # up: nc.openbsd receiving from us went from 0.99x nc -> nc to 1.44x (it
                # spent 0.35 instead of 0.54 CPU-s/GB), while ncat-trio -> ncat-trio
                # stayed at 1.94x (2 GiB pipe -> TCP -> pipe, 5 alternating rounds;
                # 1 MiB / 512 KiB was the setting before).  sendfile keeps 512 KiB: 64 KiB
                # measured 8% slower there.
                with contextlib.suppress(OSError):
                    sink.setsockopt(trio.socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, lowat)
            return await _KernelCopy(src, dst, source_side, sink_side, on_chunk).run()
    return await pump(
        source, sink, source_side=source_side, sink_side=sink_side,
        chunk_size=chunk_size, on_chunk=on_chunk,
    )  # fmt: skip


@dataclass
class _KernelCopy:
    src: FdEnd
    dst: FdEnd
    source_side: Side
    sink_side: Side
    on_chunk: OnChunk
    total: int = 0

    async def run(self) -> int:
        src, dst = self.src, self.dst
        if src.kind == "pipe":
            _enlarge_pipe(src.fd)
        if dst.kind == "pipe":
            _enlarge_pipe(dst.fd)
        if src.kind == "file":  # → socket
            return await self._loop(self._sendfile, self._wait_sink)
        if src.kind == "pipe" and dst.kind == "socket":
            return await self._read_send()
        if "pipe" in (src.kind, dst.kind):  # socket → pipe
            return await self._loop(self._splice, self._wait_either)
        if dst.kind == "null" and src.kind == "socket":
            return await self._discard()
        if dst.kind == "regfile":
            return await self._recv_write()
        return await self._via_private_pipe()  # socket → file or socket

    def _splice(self) -> int:
        return os.splice(self.src.fd, self.dst.fd, PIPE_SIZE, flags=_SPLICE_FLAGS)

    def _sendfile(self) -> int:
        return os.sendfile(self.dst.fd, self.src.fd, None, PIPE_SIZE)

    async def _wait_sink(self) -> None:
        await trio.lowlevel.wait_writable(self.dst.fd)

    async def _wait_either(self) -> None:
        # EAGAIN: either the source has nothing (pipe empty / no data arrived) or the
        # sink is full.  FIONREAD tells which, without polling both.
        if _readable_bytes(self.src.fd) == 0:
            await trio.lowlevel.wait_readable(self.src.fd)
        else:
            await trio.lowlevel.wait_writable(self.dst.fd)

    async def _loop(
        self,
        step: Callable[[], int],
        wait: Callable[[], Awaitable[None]],
        after: Callable[[int], Awaitable[None]] | None = None,
        ends: tuple[FdEnd, FdEnd, Side, Side] | None = None,
    ) -> int:
        src, dst, from_side, to_side = ends or (
            self.src,
            self.dst,
            self.source_side,
            self.sink_side,
        )
        unyielded = 0
        while True:
            try:
                n = step()
            except BlockingIOError:
                await wait()
                unyielded = 0
                continue
            except OSError as exc:
                if self._nothing_lost(exc, src, dst):
                    raise SinkGone(
                        to_side.name, "its reader left; nothing received was unwritten"
                    ) from exc
                raise translate(exc, _blame(exc, src, dst, from_side, to_side)) from exc
            if n == 0:
                await trio.lowlevel.checkpoint()
                return self.total
            if after is not None:
                await after(n)
            self.total += n
            if self.on_chunk is not None:
                self.on_chunk(n)
            unyielded += n
            if unyielded >= YIELD_EVERY:
                unyielded = 0
                await trio.lowlevel.checkpoint()

    @staticmethod
    def _nothing_lost(exc: OSError, src: FdEnd, dst: FdEnd) -> bool:
        """EPIPE from splice socket → pipe with nothing queued on the socket: the reader
        left after taking everything we received.  The kernel checks the pipe's readers
        before it takes any bytes from the socket (fs/splice.c, ``wait_for_space``), so a
        failed splice moved nothing, and FIONREAD counts what is still unread (a FIN
        counts nothing).  Bytes already in the stdout pipe were written: the reader
        chose not to read them."""
        return (
            exc.errno == errno.EPIPE
            and (src.kind, dst.kind) == ("socket", "pipe")
            and _readable_bytes(src.fd) == 0
        )

    async def _wait_source(self) -> None:
        await trio.lowlevel.wait_readable(self.src.fd)

    async def _write_all(
        self, write: Callable[[memoryview], int], view: memoryview, n: int
    ) -> None:
        """``write`` the first ``n`` bytes of ``view`` to the sink, waiting while it is full."""
        done = 0
        while done < n:
            try:
                done += write(view[done:n])
            except BlockingIOError:  # a socket sink; a regular file never says EAGAIN
                await trio.lowlevel.wait_writable(self.dst.fd)
            except OSError as exc:
                raise translate(exc, self.sink_side) from exc

    async def _discard(self) -> int:
        """socket → /dev/null: with ``MSG_TRUNC`` a TCP socket drops what it has queued
        without copying it anywhere (tcp(7)); the count is all that is kept.  The
        buffer is never written, so its pages are never touched."""
        sock = _socket_on(self.src.fd)
        buffer = bytearray(PIPE_SIZE)

        def discard() -> int:
            return sock.recv_into(buffer, PIPE_SIZE, socket.MSG_TRUNC)

        with sock:
            return await self._loop(discard, self._wait_source)

    async def _read_send(self) -> int:
        """pipe → socket through one reused 256 KiB buffer.

        Splicing the pipe's pages into the socket measured slower here than copying
        them: a spliced segment carries one 4 KiB page per fragment, a copied one large
        page fragments, and every receiver handles the latter more cheaply.  2 GiB pipe
        → TCP → pipe, 5 alternating rounds, the same receiver: 2.02 GB/s copied (1 MiB
        reads) against 1.61 spliced; nc.openbsd as the receiver spent 0.39 CPU-s/GB on
        our copied stream against 0.68 on the spliced one, at 1.24× the speed."""
        sock = _socket_on(self.dst.fd)
        buffer = bytearray(SEND_BUFFER)

        def read() -> int:
            return os.readv(self.src.fd, [buffer])

        with sock:
            send = functools.partial(self._write_all, sock.send, memoryview(buffer))
            return await self._loop(read, self._wait_source, send)

    async def _recv_write(self) -> int:
        """socket → regular file through one reused buffer.  A fresh 256 KiB ``bytes``
        per read (the portable pump) made glibc grow and trim its heap for every chunk,
        and the kernel fault the pages in again: 3× nc's CPU per GB, measured here."""
        sock = _socket_on(self.src.fd)
        buffer = bytearray(CHUNK)
        write = functools.partial(os.write, self.dst.fd)

        def receive() -> int:
            return sock.recv_into(buffer)

        with sock:
            put = functools.partial(self._write_all, write, memoryview(buffer))
            return await self._loop(receive, self._wait_source, put)

    async def _via_private_pipe(self) -> int:
        """socket → private pipe → sink: at most PIPE_SIZE bytes in flight, in the kernel."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _enlarge_pipe(w)
        inner = FdEnd(w, "pipe")

        def fill() -> int:
            return os.splice(self.src.fd, w, PIPE_SIZE, flags=_SPLICE_FLAGS)

        async def drain(n: int) -> None:
            while n:
                try:
                    n -= os.splice(r, self.dst.fd, n, flags=_SPLICE_FLAGS)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.dst.fd)
                except OSError as exc:
                    raise translate(exc, self.sink_side) from exc

        try:
            return await self._loop(
                fill,
                self._wait_source,
                drain,
                (self.src, inner, self.source_side, self.source_side),
            )
        finally:
            os.close(r)
            os.close(w)

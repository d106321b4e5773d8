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
The portable pump remains the fallback, and ``zerocopy=False`` forces it.  The relay's
socket → socket is that same private-pipe loop (:func:`splice_sockets`, :class:`PipeHooks`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import select
import socket
import stat
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from ..errors import OutOfResources
from .pump import Side, SinkGone, describe_failure, pump, translate
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
# ``exclusive`` (one session per process: the CLI's connect/listen without -k): the
# pipe → socket copy waits in poll(2) for at most this long before the wait goes to
# Trio, and yields at least every EXCLUSIVE_YIELD_SECONDS and EXCLUSIVE_YIELD_EVERY bytes.
EXCLUSIVE_WAIT_MS = 10
EXCLUSIVE_YIELD_SECONDS = 0.02
EXCLUSIVE_YIELD_EVERY = 8 << 20
_INCOMING = select.POLLIN | getattr(select, "POLLRDHUP", 0x2000)  # Linux value
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


def _socket_on(fd: int, side: Side) -> socket.socket:
    """A socket object for calls Trio's socket has no sync form of (``recv_into`` with
    flags, ``send`` on a view), on a dup: one made on ``fd`` itself would close it.
    A failed dup (EMFILE and friends) is :class:`OutOfResources` for ``side``'s
    connection (a server drops that client only)."""
    try:
        return socket.socket(fileno=os.dup(fd))
    except OSError as exc:
        raise OutOfResources(side.name, describe_failure(exc)) from exc


def _readable_bytes(fd: int) -> int:
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little", signed=True)
    except OSError:
        return 0


def _blame(exc: OSError, from_end: FdEnd, from_side: Side, to_side: Side) -> Side:
    """Which side a failed splice/sendfile from ``from_end`` is about."""
    if exc.errno == errno.EPIPE:  # the reader of what we write went away
        return to_side
    if exc.errno in _SOCKET_ERRNOS:
        return from_side if from_end.kind == "socket" else to_side
    return from_side if from_end.kind != "socket" else to_side  # the local end


class _Ready:
    """``poll(2)`` waits for a copy loop that owns its thread (``exclusive``).

    A wait of at most ``EXCLUSIVE_WAIT_MS`` sleeps in the kernel.  It answers False, and
    the caller waits in Trio instead, when it times out, when it comes
    ``EXCLUSIVE_YIELD_SECONDS`` after the loop last yielded, or when data has arrived on
    the socket for the other direction (whose task only Trio runs: without this, two
    ncat-trio sending to each other at once took 1.36× as long).  So Trio (signals,
    cancellation, the progress display, the other direction) runs at least that often.
    Once only the peer's FIN is left to read, incoming data is no longer watched (the
    FIN stays readable: watching it would end every poll at once)."""

    def __init__(self, source_fd: int, sink_fd: int) -> None:
        self._source, self._sink = source_fd, sink_fd
        self._in = select.poll()
        self._in.register(source_fd, select.POLLIN)
        self._in.register(sink_fd, _INCOMING)
        self._out = select.poll()
        self._out.register(sink_fd, select.POLLOUT | _INCOMING)
        self._watching = True
        self._since = time.monotonic()

    def checkpointed(self) -> None:
        self._since = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._since >= EXCLUSIVE_YIELD_SECONDS

    def readable(self) -> bool:
        """The source pipe has data (or EOF, or an error for the read to report)."""
        return self._wait(self._in, self._source)

    def writable(self) -> bool:
        """The socket has room (or an error for the send to report)."""
        return self._wait(self._out, self._sink)

    def _wait(self, poller: select.poll, fd: int) -> bool:
        while not self.due():
            events = dict(poller.poll(EXCLUSIVE_WAIT_MS))
            if not events:
                return False
            incoming = events.get(self._sink, 0) & _INCOMING if self._watching else 0
            if incoming:
                if incoming & select.POLLRDHUP and _readable_bytes(self._sink) == 0:
                    self._watching = False  # only the FIN: the other direction reads it
                    self._in.unregister(self._sink)
                    self._out.modify(self._sink, select.POLLOUT)
                    continue
                return False
            if fd == self._source:
                return fd in events  # a socket error alone is the other direction's
            return True
        return False


async def copy(
    source: trio.abc.ReceiveStream,
    sink: trio.abc.SendStream | None,
    *,
    source_side: Side,
    sink_side: Side,
    chunk_size: int = CHUNK,
    on_chunk: OnChunk = None,
    zerocopy: bool = True,
    exclusive: bool = False,
) -> int:
    """Like :func:`pump`, through the kernel when both fds allow it.

    ``exclusive=True`` says nothing else in this thread needs to run more often than
    every ~30 ms (one session per process): the pipe → socket copy may then wait in
    ``poll(2)`` rather than in Trio (:meth:`_KernelCopy._read_send`)."""
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
            return await _KernelCopy(
                src, dst, source_side, sink_side, on_chunk, exclusive=exclusive
            ).run()
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
    exclusive: bool = False

    async def run(self) -> int:
        src, dst = self.src, self.dst
        if src.kind == "pipe":
            _enlarge_pipe(src.fd)
        if dst.kind == "pipe":
            _enlarge_pipe(dst.fd)
        if src.kind == "file":  # → socket
            sendfile = functools.partial(os.sendfile, dst.fd, src.fd, None, PIPE_SIZE)
            return await self._loop(sendfile, self._wait_sink)
        if src.kind == "pipe" and dst.kind == "socket":
            return await self._read_send()
        if "pipe" in (src.kind, dst.kind):  # socket → pipe
            splice = functools.partial(os.splice, src.fd, dst.fd, PIPE_SIZE, flags=_SPLICE_FLAGS)
            return await self._loop(splice, self._wait_either)
        if dst.kind == "null" and src.kind == "socket":
            return await self._discard()
        if dst.kind == "regfile":
            return await self._recv_write()
        # socket → private pipe → file or socket: at most PIPE_SIZE bytes in flight
        ends = (src.fd, dst.fd, self.source_side, self.sink_side)
        return (await _through_pipe(*ends, PIPE_SIZE, self.on_chunk, None, fallback=False)).moved

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
    ) -> int:
        unyielded = 0
        while True:
            try:
                n = step()
            except BlockingIOError:
                await wait()
                unyielded = 0
                continue
            except OSError as exc:
                if self._nothing_lost(exc, self.src, self.dst):
                    raise SinkGone(
                        self.sink_side.name, "its reader left; nothing received was unwritten"
                    ) from exc
                blame = _blame(exc, self.src, self.source_side, self.sink_side)
                raise translate(exc, blame) from exc
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
        sock = _socket_on(self.src.fd, self.source_side)
        discard = functools.partial(
            sock.recv_into, bytearray(PIPE_SIZE), PIPE_SIZE, socket.MSG_TRUNC
        )
        with sock:
            return await self._loop(discard, self._wait_source)

    async def _read_send(self) -> int:
        """pipe → socket through one reused 256 KiB buffer.

        Splicing the pipe's pages into the socket measured slower here than copying
        them: a spliced segment carries one 4 KiB page per fragment, a copied one large
        page fragments, and every receiver handles the latter more cheaply.  2 GiB pipe
        → TCP → pipe, 5 alternating rounds, the same receiver: 2.02 GB/s copied (1 MiB
        reads) against 1.61 spliced; nc.openbsd as the receiver spent 0.39 CPU-s/GB on
        our copied stream against 0.68 on the spliced one, at 1.24× the speed.
        (Kernel 6.18.44-fc-v1300: splice cut the sender's own CPU, but summed over both
        ends it tied with copying into ncat-trio and nc.openbsd, and ncat-trio → ncat-trio
        ran slower: the cost moved to the receiver; benchmarks/NOTES.md.)

        One flat loop, no coroutine or closure per chunk.  With ``exclusive`` (one
        session per process) a wait is first a ``poll(2)`` of at most
        ``EXCLUSIVE_WAIT_MS`` in the kernel, as a blocking ``write`` would sleep, and
        only one that times out goes to Trio; a short send goes straight to that poll
        (the buffer is full: it returns at once if room was made meanwhile).  Trio's wait
        (epoll re-arm, a scheduler pass, the task's wake-up) cost more CPU than a poll;
        without ``exclusive`` a short send is retried first, and only EAGAIN waits in
        Trio (benchmarks/NOTES.md).  No fd's flags change."""
        sock = _socket_on(self.dst.fd, self.sink_side)
        buffer = bytearray(SEND_BUFFER)
        view = memoryview(buffer)
        buffers = [buffer]
        src_fd, dst_fd = self.src.fd, self.dst.fd
        on_chunk = self.on_chunk
        ready = _Ready(src_fd, dst_fd) if self.exclusive else None
        yield_every = EXCLUSIVE_YIELD_EVERY if ready is not None else YIELD_EVERY
        unyielded = 0
        with sock:
            send = sock.send
            while True:
                try:
                    n = os.readv(src_fd, buffers)
                except BlockingIOError:
                    if ready is None or not ready.readable():
                        await trio.lowlevel.wait_readable(src_fd)
                        unyielded = 0
                        if ready is not None:
                            ready.checkpointed()
                    continue
                except OSError as exc:
                    blame = _blame(exc, self.src, self.source_side, self.sink_side)
                    raise translate(exc, blame) from exc
                if n == 0:
                    await trio.lowlevel.checkpoint()
                    return self.total
                done = 0
                try:
                    while True:
                        try:
                            done += send(view[done:n])
                            if done == n:
                                break
                            if ready is None:  # Trio waits cost more than a send that fails
                                continue
                        except BlockingIOError:
                            pass
                        if ready is None or not ready.writable():
                            await trio.lowlevel.wait_writable(dst_fd)
                            unyielded = 0
                            if ready is not None:
                                ready.checkpointed()
                except OSError as exc:
                    raise translate(exc, self.sink_side) from exc
                self.total += n
                if on_chunk is not None:
                    on_chunk(n)
                unyielded += n
                if unyielded >= yield_every or (ready is not None and ready.due()):
                    unyielded = 0
                    await trio.lowlevel.checkpoint()
                    if ready is not None:
                        ready.checkpointed()

    async def _recv_write(self) -> int:
        """socket → regular file through one reused buffer.  A fresh 256 KiB ``bytes``
        per read (the portable pump) made glibc grow and trim its heap for every chunk,
        and the kernel fault the pages in again: 3× nc's CPU per GB, measured here."""
        sock = _socket_on(self.src.fd, self.source_side)
        buffer = bytearray(CHUNK)
        write = functools.partial(os.write, self.dst.fd)
        with sock:
            put = functools.partial(self._write_all, write, memoryview(buffer))
            receive = functools.partial(sock.recv_into, buffer)
            return await self._loop(receive, self._wait_source, put)


class PipeHooks(Protocol):
    """How the caller of :func:`splice_sockets` steers and meters it, chunk by chunk.

    ``stopped()`` is asked before every splice into the empty pipe, with no checkpoint
    in between: what another task changes is seen before another byte is taken."""

    def stopped(self) -> bool: ...  # True: end here, the pipe is empty; the caller goes on
    def hold(self, nbytes: int) -> None: ...  # nbytes are in the pipe, for the sink
    def release(self, nbytes: int) -> None: ...  # they left it: delivered, or the sink failed


@dataclass(frozen=True)
class Spliced:
    moved: int  # bytes delivered to the sink
    at_eof: bool  # False: PipeHooks.stopped() said so, or no pipe was to be had


async def splice_sockets(
    source: trio.abc.ReceiveStream,
    sink: trio.abc.SendStream,
    *,
    source_side: Side,
    sink_side: Side,
    chunk_size: int,
    on_chunk: OnChunk,
    hooks: PipeHooks,
) -> Spliced:
    """socket → private pipe → socket with at most ``chunk_size`` bytes in flight, until
    EOF or ``hooks.stopped()``.  Nothing is done unless both streams are sockets and a
    pipe of ``chunk_size`` is to be had: the caller's pump then does it all."""
    src, dst = classify(source), classify(sink)
    if not (src and dst and src.kind == dst.kind == "socket" and hasattr(os, "splice")):
        return Spliced(0, at_eof=False)
    ends = (src.fd, dst.fd, source_side, sink_side)
    return await _through_pipe(*ends, chunk_size, on_chunk, hooks, fallback=True)


async def _through_pipe(
    src_fd: int,
    dst_fd: int,
    source_side: Side,
    sink_side: Side,
    chunk: int,
    on_chunk: OnChunk,
    hooks: PipeHooks | None,
    *,
    fallback: bool,
) -> Spliced:
    """The one splice loop through a private pipe: fill it with at most ``chunk`` bytes,
    drain it, repeat.  A failed read is ``source_side``'s, a failed write ``sink_side``'s.
    ``fallback``: the caller has a pump, so no pipe (out of fds) or none of ``chunk`` bytes
    (fs.pipe-user-pages-soft) returns at once; else no pipe is :class:`OutOfResources`."""
    try:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if fallback:
            return Spliced(0, at_eof=False)
        raise OutOfResources(source_side.name, describe_failure(exc)) from exc
    try:
        try:
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, chunk)
        except OSError:  # EPERM above pipe-max-size: without fallback, keep the default
            if fallback:
                return Spliced(0, at_eof=False)
        moved = unyielded = 0
        while hooks is None or not hooks.stopped():  # every await comes before this
            try:
                n = os.splice(src_fd, write_end, chunk, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(src_fd)
                unyielded = 0
                continue
            except OSError as exc:
                raise translate(exc, source_side) from exc
            if n == 0:
                await trio.lowlevel.checkpoint()
                return Spliced(moved, at_eof=True)
            if hooks is not None:
                hooks.hold(n)
            try:
                left = n
                while left:
                    try:
                        left -= os.splice(read_end, dst_fd, left, flags=_SPLICE_FLAGS)
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(dst_fd)
                        unyielded = 0
                    except OSError as exc:
                        raise translate(exc, sink_side) from exc
            finally:
                if hooks is not None:
                    hooks.release(n)
            moved += n
            if on_chunk is not None:
                on_chunk(n)
            unyielded += n
            if unyielded >= YIELD_EVERY:
                unyielded = 0
                await trio.lowlevel.checkpoint()
        return Spliced(moved, at_eof=False)
    finally:
        os.close(read_end)
        os.close(write_end)

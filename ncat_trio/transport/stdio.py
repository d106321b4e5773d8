"""Stdin and stdout as Trio streams, without ever touching an inherited description.

``O_NONBLOCK`` lives on the open file description, which fds 0/1/2 share with the
terminal and the rest of a pipeline; ``os.dup`` shares it too.  Setting it on fd 0
makes a concurrent ``cat`` fail with EAGAIN and makes ``print`` lose lines on a TTY
(DESIGN.md §4, checked on these machines).  So each kind of fd gets its own path:

=============  ==============================================================
pipe / FIFO    reopen ``/proc/self/fd/N``: a *new* description, non-blocking,
               driven by ``trio.lowlevel.FdStream``
TTY            reopen ``os.ttyname(N)`` (new description), same
regular file   plain ``os.read``/``os.write`` on the fd: they never block
               (and ``wait_readable`` on a regular file fails with EPERM)
/dev/null      like a regular file
anything else  (sockets, other devices, a failed reopen): blocking I/O in a
               worker thread; reads run in their own task feeding a one-slot
               channel, because an abandoned, cancelled read still consumes data
=============  ==============================================================
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

#: Default bytes per read: Python's per-chunk cost dominates, so move big chunks.
CHUNK = 256 * 1024


class FdKind(enum.Enum):
    PIPE = "pipe"
    TTY = "tty"
    REGULAR = "regular"
    DEVNULL = "devnull"
    OTHER = "other"  # sockets, other character devices, unknown


def fd_kind(fd: int) -> FdKind:
    """Classify an fd for choosing its I/O path."""
    st = os.fstat(fd)
    if stat.S_ISFIFO(st.st_mode):
        return FdKind.PIPE
    if stat.S_ISREG(st.st_mode):
        return FdKind.REGULAR
    if stat.S_ISCHR(st.st_mode):
        if os.isatty(fd):
            return FdKind.TTY
        try:
            if st.st_rdev == os.stat(os.devnull).st_rdev:
                return FdKind.DEVNULL
        except OSError:
            pass
    return FdKind.OTHER


def bytes_left(fd: int = 0) -> int | None:
    """Bytes from the offset to the end of a regular file on ``fd`` (a progress
    percentage for a file on stdin), else None."""
    if fd_kind(fd) is not FdKind.REGULAR:
        return None
    return max(0, os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR))


def _reopen(fd: int, kind: FdKind, flags: int) -> int | None:
    """A new, non-blocking description of the same pipe or terminal, or None."""
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        if kind is FdKind.PIPE:
            return os.open(f"/proc/self/fd/{fd}", flags)
        if kind is FdKind.TTY:
            return os.open(os.ttyname(fd), flags)
    except OSError:
        # ENXIO: a FIFO with no reader left; EACCES/ENOENT: no /proc or no permission.
        return None
    return None


class _FileEnd:
    """An fd that never blocks (regular file, /dev/null).  Does not own the fd."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class FileReceiveStream(_FileEnd, trio.abc.ReceiveStream):
    """Reads an fd that never blocks (regular file, /dev/null)."""

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        try:
            return os.read(self._fd, max_bytes or CHUNK)
        except OSError as exc:
            raise trio.BrokenResourceError(f"read failed: {exc.strerror}") from exc


class FileSendStream(_FileEnd, trio.abc.SendStream):
    """Writes an fd that never blocks (regular file, /dev/null)."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        with memoryview(data) as view:
            while view:
                try:
                    written = os.write(self._fd, view)
                except OSError as exc:
                    raise trio.BrokenResourceError(f"write failed: {exc.strerror}") from exc
                view = view[written:]

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()


class _ChannelReceiveStream(trio.abc.ReceiveStream):
    """The consumer side of a threaded reader: chunks, then b"" for EOF, or its error."""

    def __init__(self, channel: trio.MemoryReceiveChannel[bytes | OSError]) -> None:
        self._channel = channel
        self._eof = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._eof:
            await trio.lowlevel.checkpoint()
            return b""
        try:
            item = await self._channel.receive()
        except trio.EndOfChannel:
            item = b""
        if isinstance(item, OSError):
            raise trio.BrokenResourceError(f"read failed: {item.strerror}") from item
        if not item:
            self._eof = True
        return item

    async def aclose(self) -> None:
        await self._channel.aclose()


async def _read_in_thread(fd: int, channel: trio.MemorySendChannel[bytes | OSError]) -> None:
    # Cancelling this task abandons a read in flight; its data is lost, which is only
    # acceptable because the task is cancelled solely when the whole session ends.
    async with channel:
        while True:
            try:
                data = await trio.to_thread.run_sync(os.read, fd, CHUNK, abandon_on_cancel=True)
            except OSError as exc:
                await channel.send(exc)
                return
            await channel.send(data)
            if not data:
                return


class ThreadSendStream(trio.abc.SendStream):
    """Blocking writes in a worker thread, for fds we may not make non-blocking."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as view:
            while view:
                try:
                    written = await trio.to_thread.run_sync(
                        os.write, self._fd, view, abandon_on_cancel=True
                    )
                except OSError as exc:
                    raise trio.BrokenResourceError(f"write failed: {exc.strerror}") from exc
                view = view[written:]
            await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def open_stdin(fd: int = 0) -> AsyncIterator[trio.abc.ReceiveStream]:
    """Stdin as a ReceiveStream (``b""`` = EOF), safe for every kind of fd."""
    kind = fd_kind(fd)
    if kind in (FdKind.REGULAR, FdKind.DEVNULL):
        yield FileReceiveStream(fd)
        return
    new_fd = _reopen(fd, kind, os.O_RDONLY)
    if new_fd is not None:
        async with trio.lowlevel.FdStream(new_fd) as stream:
            yield stream
        return
    send, receive = trio.open_memory_channel[bytes | OSError](1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_in_thread, fd, send)
        try:
            yield _ChannelReceiveStream(receive)
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_stdout(fd: int = 1) -> AsyncIterator[trio.abc.SendStream]:
    """Stdout as a SendStream, safe for every kind of fd.  Never closes fd ``fd`` itself."""
    kind = fd_kind(fd)
    if kind in (FdKind.REGULAR, FdKind.DEVNULL):
        yield FileSendStream(fd)
        return
    new_fd = _reopen(fd, kind, os.O_WRONLY)
    if new_fd is not None:
        async with trio.lowlevel.FdStream(new_fd) as stream:
            yield stream
        return
    yield ThreadSendStream(fd)

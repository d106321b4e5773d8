"""send / receive: one file over one TCP connection, verified end to end.

The wire format is :mod:`ncat_trio.proto.transfer` (PROTOCOL.md).  This module does
the I/O around it:

* The sender hashes (sha256) in the same pass as it reads and sends, sends the
  digest in the trailer, half-closes, and succeeds only when the receiver's Ack
  arrives.  EOF or a reset before the Ack is :class:`ConnectionLost` (exit 3): the
  sender cannot know whether the file arrived.  A Failure from the receiver makes
  the sender exit with the receiver's code (5, 6 or 7).
* The receiver writes to a temporary name in the target's directory, hashing in
  the same pass; after the trailer it compares digests, fsyncs, sets mode and
  mtime, renames into place (never over an existing file without ``force``),
  fsyncs the directory, and only then sends the Ack.  A failed transfer never
  leaves a file under the real name.
* ``resume``: the partial file has a fixed name (``.NAME.ncat-trio-partial``) and
  is kept when a transfer is cut; next time its length and the sha256 of its
  content are offered, and a sender whose file starts with the same bytes skips
  them.

The byte loops are plain ``os.pread``/``send_all`` and ``receive_some``/``os.write``
with large chunks; :meth:`SendSession._send_file_body` is the one place a
``sendfile`` path would go (the digest would then need its own read of the page
cache, e.g. through ``mmap``).  Session classes take a stream, so tests drive them
over memory streams.

Hashing is inline, in the same pass as the I/O.  Measured here (2 cores, 1 GiB on
tmpfs, benchmarks/bench_transfer.py, two A/B runs each): inline 0.83–0.84 GB/s;
a worker thread hashing one 256 KiB+ batch behind the I/O (hashlib drops the GIL)
0.73–0.74 GB/s and +0.1–0.2 CPU s/GB per end, because both cores are already busy
with the two processes.  sha256 costs ~0.48 CPU s/GB per end here (2.06 GB/s).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import secrets
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar

import trio

from .. import diag, runner
from ..errors import (
    ConnectionLost,
    ExitCode,
    IntegrityError,
    LocalIOError,
    LocalProtocolError,
    NcatError,
    NcatTimeout,
    RemoteProtocolError,
    UsageError,
)
from ..json_summary import append_json
from ..proto import transfer as wire
from ..transport import net, serve
from ..transport.idle import IdleWatch, WatchedStream
from ..transport.pump import Side, describe_failure, translate
from ..transport.stdio import FdKind, fd_kind, open_stdin, open_stdout

#: Bytes per read and per send: big chunks, because Python's per-chunk cost dominates
#: (DESIGN.md §5); 1 MiB measured best here (benchmarks/bench_transfer.py).
CHUNK = 1 << 20
#: After the last message, how long to wait for the peer's EOF before closing anyway.
LINGER = 5.0
#: How long the receiver may spend delivering its Ack (shielded from a late signal).
ACK_TIMEOUT = 1.0
#: Suffix of the fixed-name partial file that ``--resume`` keeps and continues.
PARTIAL_SUFFIX = ".ncat-trio-partial"
TEMP_SUFFIX = ".ncat-trio-tmp"

_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_E = TypeVar("_E", covariant=True)  # the events of one protocol machine (_EventReader)


# ---------------------------------------------------------------- options and results


@dataclass(frozen=True)
class FileSource:
    """A regular file: its size is known and a resume can re-read its prefix.

    ``start`` is the file offset of the first byte to send (stdin redirected from a
    file may already be part-way through it).  The fd is not owned.
    """

    fd: int
    name: str
    size: int
    mode: int = 0o644
    mtime_ns: int | None = None
    start: int = 0


@dataclass(frozen=True)
class StreamSource:
    """A pipe or other stream: size unknown (chunked on the wire), never resumed."""

    stream: trio.abc.ReceiveStream
    name: str
    mode: int = 0o666


Source = FileSource | StreamSource


@dataclass(frozen=True)
class ReceiveTarget:
    """Where a received file goes and what the receiver may do there."""

    output: str | None = None  # None: the current directory; "-": stdout; else FILE or DIR
    force: bool = False  # replace an existing file
    resume: bool = False  # keep a partial file when cut; offer it next time


@dataclass(frozen=True)
class TransferResult:
    """One finished, verified transfer."""

    name: str
    size: int  # the whole file
    sha256: str  # hex
    resumed_from: int  # bytes that were already there (0: a full transfer)
    bytes_moved: int  # data bytes that crossed the connection this time
    seconds: float
    path: str | None = None  # receiver: where the file now is (None: stdout)


@dataclass(frozen=True)
class TransferStatistics:
    """Live counters, for ``--progress``."""

    name: str | None
    size: int | None  # None: unknown (a stream)
    done: int  # bytes of the file handled so far, a resumed prefix included
    moved: int  # data bytes that crossed the connection


class _Proto(Protocol[_E]):
    def receive_data(self, data: bytes | bytearray | memoryview) -> None: ...

    def next_event(self) -> _E | wire.NeedData: ...


class _EventReader(Generic[_E]):
    """Pulls events from a protocol object, reading the connection when it needs data."""

    def __init__(
        self, conn: trio.abc.ReceiveStream, proto: _Proto[_E], side: Side, chunk: int
    ) -> None:
        self._conn = conn
        self._proto = proto
        self._side = side
        self._chunk = chunk

    async def next(self) -> _E:
        while True:
            event = self._proto.next_event()
            if event is not wire.NEED_DATA:
                return event
            try:
                data = await self._conn.receive_some(self._chunk)
            except _STREAM_ERRORS as exc:
                raise translate(exc, self._side) from exc
            self._proto.receive_data(data)


def _local_work(idle: IdleWatch | None) -> contextlib.AbstractContextManager[None]:
    """Hashing and fsync are not the connection's silence (``-i``)."""
    return idle.paused() if idle is not None else contextlib.nullcontext()


async def _send_bytes(conn: trio.abc.SendStream, data: bytes, side: Side) -> None:
    if not data:
        return
    try:
        await conn.send_all(data)
    except _STREAM_ERRORS as exc:
        raise translate(exc, side) from exc


async def _half_close(conn: trio.abc.HalfCloseableStream, side: Side) -> None:
    try:
        await conn.send_eof()
    except _STREAM_ERRORS as exc:
        raise translate(exc, side) from exc


async def _drain_until_eof(conn: trio.abc.ReceiveStream, seconds: float) -> bool:
    """Read and discard until EOF (True) or ``seconds`` pass / the connection fails."""
    with trio.move_on_after(seconds):
        try:
            while await conn.receive_some(CHUNK):
                pass
        except _STREAM_ERRORS:
            return False
        return True
    return False


def _first_failure(
    failure: list[NcatError], work: Callable[[], Awaitable[None]], scope: trio.CancelScope
) -> Callable[[], Awaitable[None]]:
    """Wrap ``work`` so its NcatError is recorded (first one wins) and ends its siblings."""

    async def run() -> None:
        try:
            await work()
        except NcatError as exc:
            if not failure:
                failure.append(exc)
            scope.cancel()

    return run


def _failure_error(failure: wire.Failure, name: str) -> NcatError:
    """The sender's error for a receiver's Failure: same exit code as the receiver's."""
    cls: type[NcatError] = {
        ExitCode.LOCAL_IO: LocalIOError,
        ExitCode.PROTOCOL: LocalProtocolError,
        ExitCode.INTEGRITY: IntegrityError,
    }[failure.code]
    # The reason is the receiver's text: the wire refuses C0 controls, not C1 or bidi marks.
    return cls(f"receiver did not accept {name!r}", diag.printable(failure.reason))


# ---------------------------------------------------------------- sending


class SendSession:
    """Send one file over ``conn``; :meth:`run` returns only after the receiver's Ack."""

    _events: _EventReader[wire.FromReceiver]

    def __init__(
        self,
        conn: trio.abc.HalfCloseableStream,
        source: Source,
        *,
        chunk_size: int = CHUNK,
        peer_name: str = "receiver",
        idle: IdleWatch | None = None,
    ) -> None:
        self._conn = conn
        self._idle = idle
        self._source = source
        self._chunk = chunk_size
        self._peer = Side(peer_name, local=False)
        self._proto = wire.TransferSender()
        self._events = _EventReader(conn, self._proto, self._peer, 4096)
        self._done = 0
        self._moved = 0
        self._ack: wire.Ack | None = None

    def statistics(self) -> TransferStatistics:
        size = self._source.size if isinstance(self._source, FileSource) else None
        return TransferStatistics(self._source.name, size, self._done, self._moved)

    async def run(self) -> TransferResult:
        source = self._source
        began = trio.current_time()
        size = source.size if isinstance(source, FileSource) else None
        mtime = source.mtime_ns if isinstance(source, FileSource) else None
        header = wire.Header(source.name, size, source.mode & 0o7777, mtime)
        await _send_bytes(self._conn, self._proto.send(header), self._peer)
        event = await self._events.next()
        if isinstance(event, wire.Failure):
            raise _failure_error(event, source.name)
        assert isinstance(event, wire.Offer)
        with _local_work(self._idle):
            hasher, offset = await self._match_prefix(event)
        self._done = offset
        await _send_bytes(self._conn, self._proto.send(wire.Start(offset)), self._peer)

        failure: list[NcatError] = []
        async with trio.open_nursery() as nursery:
            scope = nursery.cancel_scope
            nursery.start_soon(_first_failure(failure, lambda: self._send_body(hasher), scope))
            nursery.start_soon(_first_failure(failure, self._await_ack, scope))
        if failure:
            raise failure[0]
        assert self._ack is not None
        return TransferResult(
            name=source.name,
            size=self._ack.size,
            sha256=self._ack.sha256.hex(),
            resumed_from=offset,
            bytes_moved=self._moved,
            seconds=trio.current_time() - began,
        )

    async def _match_prefix(self, offer: wire.Offer) -> tuple[hashlib._Hash, int]:
        """Hash the offered prefix of our file; skip it if the receiver has the same bytes."""
        source = self._source
        if offer.offset == 0:
            return hashlib.sha256(), 0
        if isinstance(source, StreamSource):
            diag.say(f"receiver offers to resume at {offer.offset} bytes; a stream restarts at 0")
            return hashlib.sha256(), 0
        prefix = await trio.to_thread.run_sync(
            _hash_range, source.fd, source.start, offer.offset, self._chunk
        )
        if prefix is not None and prefix.digest() == offer.prefix_sha256:
            diag.say(f"resuming {source.name!r} at {offer.offset} bytes (prefix sha256 matches)")
            return prefix, offer.offset
        diag.say(f"receiver's partial {source.name!r} differs from this file: sending it all")
        return hashlib.sha256(), 0

    async def _send_body(self, hasher: hashlib._Hash) -> None:
        if isinstance(self._source, FileSource):
            total = await self._send_file_body(self._source, hasher)
        else:
            total = await self._send_stream_body(self._source, hasher)
        trailer = wire.Trailer(total, hasher.digest())
        await _send_bytes(self._conn, self._proto.send(trailer), self._peer)
        await _half_close(self._conn, self._peer)

    async def _send_file_body(self, source: FileSource, hasher: hashlib._Hash) -> int:
        """pread → sha256 → send_all, from the Start offset to the announced size.

        This is where a zero-copy ``os.sendfile`` path would slot in: the data bytes
        are raw on the wire, so only the hashing would still need to read them.
        """
        position = self._proto.offset
        while position < source.size:
            want = min(self._chunk, source.size - position)
            try:
                data = os.pread(source.fd, want, source.start + position)
            except OSError as exc:
                raise LocalIOError(f"read {source.name!r}", describe_failure(exc)) from exc
            if not data:
                raise LocalIOError(
                    f"read {source.name!r}",
                    f"the file shrank while being sent ({position} of {source.size} bytes)",
                )
            hasher.update(data)
            await _send_bytes(self._conn, self._proto.send(wire.Data(data)), self._peer)
            position += len(data)
            self._done = position
            self._moved += len(data)
        return position

    async def _send_stream_body(self, source: StreamSource, hasher: hashlib._Hash) -> int:
        side = Side(f"read {source.name!r}", local=True)
        total = 0
        while True:
            try:
                data = await source.stream.receive_some(self._chunk)
            except _STREAM_ERRORS as exc:
                raise translate(exc, side) from exc
            if not data:
                return total
            hasher.update(data)
            await _send_bytes(self._conn, self._proto.send(wire.Data(bytes(data))), self._peer)
            total += len(data)
            self._done = total
            self._moved += len(data)

    async def _await_ack(self) -> None:
        """Watch the receiver for the whole data phase: a Failure stops us at once."""
        while True:
            event = await self._events.next()
            if isinstance(event, wire.Failure):
                raise _failure_error(event, self._source.name)
            if isinstance(event, wire.Ack):
                self._ack = event
                # The receiver half-closes after its Ack; wait (briefly) for that EOF so
                # our close sends FIN, not RST.  The Ack itself is what counts.
                with trio.move_on_after(LINGER):
                    while not isinstance(event, wire.Closed):
                        event = await self._events.next()
                return
            assert isinstance(event, wire.Closed)  # only after a Failure or an Ack


def _hash_range(fd: int, start: int, length: int, chunk: int) -> hashlib._Hash | None:
    """sha256 of ``length`` bytes at ``start``, or None if the file is shorter."""
    hasher = hashlib.sha256()
    done = 0
    while done < length:
        data = os.pread(fd, min(chunk, length - done), start + done)
        if not data:
            return None
        hasher.update(data)
        done += len(data)
    return hasher


async def send_session(
    conn: trio.abc.HalfCloseableStream,
    source: Source,
    *,
    chunk_size: int = CHUNK,
    peer_name: str = "receiver",
) -> TransferResult:
    """Send ``source`` over ``conn`` and return after the receiver acknowledged it."""
    return await SendSession(conn, source, chunk_size=chunk_size, peer_name=peer_name).run()


# ---------------------------------------------------------------- receiving


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def resolve_destination(output: str | None, name: str) -> str:
    """The path a file called ``name`` is received to, for ``-o output``.

    ``None``: ``./name``; an existing directory: ``DIR/name``; anything else is the
    file path itself.  ``name`` must already be a checked single component.
    """
    wire.check_name(name)
    if output is None:
        return name
    if os.path.isdir(output):
        return os.path.join(output, name)
    return output


def _side_name(path: str, suffix: str, unique: bool) -> str:
    """A hidden name beside ``path``, short enough for NAME_MAX."""
    directory, base = os.path.split(path)
    stem = os.fsdecode(os.fsencode(base)[:180])
    token = f".{secrets.token_hex(4)}" if unique else ""
    return os.path.join(directory, f".{stem}{token}{suffix}")


class _Sink(Protocol):
    async def write(self, data: bytes) -> None: ...


class _FileSink:
    """The temporary (or partial) file; becomes the real file only in :meth:`commit`."""

    def __init__(self, path: str, *, force: bool, resume: bool) -> None:
        self.path = path
        self._force = force
        self._resume = resume
        self.temp = _side_name(path, PARTIAL_SUFFIX if resume else TEMP_SUFFIX, not resume)
        self._fd: int | None = None
        self.committed = False

    def open(self) -> int:
        """Create (or, for resume, open and lock) the temporary file; return its length.

        With ``resume`` the fixed name may already exist, put there by anyone who can
        write to the directory: a symlink or a hard link to a file elsewhere (which we
        would overwrite), a FIFO, someone else's file.  So it is opened without following
        a symlink or blocking, and the *opened* file must be a regular file of ours with
        one name (:func:`_unfit_partial`), else it is refused (exit 5) and left alone.
        """
        what = f"receive to {self.path}"
        if os.path.lexists(self.path):
            if not self._force:
                raise LocalIOError(what, "file exists (the receiver needs --force to replace it)")
            if os.path.isdir(self.path):
                raise LocalIOError(what, "is a directory")
        # O_NONBLOCK: a FIFO at the name must not hang the open (no effect on a file).
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        if not self._resume:
            flags |= os.O_EXCL
        try:
            fd = os.open(self.temp, flags, 0o600)
        except OSError as exc:
            why = describe_failure(exc)
            if exc.errno == errno.ELOOP:
                why = "is a symbolic link (refused: it would write through it)"
            raise LocalIOError(f"create {self.temp}", why) from exc
        self._fd = fd
        try:
            unfit = _unfit_partial(os.fstat(fd))
            if unfit is None and self._resume:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            why = describe_failure(exc)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                why = "another receiver is writing this partial file"
            self._close()
            raise LocalIOError(f"open {self.temp}", why) from exc
        if unfit is not None:
            self._close()
            raise LocalIOError(f"open {self.temp}", f"{unfit} (refused)")
        return os.fstat(fd).st_size

    async def hash_prefix(self, length: int) -> hashlib._Hash:
        assert self._fd is not None
        hasher = await trio.to_thread.run_sync(_hash_range, self._fd, 0, length, CHUNK)
        if hasher is None:
            raise LocalIOError(f"read {self.temp}", "the partial file shrank")
        return hasher

    def start_at(self, offset: int) -> None:
        """Position for writing at ``offset``; everything after it is dropped."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
        except OSError as exc:
            raise LocalIOError(f"write {self.temp}", describe_failure(exc)) from exc

    async def write(self, data: bytes) -> None:
        # A regular file never makes us wait for readiness (DESIGN.md §4): plain writes.
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise LocalIOError(f"write {self.temp}", describe_failure(exc)) from exc

    async def commit(self, mode: int, mtime_ns: int | None) -> None:
        """fsync, set mode and mtime, give the file its real name (then
        :meth:`sync_directory`).  No checkpoint after the rename: ``committed`` is true
        before a cancellation can be delivered."""
        fd = self._fd
        assert fd is not None
        try:
            await trio.to_thread.run_sync(os.fsync, fd)
            os.fchmod(fd, mode & 0o777 & ~_umask())
            if mtime_ns is not None:
                os.utime(fd, ns=(os.fstat(fd).st_atime_ns, mtime_ns))
        except OSError as exc:
            raise LocalIOError(f"finish {self.temp}", describe_failure(exc)) from exc
        self._close()
        try:
            self._rename_into_place()
        except OSError as exc:
            why = describe_failure(exc)
            if exc.errno == errno.EEXIST:
                why = "file exists (the receiver needs --force to replace it)"
            raise LocalIOError(f"rename {self.temp} to {self.path}", why) from exc
        self.committed = True

    async def sync_directory(self) -> None:
        """fsync the directory, so that the rename is durable (best effort)."""
        directory = os.path.dirname(self.path) or "."
        with contextlib.suppress(OSError):  # not every file system can fsync a directory
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                await trio.to_thread.run_sync(os.fsync, dir_fd)
            finally:
                os.close(dir_fd)

    def _rename_into_place(self) -> None:
        if self._force:
            os.replace(self.temp, self.path)
            return
        # No clobbering, even if the name appeared meanwhile: link(2) fails with EEXIST.
        try:
            os.link(self.temp, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if os.path.lexists(self.path):  # a file system without hard links
                raise FileExistsError(errno.EEXIST, "File exists") from exc
            os.rename(self.temp, self.path)
            return
        os.unlink(self.temp)

    def abandon(self, *, keep: bool) -> None:
        """After a failure: delete the temporary file, unless it is a partial to keep."""
        self._close()
        if not keep:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)


def _unfit_partial(st: os.stat_result) -> str | None:
    """Why an opened partial/temporary file may not be written, or None if it may."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink != 1:
        return f"has {st.st_nlink} names: a hard link to a file elsewhere"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    return None


class _StreamSink:
    """``-o -``: data goes out as it arrives; the exit code says whether it verified."""

    def __init__(self, stream: trio.abc.SendStream) -> None:
        self._stream = stream

    async def write(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except _STREAM_ERRORS as exc:
            raise translate(exc, Side("stdout", local=True)) from exc


class ReceiveSession:
    """Receive one file from ``conn``; :meth:`run` returns once it is verified in place."""

    _events: _EventReader[wire.FromSender]

    def __init__(
        self,
        conn: trio.abc.HalfCloseableStream,
        target: ReceiveTarget = ReceiveTarget(),
        *,
        stdout: trio.abc.SendStream | None = None,
        chunk_size: int = CHUNK,
        peer_name: str = "sender",
        idle: IdleWatch | None = None,
        on_settled: Callable[[str], None] | None = None,
    ) -> None:
        """``on_settled(what)`` is called once the outcome is decided: the file verified
        and under its real name (or the data verified on stdout), before the Ack; ``what``
        says so in words."""
        if target.output == "-" and stdout is None:
            raise UsageError("-o -", "needs a stdout stream")
        self._conn = conn
        self._idle = idle
        self._target = target
        self._stdout = stdout
        self._chunk = chunk_size
        self._peer = Side(peer_name, local=False)
        self._proto = wire.TransferReceiver()
        self._events = _EventReader(conn, self._proto, self._peer, chunk_size)
        self._file: _FileSink | None = None
        self._on_settled = on_settled

    def statistics(self) -> TransferStatistics:
        header = self._proto.header
        return TransferStatistics(
            header.name if header else None,
            header.size if header else None,
            self._proto.offset + self._proto.data_received,
            self._proto.data_received,
        )

    async def run(self) -> TransferResult:
        began = trio.current_time()
        # With resume, a partial is kept after any failure (a cut, Ctrl-C, a full disk)
        # except a digest mismatch: it is known to be corrupt.  Keeping is always safe
        # because a resumed prefix is only used if its sha256 matches the sender's.
        keep_partial = True
        try:
            result = await self._receive(began)
        except NcatError as exc:
            corrupt = isinstance(exc, IntegrityError) and not isinstance(exc, wire.ShortStream)
            keep_partial = not corrupt
            await self._report(exc)
            raise
        finally:
            if self._file is not None and not self._file.committed:
                self._file.abandon(keep=self._target.resume and keep_partial)
        return result

    async def _receive(self, began: float) -> TransferResult:
        event = await self._events.next()
        assert isinstance(event, wire.Header)
        header = event
        hasher, offset, sink = await self._prepare(header)
        await _send_bytes(
            self._conn, self._proto.send(wire.Offer(offset, hasher.digest())), self._peer
        )
        start = await self._events.next()
        assert isinstance(start, wire.Start)
        if start.offset != offset:
            hasher = hashlib.sha256()
        if self._file is not None:
            self._file.start_at(start.offset)
        while True:
            event = await self._events.next()
            if isinstance(event, wire.Data):
                hasher.update(event.data)
                await sink.write(event.data)
                continue
            assert isinstance(event, wire.Trailer)
            break
        trailer = event
        if hasher.digest() != trailer.sha256:
            raise IntegrityError(
                f"transfer of {header.name!r}",
                f"sha256 mismatch: got {hasher.hexdigest()[:16]}…, "
                f"sender has {trailer.sha256.hex()[:16]}… ({trailer.size} bytes)",
            )
        # The trailer must be the sender's last bytes: read up to its FIN (a byte more is
        # a RemoteProtocolError) before the file may take its name.
        end = await self._events.next()
        assert end is wire.PAUSED
        path: str | None = None
        if self._file is not None:
            with _local_work(self._idle):
                await self._file.commit(header.mode, header.mtime_ns)
            path = self._file.path
        if self._on_settled is not None:  # before any checkpoint: a late signal can't lie
            where = f"{path!r} was verified and in place" if path else "the data was verified"
            self._on_settled(where)
        # The file is verified and in place: the transfer succeeded for us whatever
        # happens to the Ack.  A late signal must not skip the rest either (the sender's
        # Ack, our summary): shielded; the fsync runs in a thread that cannot be
        # cancelled anyway, the Ack is 41 bytes into an idle send buffer, bounded
        # against a peer that stalls.
        with trio.CancelScope(shield=True):
            if self._file is not None:
                with _local_work(self._idle):
                    await self._file.sync_directory()
            ack = wire.Ack(trailer.size, trailer.sha256)
            with trio.move_on_after(ACK_TIMEOUT) as scope:
                try:
                    await _send_bytes(self._conn, self._proto.send(ack), self._peer)
                    await _half_close(self._conn, self._peer)
                except NcatError as exc:
                    diag.say(f"{exc} (the acknowledgement could not be delivered)")
            if scope.cancelled_caught:
                diag.say(f"{self._peer.name}: the acknowledgement could not be delivered in time")
        return TransferResult(
            name=header.name,
            size=trailer.size,
            sha256=trailer.sha256.hex(),
            resumed_from=start.offset,
            bytes_moved=self._proto.data_received,
            seconds=trio.current_time() - began,
            path=path,
        )

    async def _prepare(self, header: wire.Header) -> tuple[hashlib._Hash, int, _Sink]:
        """Open the destination; return the prefix hash and length to offer, and the sink."""
        if self._target.output == "-":
            assert self._stdout is not None
            return hashlib.sha256(), 0, _StreamSink(self._stdout)
        path = resolve_destination(self._target.output, header.name)
        sink = _FileSink(path, force=self._target.force, resume=self._target.resume)
        length = sink.open()
        self._file = sink
        if not self._target.resume or length == 0:
            return hashlib.sha256(), 0, sink
        if header.size is not None and length > header.size:
            diag.say(f"partial {sink.temp} is longer than the file: starting again")
            return hashlib.sha256(), 0, sink
        diag.say(f"offering to resume {header.name!r} at {length} bytes")
        with _local_work(self._idle):
            return await sink.hash_prefix(length), length, sink

    async def _report(self, exc: NcatError) -> None:
        """Tell the sender why we give up (best effort), then close our direction."""
        if isinstance(exc, ConnectionLost) or self._proto.state in (
            wire.ReceiverState.DONE,
            wire.ReceiverState.FAILED,
        ):
            return
        code = exc.exit_code if exc.exit_code in wire.FAILURE_CODES else ExitCode.LOCAL_IO
        message = self._proto.send(wire.Failure(code, wire.clean_reason(str(exc))))
        with trio.move_on_after(LINGER):
            try:
                await self._conn.send_all(message)
                await self._conn.send_eof()
            except _STREAM_ERRORS:
                return
            # Read what the sender still had in flight, so that closing does not send a
            # RST that could destroy our Failure before the sender has read it.
            await _drain_until_eof(self._conn, LINGER)


async def receive_session(
    conn: trio.abc.HalfCloseableStream,
    target: ReceiveTarget = ReceiveTarget(),
    *,
    stdout: trio.abc.SendStream | None = None,
    chunk_size: int = CHUNK,
    peer_name: str = "sender",
) -> TransferResult:
    """Receive one file from ``conn`` into ``target``; return once it is verified."""
    session = ReceiveSession(
        conn, target, stdout=stdout, chunk_size=chunk_size, peer_name=peer_name
    )
    return await session.run()


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class SendOptions:
    """``ncat-trio send``."""

    endpoint: net.Endpoint
    path: str = "-"  # "-": stdin
    name: str | None = None  # the name to send (default: the file's base name, "stdin")
    listen: bool = False  # wait for the receiver to connect (receiver behind NAT)
    connect_timeout: float | None = None
    idle_timeout: float | None = None  # -i: fail when the connection is silent this long
    progress: bool = False
    json: bool = False  # the summary object on stdout
    json_file: str | None = None  # also append it to this file
    quiet: bool = False


@dataclass(frozen=True)
class ReceiveOptions:
    """``ncat-trio receive``."""

    endpoint: net.Endpoint
    target: ReceiveTarget = ReceiveTarget()
    listen: bool = True  # False: connect to a listening sender
    connect_timeout: float | None = None
    idle_timeout: float | None = None  # -i: fail when the connection is silent this long
    progress: bool = False
    json: bool = False  # the summary object on stdout
    json_file: str | None = None  # also append it to this file
    quiet: bool = False


@asynccontextmanager
async def open_transfer_connection(
    endpoint: net.Endpoint,
    *,
    listen: bool,
    connect_timeout: float | None,
    expect_sender: bool = False,
    idle_timeout: float | None = None,
) -> AsyncIterator[tuple[trio.SocketStream, str]]:
    """Connect, or listen and accept exactly one client; yield (stream, peer description).

    Listening with ``expect_sender`` (the receiver: the sender speaks first), a client
    counts only once the fixed part of its Header is in (magic and version), within
    :data:`GREETING_TIMEOUT` seconds: one that resets, sends garbage or trickles is
    logged and closed, and the listener waits for the real sender (transport/serve.py).
    With ``idle_timeout`` (``-i``) a client silent that long ends the receive (exit 4),
    as ``-i`` promises.
    """
    if listen:
        listener = await net.open_tcp_listener(endpoint, backlog=8)
        async with listener:
            diag.say(f"listening on {diag.format_address(net.local_address(listener))}")
            conn, peer = await serve.first_session(
                partial(net.accept, listener),
                partial(_greeted, sender=expect_sender, idle_timeout=idle_timeout),
                _as_is,
                within=GREETING_TIMEOUT if idle_timeout is None else idle_timeout + 1,
                fatal=_idle_or_stdio,
            )
    else:
        timeout = math.inf if connect_timeout is None else connect_timeout
        with trio.move_on_after(timeout) as scope:
            conn = await net.connect_tcp(endpoint, nodelay=True)
        if scope.cancelled_caught:
            raise NcatTimeout(f"connect to {endpoint}", f"timed out after {timeout:g} s (-w)")
        peer = f"connection to {diag.format_address(net.peer_address(conn))}"
    # Every write is a whole message or a big chunk: Nagle would only delay the
    # small control messages (offer, start, trailer, ack).
    conn.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
    try:
        yield conn, peer
    except BaseException:
        await trio.aclose_forcefully(conn)
        raise
    with trio.move_on_after(LINGER) as close_scope:
        close_scope.shield = True
        await conn.aclose()


async def _as_is(conn: trio.SocketStream, peer: str) -> tuple[trio.SocketStream, str]:
    await trio.lowlevel.checkpoint()
    return conn, peer


#: Seconds a listening receiver gives a client to send the protocol's magic.
GREETING_TIMEOUT = 10.0


async def _greeted(
    conn: trio.SocketStream, *, sender: bool, idle_timeout: float | None = None
) -> str:
    """The peer's description; from a ``sender``, once the fixed part of its Header is
    in and begins with the magic and version (left unread for the session)."""
    peer = f"connection from {diag.format_address(net.peer_address(conn))}"
    if sender:
        with trio.move_on_after(math.inf if idle_timeout is None else idle_timeout) as idle:
            first = await net.peek(conn, wire.HEADER_FIXED_SIZE)
        if idle.cancelled_caught:
            raise NcatTimeout(peer, f"nothing sent or received for {idle_timeout:g} s (-i)")
        greeting = wire.MAGIC + bytes([wire.VERSION])
        if first[: len(greeting)] != greeting[: len(first)]:
            raise RemoteProtocolError(peer, "not an ncat-trio v1 file transfer (magic, version)")
        if len(first) < wire.HEADER_FIXED_SIZE:
            raise RemoteProtocolError(peer, f"closed after {len(first)} bytes of a header")
    return peer


def _idle_or_stdio(exc: NcatError) -> bool:
    """-i fired while waiting for a sender's header: that ends the receive (exit 4)."""
    return isinstance(exc, NcatTimeout) or serve.stdio_is_fatal(exc)


def checked_name(name: str) -> str:
    """A name to send: one safe path component (PROTOCOL.md), else a usage error."""
    try:
        return wire.check_name(name, remote=False)
    except LocalProtocolError as exc:
        raise UsageError(str(exc), "choose another with --name") from exc


def _base_name(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


def _check_output(output: str | None) -> None:
    """Fail before listening if ``-o`` names a file in a directory that does not exist."""
    if output in (None, "-"):
        return
    assert output is not None
    parent = output if os.path.isdir(output) else os.path.dirname(output)
    if parent and not os.path.isdir(parent):
        raise LocalIOError(f"-o {output}", f"no such directory: {parent}")


@asynccontextmanager
async def open_source(opts: SendOptions) -> AsyncIterator[Source]:
    """The file (or stdin) to send, classified: a regular file, or a stream."""
    if opts.path == "-":
        fd, owned, default_name = 0, False, "stdin"
    else:
        try:
            fd = os.open(opts.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise LocalIOError(f"open {opts.path}", describe_failure(exc)) from exc
        owned, default_name = True, _base_name(opts.path)
    try:
        name = checked_name(opts.name or default_name)
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise LocalIOError(f"send {opts.path}", "is a directory")
        if fd_kind(fd) is FdKind.REGULAR:
            start = os.lseek(fd, 0, os.SEEK_CUR) if not owned else 0
            mtime = st.st_mtime_ns if owned else None
            yield FileSource(
                fd, name, max(0, st.st_size - start), st.st_mode & 0o7777, mtime, start
            )
        else:
            async with open_stdin(fd) as stream:
                yield StreamSource(stream, name, 0o666 if not owned else st.st_mode & 0o7777)
    finally:
        if owned:
            os.close(fd)


async def _with_progress(
    statistics: Callable[[], TransferStatistics], work: Callable[[], Awaitable[TransferResult]]
) -> TransferResult:
    """Run ``work`` while printing a progress line on stderr every second."""
    result: list[TransferResult] = []

    async def show() -> None:
        began = trio.current_time()
        while True:
            await trio.sleep(1)
            stats = statistics()
            rate = stats.moved / max(trio.current_time() - began, 1e-9) / (1 << 20)
            of = f" of {stats.size / (1 << 20):.1f}" if stats.size is not None else ""
            diag.say(f"progress: {stats.done / (1 << 20):.1f}{of} MiB, {rate:.1f} MiB/s")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(show)
        result.append(await work())
        nursery.cancel_scope.cancel()
    return result[0]


def _summary(command: str, result: TransferResult, opts: SendOptions | ReceiveOptions) -> None:
    rate = result.bytes_moved / result.seconds / (1 << 20) if result.seconds > 0 else 0.0
    if opts.json or opts.json_file is not None:
        record = {
            "mode": command,
            "command": command,
            "name": result.name,
            "path": result.path,
            "size": result.size,
            "sha256": result.sha256,
            "resumed_from": result.resumed_from,
            "bytes_moved": result.bytes_moved,
            "seconds": round(result.seconds, 6),
            "mib_per_s": round(rate, 3),
            "verified": True,
        }
        if command == "send":
            del record["path"]
        if opts.json_file is not None:
            append_json(opts.json_file, record)
        if opts.json:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
    if opts.quiet:
        return
    resumed = f", resumed at {result.resumed_from}" if result.resumed_from else ""
    if command == "send":
        diag.say(
            f"sent {result.name!r}: {result.size} bytes{resumed}, sha256 {result.sha256}, "
            "acknowledged by the receiver"
        )
    else:
        where = result.path if result.path is not None else "stdout"
        diag.say(
            f"received {result.name!r} → {where}: {result.size} bytes{resumed}, "
            f"sha256 {result.sha256} verified"
        )


Session = SendSession | ReceiveSession


async def _run(
    make: Callable[[trio.abc.HalfCloseableStream, IdleWatch | None], Session],
    conn: trio.abc.HalfCloseableStream,
    peer: str,
    progress: bool,
    idle_timeout: float | None,
) -> TransferResult:
    if idle_timeout is None:
        return await _run_session(make(conn, None), progress)
    watch = IdleWatch(idle_timeout)
    with watch.scope:
        return await _run_session(make(WatchedStream(conn, watch), watch), progress)
    raise NcatTimeout(peer, f"nothing sent or received for {idle_timeout:g} s (-i)")


async def _run_session(session: Session, progress: bool) -> TransferResult:
    if progress:
        return await _with_progress(session.statistics, session.run)
    return await session.run()


async def send_main(opts: SendOptions) -> int:
    """``ncat-trio send HOST PORT [FILE|-]`` (or ``--listen [HOST] PORT [FILE|-]``)."""
    async with open_source(opts) as source:
        conn_cm = open_transfer_connection(
            opts.endpoint, listen=opts.listen, connect_timeout=opts.connect_timeout
        )
        async with conn_cm as (conn, peer):
            result = await _run(
                lambda c, idle: SendSession(c, source, peer_name=peer, idle=idle),
                conn, peer, opts.progress, opts.idle_timeout,
            )  # fmt: skip
    _summary("send", result, opts)
    return 0


def _settle(what: str) -> None:
    """The received file is verified and in place: exit 0 even if a signal comes now
    (README, send/receive: non-zero means the file is not under its real name)."""
    runner.settle(0, what)


async def receive_main(opts: ReceiveOptions) -> int:
    """``ncat-trio receive [HOST] PORT [-o FILE|DIR|-]`` (or ``--connect HOST PORT``)."""
    target = opts.target
    _check_output(target.output)
    async with contextlib.AsyncExitStack() as stack:
        stdout = None
        if target.output == "-":
            stdout = await stack.enter_async_context(open_stdout())
        conn_cm = open_transfer_connection(
            opts.endpoint,
            listen=opts.listen,
            connect_timeout=opts.connect_timeout,
            expect_sender=True,
            idle_timeout=opts.idle_timeout,
        )
        conn, peer = await stack.enter_async_context(conn_cm)
        result = await _run(
            lambda c, idle: ReceiveSession(
                c, target, stdout=stdout, peer_name=peer, idle=idle, on_settled=_settle
            ),
            conn, peer, opts.progress, opts.idle_timeout,
        )  # fmt: skip
    _summary("receive", result, opts)
    return 0


__all__ = [
    "CHUNK",
    "FileSource",
    "ReceiveOptions",
    "ReceiveSession",
    "ReceiveTarget",
    "RemoteProtocolError",
    "SendOptions",
    "SendSession",
    "StreamSource",
    "TransferResult",
    "TransferStatistics",
    "checked_name",
    "open_transfer_connection",
    "receive_main",
    "receive_session",
    "resolve_destination",
    "send_main",
    "send_session",
]

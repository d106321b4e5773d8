"""send / receive: one file over one TCP connection, verified end to end — the sessions.

They drive the wire format of :mod:`ncat_trio.proto.transfer_wire` (PROTOCOL.md) over any
stream (tests use memory streams); the file store is :mod:`ncat_trio.transport.files`,
the process around them (options, the connection, summaries) :mod:`.transfer`.

* The sender hashes (sha256) in the same pass as it reads and sends, sends the
  digest in the trailer, half-closes, and succeeds only when the receiver's Ack
  arrives.  EOF or a reset before the Ack is :class:`ConnectionLost` (exit 3): the
  sender cannot know whether the file arrived.  A Failure from the receiver makes
  the sender exit with the receiver's code (5, 6 or 7).
* The receiver writes to a temporary name beside the target, hashing in the same
  pass; after the trailer it compares digests, commits the file (fsync, mode, mtime,
  rename, never over an existing file without ``force``), fsyncs the directory, and
  only then sends the Ack.  A failed transfer never leaves a file under the real name.
* ``resume``: the partial (``.NAME.ncat-trio-partial``) is kept when a transfer is
  cut; next time its length and sha256 are offered, and a sender whose file starts
  with the same bytes skips them.

:meth:`SendSession._send_file_body` (``pread`` → ``send_all``, 1 MiB chunks) is the
one place a ``sendfile`` path would go: the data bytes are raw on the wire, so only the
digest would need its own read of the page cache (e.g. through ``mmap``).

Hashing is inline, in the same pass as the I/O.  Measured here (2 cores, 1 GiB on
tmpfs, benchmarks/bench_transfer.py, two A/B runs each): inline 0.83–0.84 GB/s;
a worker thread hashing one 256 KiB+ batch behind the I/O (hashlib drops the GIL)
0.73–0.74 GB/s and +0.1–0.2 CPU s/GB per end, because both cores are already busy
with the two processes.  sha256 costs ~0.48 CPU s/GB per end here (2.06 GB/s).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from .. import diag
from ..errors import (
    ConnectionLost,
    ExitCode,
    IntegrityError,
    LocalIOError,
    LocalProtocolError,
    NcatError,
    UsageError,
)
from ..proto import transfer_wire as wire
from ..proto.transfer import ReceiverState, ShortStream, TransferReceiver, TransferSender
from ..transport import files
from ..transport.files import CHUNK  # bytes per read and per send, measured there
from ..transport.idle import IdleWatch
from ..transport.pump import STREAM_ERRORS, Side, pump, run_directions, send_eof, translated

#: After the last message, how long to wait for the peer's EOF before closing anyway.
LINGER = 5.0
#: How long the receiver may spend delivering its Ack (shielded from a late signal).
ACK_TIMEOUT = 1.0
_STDOUT = Side("stdout", local=True)  # -o -


# ---------------------------------------------------------------- sources, targets, results


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


async def _next_event(
    conn: trio.abc.ReceiveStream, proto: TransferSender | TransferReceiver, side: Side, chunk: int
) -> wire.FromReceiver | wire.FromSender:
    """The protocol's next event, reading the connection when it needs data."""
    while True:
        event = proto.next_event()
        if event is not wire.NEED_DATA:
            return event
        with translated(side):
            data = await conn.receive_some(chunk)
        proto.receive_data(data)


def _local_work(idle: IdleWatch | None) -> contextlib.AbstractContextManager[None]:
    """Hashing and fsync are not the connection's silence (``-i``)."""
    return idle.paused() if idle is not None else contextlib.nullcontext()


async def _send_bytes(conn: trio.abc.SendStream, data: bytes, side: Side) -> None:
    if data:
        with translated(side):
            await conn.send_all(data)


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
        self._proto = TransferSender()
        self._next_event = partial(_next_event, conn, self._proto, self._peer, 4096)
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
        event = await self._next_event()
        if isinstance(event, wire.Failure):
            raise _failure_error(event, source.name)
        assert isinstance(event, wire.Offer)
        with _local_work(self._idle):
            hasher, offset = await self._match_prefix(event)
        self._done = offset
        await _send_bytes(self._conn, self._proto.send(wire.Start(offset)), self._peer)

        failure = await run_directions(lambda: self._send_body(hasher), self._await_ack)
        if failure is not None:
            raise failure
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
            files.hash_range, source.fd, source.start, offer.offset, self._chunk
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
        await send_eof(self._conn, self._peer)

    async def _send_file_body(self, source: FileSource, hasher: hashlib._Hash) -> int:
        """pread → sha256 → send_all, from the Start offset to the announced size (a
        ``sendfile`` path would go here: see the module docstring)."""
        position = self._proto.offset
        while position < source.size:
            want = min(self._chunk, source.size - position)
            data = files.read_at(source.fd, want, source.start + position, source.name)
            if not data:
                raise LocalIOError(
                    f"read {source.name!r}",
                    f"the file shrank while being sent ({position} of {source.size} bytes)",
                )
            await self._send_data(data, hasher)
            position += len(data)
        return position

    async def _send_stream_body(self, source: StreamSource, hasher: hashlib._Hash) -> int:
        side = Side(f"read {source.name!r}", local=True)
        total = 0
        while True:
            with translated(side):
                data = await source.stream.receive_some(self._chunk)
            if not data:
                return total
            await self._send_data(bytes(data), hasher)
            total += len(data)

    async def _send_data(self, data: bytes, hasher: hashlib._Hash) -> None:
        hasher.update(data)
        await _send_bytes(self._conn, self._proto.send(wire.Data(data)), self._peer)
        self._done += len(data)
        self._moved += len(data)

    async def _await_ack(self) -> None:
        """Watch the receiver for the whole data phase: a Failure stops us at once."""
        while True:
            event = await self._next_event()
            if isinstance(event, wire.Failure):
                raise _failure_error(event, self._source.name)
            if isinstance(event, wire.Ack):
                self._ack = event
                # The receiver half-closes after its Ack; wait (briefly) for that EOF so
                # our close sends FIN, not RST.  The Ack itself is what counts.
                with trio.move_on_after(LINGER):
                    while not isinstance(event, wire.Closed):
                        event = await self._next_event()
                return
            assert isinstance(event, wire.Closed)  # only after a Failure or an Ack


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


class ReceiveSession:
    """Receive one file from ``conn``; :meth:`run` returns once it is verified in place."""

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
        self._proto = TransferReceiver()
        self._next_event = partial(_next_event, conn, self._proto, self._peer, chunk_size)
        self._file: files.FileSink | None = None
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
            corrupt = isinstance(exc, IntegrityError) and not isinstance(exc, ShortStream)
            keep_partial = not corrupt
            await self._report(exc)
            raise
        finally:
            if self._file is not None and not self._file.committed:
                self._file.abandon(keep=self._target.resume and keep_partial)
        return result

    async def _receive(self, began: float) -> TransferResult:
        header = await self._next_event()
        assert isinstance(header, wire.Header)
        hasher, offset, write = await self._prepare(header)
        await _send_bytes(
            self._conn, self._proto.send(wire.Offer(offset, hasher.digest())), self._peer
        )
        start = await self._next_event()
        assert isinstance(start, wire.Start)
        if start.offset != offset:
            hasher = hashlib.sha256()
        if self._file is not None:
            self._file.start_at(start.offset)
        while isinstance(event := await self._next_event(), wire.Data):
            hasher.update(event.data)
            await write(event.data)
        trailer = event
        assert isinstance(trailer, wire.Trailer)
        if hasher.digest() != trailer.sha256:
            raise IntegrityError(
                f"transfer of {header.name!r}",
                f"sha256 mismatch: got {hasher.hexdigest()[:16]}…, "
                f"sender has {trailer.sha256.hex()[:16]}… ({trailer.size} bytes)",
            )
        # The trailer must be the sender's last bytes: read up to its FIN (a byte more is
        # a RemoteProtocolError) before the file may take its name.
        end = await self._next_event()
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
                    await send_eof(self._conn, self._peer)
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

    async def _prepare(
        self, header: wire.Header
    ) -> tuple[hashlib._Hash, int, Callable[[bytes], Awaitable[None]]]:
        """Open the destination; return the prefix hash and length to offer, and the writer."""
        if self._target.output == "-":
            assert self._stdout is not None
            # -o -: data goes out as it arrives; the exit code says whether it verified.
            return hashlib.sha256(), 0, partial(_send_bytes, self._stdout, side=_STDOUT)
        path = resolve_destination(self._target.output, header.name)
        sink = files.FileSink(path, force=self._target.force, resume=self._target.resume)
        length = sink.open()
        self._file = sink
        if not self._target.resume or length == 0:
            return hashlib.sha256(), 0, sink.write
        if header.size is not None and length > header.size:
            diag.say(f"partial {sink.temp} is longer than the file: starting again")
            return hashlib.sha256(), 0, sink.write
        diag.say(f"offering to resume {header.name!r} at {length} bytes")
        with _local_work(self._idle):
            return await sink.hash_prefix(length), length, sink.write

    async def _report(self, exc: NcatError) -> None:
        """Tell the sender why we give up (best effort), then close our direction."""
        if isinstance(exc, ConnectionLost) or self._proto.state in (
            ReceiverState.DONE,
            ReceiverState.FAILED,
        ):
            return
        code = exc.exit_code if exc.exit_code in wire.FAILURE_CODES else ExitCode.LOCAL_IO
        message = self._proto.send(wire.Failure(code, wire.clean_reason(str(exc))))
        with trio.move_on_after(LINGER):
            try:
                await self._conn.send_all(message)
                await self._conn.send_eof()
            except STREAM_ERRORS:
                return
            # Read what the sender still had in flight, so that closing does not send a
            # RST that could destroy our Failure before the sender has read it.
            with contextlib.suppress(NcatError):  # discarded, up to its EOF
                await pump(self._conn, None, source_side=self._peer, sink_side=self._peer)


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

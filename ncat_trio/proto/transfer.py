"""The verified file transfer wire format (``send`` / ``receive``), sans-I/O.

One TCP connection carries one file.  PROTOCOL.md documents every byte; in short::

    S→R  Header    magic "NCTF", version 1, flags, mode, size, mtime, name
    R→S  Offer     how much of the file the receiver already holds (a resume offer:
                   length + sha256 of that prefix; 0 and sha256(b"") for a fresh start)
                   — or Failure (code, reason): "exists", "unwritable", ...
    S→R  Start     the offset the sender starts from: 0 or the offered length
    S→R  data      raw bytes when the size is known, else length-prefixed chunks + a 0
    S→R  Trailer   total size + sha256 of the whole file
    R→S  Ack       size + sha256, sent after write, fsync, digest check and rename
                   — or Failure (code, reason): "sha256 mismatch", "disk full", ...

:class:`TransferSender` and :class:`TransferReceiver` are h11-style connection
objects: ``receive_data(bytes)`` (``b""`` = EOF), ``next_event()`` → an event,
:data:`NEED_DATA` or :data:`PAUSED` (it is our turn to send), ``send(event) → bytes``.
A state table says which message may come next; everything else is a
:class:`RemoteProtocolError`.  Every length is bounded before anything is buffered,
and data is never buffered at all: it is handed out as it arrives.

The digest is the application's business (it hashes in the same pass as its file
I/O, and for a resume the prefix comes from disk); this layer carries and
cross-checks sizes and digests.  No I/O and no clock here.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import Final, Literal

from ..errors import (
    ConnectionLost,
    ExitCode,
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
)
from .receive_buffer import NEED_DATA, PAUSED, NeedData, ReceiveBuffer, Sentinel

MAGIC: Final = b"NCTF"
VERSION: Final = 1

#: A name is one path component: at most NAME_MAX (255) bytes of UTF-8.
MAX_NAME_BYTES: Final = 255
#: Chunks of a stream of unknown size are at most 16 MiB (the sender uses ≤ 1 MiB).
MAX_CHUNK: Final = 16 << 20
#: A failure reason is one short line of UTF-8.
MAX_REASON_BYTES: Final = 1024
#: Sizes and offsets are u64 on the wire but must fit an off_t.
MAX_SIZE: Final = (1 << 63) - 1
#: Permission bits, set-id and sticky bits (the receiver applies only 0o777 of them).
MAX_MODE: Final = 0o7777

DIGEST_SIZE: Final = 32
EMPTY_SHA256: Final = hashlib.sha256(b"").digest()

FLAG_SIZE_KNOWN: Final = 0x01
FLAG_MTIME: Final = 0x02
_KNOWN_FLAGS: Final = FLAG_SIZE_KNOWN | FLAG_MTIME

TAG_OFFER: Final = b"O"
TAG_START: Final = b"S"
TAG_TRAILER: Final = b"T"
TAG_ACK: Final = b"A"
TAG_FAILURE: Final = b"F"

_HEADER = struct.Struct(">4sBBHQqH")  # magic version flags mode size mtime_ns name_len
#: Bytes of a Header before its name: what a listening receiver waits for (and checks
#: begins with MAGIC and VERSION) before it takes a client as the sender.
HEADER_FIXED_SIZE: Final = _HEADER.size
_OFFSET_DIGEST = struct.Struct(">cQ32s")  # Offer, Trailer, Ack: tag u64 sha256
_START = struct.Struct(">cQ")
_CHUNK = struct.Struct(">I")
_FAILURE = struct.Struct(">cBH")  # tag code reason_len

#: The exit codes a receiver may report in a Failure; the sender exits with the same.
FAILURE_CODES: Final = frozenset({ExitCode.LOCAL_IO, ExitCode.PROTOCOL, ExitCode.INTEGRITY})


class ShortStream(IntegrityError):
    """The sender's bytes ended (EOF) after the header and before the trailer (exit 7)."""


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Header:
    """S→R: what is coming.  ``size=None``: a stream of unknown length (chunked)."""

    name: str
    size: int | None
    mode: int = 0o644
    mtime_ns: int | None = None


@dataclass(frozen=True)
class Offer:
    """R→S: the receiver holds ``offset`` bytes whose sha256 is ``prefix_sha256``."""

    offset: int = 0
    prefix_sha256: bytes = EMPTY_SHA256


@dataclass(frozen=True)
class Start:
    """S→R: the data that follows starts at ``offset`` (0 or the offered length)."""

    offset: int


@dataclass(frozen=True)
class Data:
    """File bytes, in order, from the Start offset on.  Never empty when received."""

    data: bytes


@dataclass(frozen=True)
class Trailer:
    """S→R: the data is complete: ``size`` bytes in all whose sha256 is ``sha256``."""

    size: int
    sha256: bytes


@dataclass(frozen=True)
class Ack:
    """R→S: the file is on disk (fsynced), its digest matched, it has its real name."""

    size: int
    sha256: bytes


@dataclass(frozen=True)
class Failure:
    """R→S: the receiver gives up; ``code`` is the exit code it exits with."""

    code: ExitCode
    reason: str


@dataclass(frozen=True)
class Closed:
    """The peer closed its direction (EOF) where that is allowed."""


Event = Header | Offer | Start | Data | Trailer | Ack | Failure | Closed


#: What the sender's ``next_event()`` returns, besides NEED_DATA (feed more bytes first).
FromReceiver = Offer | Ack | Failure | Closed
#: What the receiver's ``next_event()`` returns, besides NEED_DATA; PAUSED: it is our
#: turn to send (an Offer or an Ack).
FromSender = Header | Start | Data | Trailer | Closed | Literal[Sentinel.PAUSED]
_Sentinel = Literal[Sentinel.NEED_DATA, Sentinel.PAUSED]


# ---------------------------------------------------------------- validation


def check_name(name: str, *, remote: bool = True) -> str:
    """Return ``name`` if it is one safe path component, else raise.

    Refused: empty, ``.``, ``..``, anything with ``/`` (so no absolute paths and no
    ``../``), NUL or another control character, more than 255 bytes of UTF-8.  A
    received name (``remote=True``) raises :class:`RemoteProtocolError`, a name we
    were asked to send raises :class:`LocalProtocolError`.
    """
    why = _name_problem(name)
    if why is not None:
        cls = RemoteProtocolError if remote else LocalProtocolError
        raise cls(f"file name {name!r}", f"refused: {why}")
    return name


def _name_problem(name: str) -> str | None:
    if not name:
        return "empty"
    if name in (".", ".."):
        return "not a file name (path traversal)"
    if "/" in name:
        return "contains '/' (absolute path or path traversal)"
    if "\x00" in name:
        return "contains NUL"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "contains a control character"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if len(encoded) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def clean_reason(text: str) -> str:
    """A Failure reason that :meth:`send` accepts: one line, no controls, ≤ 1024 bytes."""
    line = "".join(" " if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in text)
    raw = line.encode("utf-8", "replace")[:MAX_REASON_BYTES]
    return raw.decode("utf-8", "ignore")


def _check_digest(digest: bytes, what: str) -> None:
    if len(digest) != DIGEST_SIZE:
        raise LocalProtocolError(what, f"sha256 must be {DIGEST_SIZE} bytes, not {len(digest)}")


def _check_size(value: int, what: str) -> None:
    if not 0 <= value <= MAX_SIZE:
        raise LocalProtocolError(what, f"{value} is out of range 0..2**63-1")


# ---------------------------------------------------------------- encoding


def encode_header(header: Header) -> bytes:
    """The Header message; raises :class:`LocalProtocolError` for a bad name or field."""
    check_name(header.name, remote=False)
    if not 0 <= header.mode <= MAX_MODE:
        raise LocalProtocolError("header", f"mode {header.mode:o} is not in 0..7777")
    flags = 0
    if header.size is not None:
        _check_size(header.size, "header size")
        flags |= FLAG_SIZE_KNOWN
    if header.mtime_ns is not None:
        if not -(1 << 63) <= header.mtime_ns < (1 << 63):
            raise LocalProtocolError("header", "mtime out of the int64 range")
        flags |= FLAG_MTIME
    name = header.name.encode("utf-8")
    fixed = _HEADER.pack(
        MAGIC, VERSION, flags, header.mode, header.size or 0, header.mtime_ns or 0, len(name)
    )
    return fixed + name


def encode_failure(failure: Failure) -> bytes:
    if failure.code not in FAILURE_CODES:
        raise LocalProtocolError("failure", f"code {int(failure.code)} cannot be reported")
    if clean_reason(failure.reason) != failure.reason:
        raise LocalProtocolError("failure", "reason must be one line of ≤ 1024 bytes")
    reason = failure.reason.encode("utf-8")
    return _FAILURE.pack(TAG_FAILURE, failure.code, len(reason)) + reason


# ---------------------------------------------------------------- parsing


def _parse_offset_digest(buf: ReceiveBuffer, tag: bytes, what: str) -> tuple[int, bytes] | None:
    raw = buf.take(_OFFSET_DIGEST.size)
    if raw is None:
        return None
    got_tag, value, digest = _OFFSET_DIGEST.unpack(raw)
    if got_tag != tag:  # pragma: no cover - callers dispatch on the tag first
        raise RemoteProtocolError(what, f"unexpected tag {got_tag!r}")
    if value > MAX_SIZE:
        raise RemoteProtocolError(what, f"size {value} is out of range")
    return value, digest


def _parse_failure(buf: ReceiveBuffer) -> Failure | None:
    head = buf.peek(_FAILURE.size)
    if len(head) < _FAILURE.size:
        return None
    _tag, code, length = _FAILURE.unpack(head)
    if code not in FAILURE_CODES:
        raise RemoteProtocolError("failure message", f"unknown code {code}")
    if length > MAX_REASON_BYTES:
        raise RemoteProtocolError("failure message", f"reason of {length} bytes is too long")
    raw = buf.take(_FAILURE.size + length)
    if raw is None:
        return None
    try:
        reason = raw[_FAILURE.size :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("failure message", "reason is not UTF-8") from exc
    if clean_reason(reason) != reason:
        raise RemoteProtocolError("failure message", "reason contains control characters")
    return Failure(ExitCode(code), reason)


def _describe_tag(tag: bytes) -> str:
    return repr(tag) if tag else "nothing"


# ---------------------------------------------------------------- sender


class SenderState(enum.Enum):
    HEADER = "send the header"
    AWAIT_OFFER = "wait for the offer"
    START = "send start"
    DATA = "send data"
    AWAIT_ACK = "wait for the ack"
    DONE = "acknowledged"
    FAILED = "receiver failed"
    ERROR = "protocol error"


class TransferSender:
    """The sending end's protocol state: encodes what it sends, parses what comes back.

    ``send``: Header → Start → Data* → Trailer, in that order.  ``next_event``: Offer
    (after the Header), Ack (after the Trailer), Failure (any time), Closed (EOF after
    an Ack or a Failure).  EOF anywhere else means the receiver never acknowledged:
    :class:`ConnectionLost` (exit 3; PROTOCOL.md, "Exit codes").
    """

    def __init__(self) -> None:
        self.state = SenderState.HEADER
        self._input = ReceiveBuffer("receive_data")
        self._header: Header | None = None
        self._offer: Offer | None = None
        self._offset = 0
        self._sent = 0  # data bytes after the Start offset
        self._trailer: Trailer | None = None

    @property
    def header(self) -> Header | None:
        return self._header

    @property
    def offset(self) -> int:
        """Where the data started (the accepted resume offset)."""
        return self._offset

    # -- outgoing

    def send(self, event: Header | Start | Data | Trailer) -> bytes:
        """Encode ``event``; :class:`LocalProtocolError` if it is out of turn or invalid."""
        if isinstance(event, Header):
            self._expect_state(SenderState.HEADER, event)
            out = encode_header(event)
            self._header = event
            self.state = SenderState.AWAIT_OFFER
            return out
        if isinstance(event, Start):
            self._expect_state(SenderState.START, event)
            assert self._offer is not None
            if event.offset not in (0, self._offer.offset):
                raise LocalProtocolError(
                    "start",
                    f"offset {event.offset} is neither 0 nor the offered {self._offer.offset}",
                )
            self._offset = event.offset
            self.state = SenderState.DATA
            return _START.pack(TAG_START, event.offset)
        if isinstance(event, Data):
            self._expect_state(SenderState.DATA, event)
            return self._encode_data(event.data)
        if isinstance(event, Trailer):
            self._expect_state(SenderState.DATA, event)
            return self._encode_trailer(event)
        raise LocalProtocolError("send", f"a sender cannot send {type(event).__name__}")

    def _expect_state(self, state: SenderState, event: object) -> None:
        if self.state is not state:
            raise LocalProtocolError(
                f"send {type(event).__name__}", f"not allowed now (state: {self.state.value})"
            )

    def _encode_data(self, data: bytes) -> bytes:
        assert self._header is not None
        if not data:
            return b""  # an empty chunk would be the terminator: send nothing
        size = self._header.size
        if size is not None:
            if self._offset + self._sent + len(data) > size:
                raise LocalProtocolError("data", f"more than the announced {size} bytes")
            self._sent += len(data)
            return data  # the size is known: data goes raw, without a copy
        out = bytearray()
        view = memoryview(data)
        while view:
            piece = view[:MAX_CHUNK]
            out += _CHUNK.pack(len(piece))
            out += piece
            view = view[len(piece) :]
        self._sent += len(data)
        return bytes(out)

    def _encode_trailer(self, trailer: Trailer) -> bytes:
        assert self._header is not None
        _check_digest(trailer.sha256, "trailer")
        total = self._offset + self._sent
        if trailer.size != total:
            raise LocalProtocolError("trailer", f"size {trailer.size} but {total} bytes were sent")
        if self._header.size is not None and total != self._header.size:
            raise LocalProtocolError(
                "trailer", f"only {total} of the announced {self._header.size} bytes were sent"
            )
        self._trailer = trailer
        self.state = SenderState.AWAIT_ACK
        end = b"" if self._header.size is not None else _CHUNK.pack(0)
        return end + _OFFSET_DIGEST.pack(TAG_TRAILER, trailer.size, trailer.sha256)

    # -- incoming

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the receiver; ``b""`` means it closed its direction (EOF)."""
        self._input.feed(data)

    def next_event(self) -> FromReceiver | NeedData:
        """The next message from the receiver, or :data:`NEED_DATA`."""
        if self.state is SenderState.ERROR:
            raise RemoteProtocolError("receiver", "the connection already broke the protocol")
        try:
            return self._next_event()
        except RemoteProtocolError:
            self.state = SenderState.ERROR
            raise

    def _next_event(self) -> FromReceiver | NeedData:
        buf = self._input
        if self.state is SenderState.FAILED:
            buf.discard()
            return Closed() if buf.eof else NEED_DATA
        if not len(buf):
            if not buf.eof:
                return NEED_DATA
            if self.state is SenderState.DONE:
                return Closed()
            raise ConnectionLost("receiver", "closed the connection before acknowledging the file")
        tag = buf.peek(1)
        if tag == TAG_FAILURE and self.state is not SenderState.DONE:
            failure = _parse_failure(buf)
            if failure is not None:
                self.state = SenderState.FAILED
                return failure
        elif tag == TAG_OFFER and self.state is SenderState.AWAIT_OFFER:
            parsed = _parse_offset_digest(buf, TAG_OFFER, "offer")
            if parsed is not None:
                return self._on_offer(Offer(*parsed))
        elif tag == TAG_ACK and self.state is SenderState.AWAIT_ACK:
            parsed = _parse_offset_digest(buf, TAG_ACK, "ack")
            if parsed is not None:
                return self._on_ack(Ack(*parsed))
        else:
            raise RemoteProtocolError(
                "receiver", f"sent {_describe_tag(tag)} where {self._expected()} was expected"
            )
        if buf.eof:  # a message was cut short
            raise ConnectionLost("receiver", "closed the connection in the middle of a message")
        return NEED_DATA

    def _expected(self) -> str:
        return {
            SenderState.AWAIT_OFFER: "an offer or a failure",
            SenderState.AWAIT_ACK: "an ack or a failure",
            SenderState.DONE: "EOF",
        }.get(self.state, "nothing (or a failure)")

    def _on_offer(self, offer: Offer) -> Offer:
        assert self._header is not None
        size = self._header.size
        if size is not None and offer.offset > size:
            raise RemoteProtocolError("offer", f"offset {offer.offset} is beyond the size {size}")
        if offer.offset == 0 and offer.prefix_sha256 != EMPTY_SHA256:
            raise RemoteProtocolError("offer", "an empty prefix must carry sha256 of nothing")
        self._offer = offer
        self.state = SenderState.START
        return offer

    def _on_ack(self, ack: Ack) -> Ack:
        assert self._trailer is not None
        if (ack.size, ack.sha256) != (self._trailer.size, self._trailer.sha256):
            raise RemoteProtocolError("ack", "does not match the trailer that was sent")
        self.state = SenderState.DONE
        return ack


# ---------------------------------------------------------------- receiver


class ReceiverState(enum.Enum):
    HEADER = "wait for the header"
    OFFER = "send the offer"
    AWAIT_START = "wait for start"
    DATA = "receive data"
    CHUNK_BODY = "receive a chunk"
    TRAILER = "wait for the trailer"
    ACK = "send the ack"
    DONE = "acknowledged"
    FAILED = "failure sent"
    ERROR = "protocol error"


class TransferReceiver:
    """The receiving end's protocol state.

    ``next_event``: Header, then (after we ``send`` an Offer) Start, Data*, Trailer;
    :data:`PAUSED` while it is our turn: for the Ack, only once the sender's EOF has
    followed the trailer (a byte instead is a :class:`RemoteProtocolError`).  ``send``:
    Offer, then Ack; or Failure at any point, after which everything that still arrives
    is discarded.  EOF before the header is complete is a :class:`RemoteProtocolError`;
    EOF after the header and before the trailer is a short stream:
    :class:`IntegrityError` (exit 7).
    """

    def __init__(self) -> None:
        self.state = ReceiverState.HEADER
        self._input = ReceiveBuffer("receive_data")
        self._header: Header | None = None
        self._offer: Offer | None = None
        self._offset = 0
        self._received = 0  # data bytes after the Start offset
        self._chunk_left = 0
        self._trailer: Trailer | None = None

    @property
    def header(self) -> Header | None:
        return self._header

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def data_received(self) -> int:
        """Data bytes received since the Start (the resumed prefix not included)."""
        return self._received

    # -- outgoing

    def send(self, event: Offer | Ack | Failure) -> bytes:
        """Encode ``event``; :class:`LocalProtocolError` if it is out of turn or invalid."""
        if isinstance(event, Failure):
            if self.state in (ReceiverState.DONE, ReceiverState.FAILED):
                raise LocalProtocolError("send Failure", f"not allowed now ({self.state.value})")
            out = encode_failure(event)
            self.state = ReceiverState.FAILED
            self._input.discard()
            return out
        if isinstance(event, Offer):
            self._expect_state(ReceiverState.OFFER, event)
            assert self._header is not None
            _check_digest(event.prefix_sha256, "offer")
            _check_size(event.offset, "offer")
            if self._header.size is not None and event.offset > self._header.size:
                raise LocalProtocolError("offer", "offset beyond the announced size")
            if event.offset == 0 and event.prefix_sha256 != EMPTY_SHA256:
                raise LocalProtocolError("offer", "an empty prefix has sha256 of nothing")
            self._offer = event
            self.state = ReceiverState.AWAIT_START
            return _OFFSET_DIGEST.pack(TAG_OFFER, event.offset, event.prefix_sha256)
        if isinstance(event, Ack):
            self._expect_state(ReceiverState.ACK, event)
            assert self._trailer is not None
            if not self._input.eof or len(self._input):
                raise LocalProtocolError("send Ack", "not before the sender's FIN ends its stream")
            if (event.size, event.sha256) != (self._trailer.size, self._trailer.sha256):
                raise LocalProtocolError("ack", "must repeat the trailer's size and sha256")
            self.state = ReceiverState.DONE
            return _OFFSET_DIGEST.pack(TAG_ACK, event.size, event.sha256)
        raise LocalProtocolError("send", f"a receiver cannot send {type(event).__name__}")

    def _expect_state(self, state: ReceiverState, event: object) -> None:
        if self.state is not state:
            raise LocalProtocolError(
                f"send {type(event).__name__}", f"not allowed now (state: {self.state.value})"
            )

    # -- incoming

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the sender; ``b""`` means it closed its direction (EOF)."""
        self._input.feed(data)
        if self.state is ReceiverState.FAILED:
            self._input.discard()

    def next_event(self) -> Header | Start | Data | Trailer | Closed | _Sentinel:
        """The next event from the sender, :data:`NEED_DATA` or :data:`PAUSED`."""
        if self.state is ReceiverState.ERROR:
            raise RemoteProtocolError("sender", "the connection already broke the protocol")
        try:
            return self._next_event()
        except (RemoteProtocolError, IntegrityError):
            self.state = ReceiverState.ERROR
            raise

    def _next_event(self) -> Header | Start | Data | Trailer | Closed | _Sentinel:
        state = self.state
        buf = self._input
        if state is ReceiverState.OFFER:
            return PAUSED
        if state is ReceiverState.ACK:
            # The trailer must be the sender's last bytes, and its FIN comes before our
            # Ack (PROTOCOL.md): only then is it our turn.  Checked before the file gets
            # its name, so a stream with more after the trailer is never accepted.
            if len(buf):
                raise RemoteProtocolError("sender", "sent bytes after the trailer")
            return PAUSED if buf.eof else NEED_DATA
        if state is ReceiverState.FAILED:
            buf.discard()
            return Closed() if buf.eof else NEED_DATA
        if state is ReceiverState.DONE:
            if len(buf):
                raise RemoteProtocolError("sender", "sent bytes after the trailer")
            return Closed() if buf.eof else NEED_DATA
        if state is ReceiverState.HEADER:
            event: Header | Start | Data | Trailer | None = self._parse_header()
        elif state is ReceiverState.AWAIT_START:
            event = self._parse_start()
        elif state is ReceiverState.TRAILER:
            event = self._parse_trailer()
        else:
            event = self._parse_data()
        if event is not None:
            return event
        if buf.eof:
            self._raise_short()
        return NEED_DATA

    def _raise_short(self) -> None:
        if self._header is None:
            if not len(self._input):
                raise RemoteProtocolError(
                    "sender", "closed the connection without sending a header"
                )
            raise RemoteProtocolError("sender", "closed the connection in the middle of the header")
        got = self._offset + self._received
        size = self._header.size
        of = f" of {size}" if size is not None else ""
        raise ShortStream(
            f"transfer of {self._header.name!r}",
            f"short stream: the sender closed after {got}{of} bytes, before the trailer",
        )

    def _parse_header(self) -> Header | None:
        buf = self._input
        fixed = buf.peek(_HEADER.size)
        if fixed[: len(MAGIC)] != MAGIC[: len(fixed)]:
            raise RemoteProtocolError("header", "bad magic: not an ncat-trio file transfer")
        if len(fixed) > len(MAGIC) and fixed[4] != VERSION:
            raise RemoteProtocolError(
                "header", f"unsupported version {fixed[4]} (this is {VERSION})"
            )
        if len(fixed) < _HEADER.size:
            return None
        _magic, _version, flags, mode, size, mtime_ns, name_len = _HEADER.unpack(fixed)
        if flags & ~_KNOWN_FLAGS:
            raise RemoteProtocolError("header", f"unknown flags 0x{flags:02x}")
        if mode > MAX_MODE:
            raise RemoteProtocolError("header", f"mode {mode:o} is not in 0..7777")
        if flags & FLAG_SIZE_KNOWN and size > MAX_SIZE:
            raise RemoteProtocolError("header", f"size {size} is out of range")
        if not flags & FLAG_SIZE_KNOWN and size != 0:
            raise RemoteProtocolError("header", "a size is present but flagged unknown")
        if not flags & FLAG_MTIME and mtime_ns != 0:
            raise RemoteProtocolError("header", "an mtime is present but not flagged")
        if not 1 <= name_len <= MAX_NAME_BYTES:
            raise RemoteProtocolError("header", f"name length {name_len} is not in 1..255")
        raw = buf.take(_HEADER.size + name_len)
        if raw is None:
            return None
        try:
            name = raw[_HEADER.size :].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("header", "file name is not UTF-8") from exc
        check_name(name)
        header = Header(
            name=name,
            size=size if flags & FLAG_SIZE_KNOWN else None,
            mode=mode,
            mtime_ns=mtime_ns if flags & FLAG_MTIME else None,
        )
        self._header = header
        self.state = ReceiverState.OFFER
        return header

    def _parse_start(self) -> Start | None:
        buf = self._input
        tag = buf.peek(1)
        if tag and tag != TAG_START:
            raise RemoteProtocolError("sender", f"sent {tag!r} where start was expected")
        raw = buf.take(_START.size)
        if raw is None:
            return None
        _tag, offset = _START.unpack(raw)
        assert self._offer is not None
        if offset not in (0, self._offer.offset):
            raise RemoteProtocolError(
                "start", f"offset {offset} is neither 0 nor the offered {self._offer.offset}"
            )
        self._offset = offset
        self.state = ReceiverState.DATA
        return Start(offset)

    def _parse_data(self) -> Data | Trailer | None:
        assert self._header is not None
        buf = self._input
        size = self._header.size
        if size is not None:
            left = size - self._offset - self._received
            if left == 0:
                self.state = ReceiverState.TRAILER
                return self._parse_trailer()
            if not len(buf):
                return None
            return self._deliver(buf.take_up_to(left))
        if self.state is ReceiverState.DATA:  # at a chunk boundary
            raw = buf.take(_CHUNK.size)
            if raw is None:
                return None
            (length,) = _CHUNK.unpack(raw)
            if length == 0:
                self.state = ReceiverState.TRAILER
                return self._parse_trailer()
            if length > MAX_CHUNK:
                raise RemoteProtocolError("chunk", f"length {length} exceeds {MAX_CHUNK}")
            self._chunk_left = length
            self.state = ReceiverState.CHUNK_BODY
        if not len(buf):
            return None
        data = buf.take_up_to(self._chunk_left)
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self.state = ReceiverState.DATA
        return self._deliver(data)

    def _deliver(self, data: bytes) -> Data:
        if self._offset + self._received + len(data) > MAX_SIZE:
            raise RemoteProtocolError("data", "stream longer than 2**63-1 bytes")
        self._received += len(data)
        return Data(data)

    def _parse_trailer(self) -> Trailer | None:
        assert self._header is not None
        buf = self._input
        tag = buf.peek(1)
        if tag and tag != TAG_TRAILER:
            raise RemoteProtocolError("sender", f"sent {tag!r} where the trailer was expected")
        parsed = _parse_offset_digest(buf, TAG_TRAILER, "trailer")
        if parsed is None:
            return None
        size, digest = parsed
        got = self._offset + self._received
        if size != got:
            raise RemoteProtocolError("trailer", f"announces {size} bytes but {got} were sent")
        trailer = Trailer(size, digest)
        self._trailer = trailer
        self.state = ReceiverState.ACK
        return trailer


__all__ = [
    "EMPTY_SHA256",
    "MAGIC",
    "MAX_CHUNK",
    "MAX_NAME_BYTES",
    "NEED_DATA",
    "PAUSED",
    "VERSION",
    "Ack",
    "Closed",
    "Data",
    "Event",
    "Failure",
    "FromReceiver",
    "FromSender",
    "Header",
    "NeedData",
    "Offer",
    "ReceiverState",
    "SenderState",
    "ShortStream",
    "Start",
    "Trailer",
    "TransferReceiver",
    "TransferSender",
    "check_name",
    "clean_reason",
    "encode_header",
]

"""The verified file transfer's wire format (``send`` / ``receive``): its messages,
their bounds, and how each is encoded and decoded.  Pure data, no state.

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

Which message may come when is :mod:`ncat_trio.proto.transfer`'s business (the two
state machines); this module checks each message's own fields, and bounds every
length before anything is buffered.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final, Literal

from ..errors import ExitCode, LocalProtocolError, RemoteProtocolError
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
class _SizeDigest:
    size: int
    sha256: bytes


@dataclass(frozen=True)
class Trailer(_SizeDigest):
    """S→R: the data is complete: ``size`` bytes in all whose sha256 is ``sha256``."""


@dataclass(frozen=True)
class Ack(_SizeDigest):
    """R→S: the file is on disk (fsynced), its digest matched, it has its real name."""


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


def check_digest(digest: bytes, what: str) -> None:
    if len(digest) != DIGEST_SIZE:
        raise LocalProtocolError(what, f"sha256 must be {DIGEST_SIZE} bytes, not {len(digest)}")


def check_size(value: int, what: str) -> None:
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
        check_size(header.size, "header size")
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


def encode_start(offset: int) -> bytes:
    return _START.pack(TAG_START, offset)


def encode_size_digest(tag: bytes, size: int, digest: bytes) -> bytes:
    """An Offer, a Trailer or an Ack: the tag, a u64 and a sha256."""
    return _OFFSET_DIGEST.pack(tag, size, digest)


def encode_chunks(data: bytes) -> bytes:
    """``data`` as length-prefixed chunks of at most :data:`MAX_CHUNK` bytes."""
    out = bytearray()
    view = memoryview(data)
    while view:
        piece = view[:MAX_CHUNK]
        out += _CHUNK.pack(len(piece))
        out += piece
        view = view[len(piece) :]
    return bytes(out)


#: What ends a chunked stream: a chunk of length 0.
END_OF_CHUNKS: Final = _CHUNK.pack(0)


def parse_size_digest(buf: ReceiveBuffer, tag: bytes, what: str) -> tuple[int, bytes] | None:
    if len(buf) < _OFFSET_DIGEST.size:
        return None
    got_tag, value, digest = buf.unpack(_OFFSET_DIGEST)
    if got_tag != tag:  # pragma: no cover - callers dispatch on the tag first
        raise RemoteProtocolError(what, f"unexpected tag {got_tag!r}")
    if value > MAX_SIZE:
        raise RemoteProtocolError(what, f"size {value} is out of range")
    return value, digest


def _take_utf8(buf: ReceiveBuffer, fixed: int, length: int, what: str, field: str) -> str | None:
    """A message's ``fixed`` bytes and the ``length`` bytes of UTF-8 text after them,
    taken from ``buf``: the text, or None if it has not all arrived."""
    raw = buf.take(fixed + length)
    if raw is None:
        return None
    try:
        return raw[fixed:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(what, f"{field} is not UTF-8") from exc


def parse_failure(buf: ReceiveBuffer) -> Failure | None:
    head = buf.peek(_FAILURE.size)
    if len(head) < _FAILURE.size:
        return None
    _tag, code, length = _FAILURE.unpack(head)
    if code not in FAILURE_CODES:
        raise RemoteProtocolError("failure message", f"unknown code {code}")
    if length > MAX_REASON_BYTES:
        raise RemoteProtocolError("failure message", f"reason of {length} bytes is too long")
    reason = _take_utf8(buf, _FAILURE.size, length, "failure message", "reason")
    if reason is None:
        return None
    if clean_reason(reason) != reason:
        raise RemoteProtocolError("failure message", "reason contains control characters")
    return Failure(ExitCode(code), reason)


def parse_header(buf: ReceiveBuffer) -> Header | None:
    """A whole Header from the front of ``buf``, None if it is not all there yet.

    The magic and the version are checked as soon as their bytes arrive, every other
    fixed field before the name is waited for.
    """
    fixed = buf.peek(_HEADER.size)
    if fixed[: len(MAGIC)] != MAGIC[: len(fixed)]:
        raise RemoteProtocolError("header", "bad magic: not an ncat-trio file transfer")
    if len(fixed) > len(MAGIC) and fixed[4] != VERSION:
        raise RemoteProtocolError("header", f"unsupported version {fixed[4]} (this is {VERSION})")
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
    name = _take_utf8(buf, _HEADER.size, name_len, "header", "file name")
    if name is None:
        return None
    check_name(name)
    return Header(
        name=name,
        size=size if flags & FLAG_SIZE_KNOWN else None,
        mode=mode,
        mtime_ns=mtime_ns if flags & FLAG_MTIME else None,
    )


def parse_start(buf: ReceiveBuffer) -> int | None:
    """A Start's offset from the front of ``buf``, None if it is not all there yet."""
    tag = buf.peek(1)
    if tag and tag != TAG_START:
        raise RemoteProtocolError("sender", f"sent {tag!r} where start was expected")
    if len(buf) < _START.size:
        return None
    _tag, offset = buf.unpack(_START)
    return int(offset)


def parse_chunk_length(buf: ReceiveBuffer) -> int | None:
    """The length prefix of the next chunk (0: the end), None if not all there yet."""
    if len(buf) < _CHUNK.size:
        return None
    (length,) = buf.unpack(_CHUNK)
    if length > MAX_CHUNK:
        raise RemoteProtocolError("chunk", f"length {length} exceeds {MAX_CHUNK}")
    return int(length)


__all__ = [
    "DIGEST_SIZE",
    "EMPTY_SHA256",
    "FAILURE_CODES",
    "HEADER_FIXED_SIZE",
    "MAGIC",
    "MAX_CHUNK",
    "MAX_NAME_BYTES",
    "MAX_REASON_BYTES",
    "MAX_SIZE",
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
    "Start",
    "Trailer",
    "check_name",
    "clean_reason",
    "encode_failure",
    "encode_header",
]

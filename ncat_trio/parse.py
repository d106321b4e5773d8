"""Pure parsers for command-line values: ports, durations, sizes, host names.

Each raises :class:`UsageError` with a one-line reason; nothing else escapes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re

from .errors import UsageError

_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_port(text: str, *, allow_zero: bool = False, what: str = "port") -> int:
    """A TCP/UDP port number, decimal only: ``0x50``, ``-1`` and ``70000`` are refused."""
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdecimal():
        raise UsageError(f"invalid {what} {text!r}", "not a decimal number")
    value = int(stripped)
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise UsageError(f"invalid {what} {text!r}", f"must be {low}-65535")
    return value


#: RFC 1035 §2.3.4: 255 octets on the wire, so 253 characters written out (no final dot).
MAX_HOST_NAME = 253


def parse_host_name(text: str, *, what: str = "host") -> str:
    """A host that goes on the wire as typed (TLS SNI, a proxy's CONNECT target).

    An IP literal, or a name that IDNA can encode (no empty label: ``.localhost``,
    ``a..b``; labels of at most 63 bytes) of at most :data:`MAX_HOST_NAME` bytes, with
    no control character (a CR LF would split an HTTP CONNECT request).  Without this a
    bad name reached ``ssl``'s or the SOCKS encoder's ``str.encode("idna")`` and ended
    in a traceback (issue 15).
    """
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return text
    if not text.isprintable():
        raise UsageError(f"invalid {what} {text!r}", "contains a control or unprintable character")
    too_long = f"a host name has at most {MAX_HOST_NAME} bytes (RFC 1035)"
    if len(text.rstrip(".")) > MAX_HOST_NAME:  # IDNA never makes a name shorter
        raise UsageError(f"invalid {what} {text[:40]!r}…", f"{len(text)} characters; {too_long}")
    try:
        encoded = text.encode("idna")
    except UnicodeError:
        raise UsageError(
            f"invalid {what} {text!r}",
            "not a host name (an empty label, a label over 63 bytes, or a character IDNA refuses)",
        ) from None
    if not encoded.rstrip(b".") or encoded.startswith(b"."):
        raise UsageError(f"invalid {what} {text!r}", "not a host name (an empty label)")
    if len(encoded.rstrip(b".")) > MAX_HOST_NAME:
        raise UsageError(f"invalid {what} {text[:40]!r}…", f"{len(encoded)} bytes; {too_long}")
    return text


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds, as a non-negative finite number (``1``, ``0.5``, ``2.5s``, ``100ms``)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?\s*", text)
    if match is None:
        raise UsageError(f"invalid {what} {text!r}", "expected seconds, e.g. 2 or 0.5 or 100ms")
    value = float(match.group(1))
    if match.group(2) == "ms":
        value /= 1000
    if not math.isfinite(value):
        raise UsageError(f"invalid {what} {text!r}", "must be finite")
    return value


def parse_size(text: str, *, what: str = "size") -> int:
    """Bytes with an optional binary suffix: ``65536``, ``256K``, ``1M``, ``2G`` (``KiB`` ok)."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([kKmMgGtT]?)(?:i?B)?\s*", text)
    if match is None:
        raise UsageError(f"invalid {what} {text!r}", "expected bytes, e.g. 65536, 256K, 1M")
    return int(match.group(1)) * _SIZE_SUFFIXES[match.group(2).upper()]

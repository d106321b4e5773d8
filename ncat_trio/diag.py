"""Diagnostics on stderr: one line each, prefixed ``ncat-trio:``, flushed at once.

Stdout is data only; nothing here ever touches it.  Writes go through ``sys.stderr``
(a blocking, inherited description we never make non-blocking: DESIGN.md §4); if
stderr is gone the line is dropped rather than turned into a second failure.
"""

from __future__ import annotations

import os
import sys

PROG = "ncat-trio"


def say(message: str) -> None:
    """Write ``ncat-trio: message`` on stderr and flush it (readiness lines rely on it)."""
    line = f"{PROG}: {message}\n"
    stream = sys.stderr
    try:
        if stream is not None:
            stream.write(line)
            stream.flush()
        else:  # started with fd 2 closed and no sys.stderr
            os.write(2, line.encode("utf-8", "replace"))
    except (OSError, ValueError):
        pass


def write_raw(text: str) -> None:
    """Write ``text`` as it is on stderr (a JSON record), dropping it if stderr is gone."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(text)
            sys.stderr.flush()
        else:
            os.write(2, text.encode())
    except (OSError, ValueError):
        pass


def format_address(address: object) -> str:
    """``127.0.0.1:80`` / ``[::1]:80`` / a Unix path, from a socket address tuple or str."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
            host = host[7:]  # an IPv4 peer of a dual-stack listener
        if isinstance(host, str) and ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    if isinstance(address, bytes):
        return address.decode("utf-8", "replace") or "(unnamed)"
    return str(address) or "(unnamed)"

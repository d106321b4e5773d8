"""Unix domain sockets (``-U PATH``): stream and datagram, connect and listen.

A listener owns its socket file.  Before binding, an existing file at PATH is removed
only when it is a socket that nobody serves (``connect`` gets ECONNREFUSED: a leftover
of a process that died); a live socket is "in use" and any other file is refused.  On
exit the file is removed if it is still the one we bound (same inode), so a newer
listener's file is never deleted by an older one.

A datagram client needs an address of its own for replies: it binds to an autobound
abstract address (Linux, unix(7): ``bind`` with an empty path), leaving no file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket as _stdsocket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..errors import ConnectError
from . import net
from .sockopts import Configure


def _why(exc: OSError, path: str) -> str:
    why = net.describe(exc)
    if exc.errno == errno.ENOENT:
        return f"{why} (no socket at {path}: is the listener running?)"
    if exc.errno == errno.ECONNREFUSED:
        return f"{why} (a socket file nobody listens on)"
    if exc.errno in (errno.ENOTSOCK, errno.EPROTOTYPE):
        return f"{why} (wrong kind of socket: stream vs datagram, see -u)"
    return why


def _socket(
    kind: int, configure: Configure | None, *, autobind: bool = False
) -> trio.socket.SocketType:
    raw = _stdsocket.socket(_stdsocket.AF_UNIX, kind)
    try:
        if autobind:
            raw.bind("")  # an abstract address, no file to clean up (trio's bind refuses "")
        sock = trio.socket.from_stdlib_socket(raw)
        if configure is not None:
            configure(sock)
    except BaseException:
        raw.close()
        raise
    return sock


async def _connect(sock: trio.socket.SocketType, path: str) -> None:
    try:
        await sock.connect(path)
    except OSError as exc:
        sock.close()
        raise ConnectError(f"connect to {path}", _why(exc, path)) from exc
    except BaseException:
        sock.close()
        raise


async def connect_unix_stream(
    path: str, *, configure: Configure | None = None
) -> trio.SocketStream:
    """A stream connection to the listener at ``path``; failures are :class:`ConnectError`."""
    sock = _socket(_stdsocket.SOCK_STREAM, configure)
    await _connect(sock, path)
    return trio.SocketStream(sock)


async def connect_unix_datagram(
    path: str, *, configure: Configure | None = None
) -> trio.socket.SocketType:
    """A datagram socket connected to ``path``, bound to an abstract address for replies."""
    sock = _socket(_stdsocket.SOCK_DGRAM, configure, autobind=True)
    await _connect(sock, path)
    return sock


async def _remove_if_stale(path: str, kind: int) -> None:
    """Unlink ``path`` if it is a socket nobody serves; refuse anything else there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConnectError(f"listen on {path}", _why(exc, path)) from exc
    if not stat.S_ISSOCK(st.st_mode):
        raise ConnectError(f"listen on {path}", "file exists and is not a socket (not removed)")
    for probe_kind in (kind, _stdsocket.SOCK_STREAM, _stdsocket.SOCK_DGRAM):
        with trio.socket.socket(_stdsocket.AF_UNIX, probe_kind) as probe:
            try:
                await probe.connect(path)
            except ConnectionRefusedError:
                continue  # nobody of this kind there
            except OSError as exc:
                if exc.errno == errno.EPROTOTYPE:  # alive, but the other kind
                    continue
                raise ConnectError(f"listen on {path}", _why(exc, path)) from exc
            raise ConnectError(f"listen on {path}", "address in use (a live socket: not removed)")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@asynccontextmanager
async def bound_unix_socket(
    path: str, kind: int, *, configure: Configure | None = None
) -> AsyncIterator[trio.socket.SocketType]:
    """A socket bound to ``path`` (stale file removed first); the file is removed on exit."""
    await _remove_if_stale(path, kind)
    sock = _socket(kind, configure)
    identity: tuple[int, int] | None = None
    try:
        try:
            await sock.bind(path)
            st = os.stat(path)
            identity = (st.st_dev, st.st_ino)
        except OSError as exc:
            raise ConnectError(f"listen on {path}", _why(exc, path)) from exc
        yield sock
    finally:
        sock.close()
        if identity is not None:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == identity:
                    os.unlink(path)


@asynccontextmanager
async def open_unix_listener(
    path: str, *, backlog: int = 128, configure: Configure | None = None
) -> AsyncIterator[trio.SocketListener]:
    """A stream listener at ``path``; see the module docstring for the file's lifetime."""
    async with bound_unix_socket(path, _stdsocket.SOCK_STREAM, configure=configure) as sock:
        sock.listen(backlog)
        yield trio.SocketListener(sock)

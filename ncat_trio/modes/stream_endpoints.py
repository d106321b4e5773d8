"""The stream a connect/listen session runs over: TCP, or a Unix socket with ``-U``,
with the ``--keepalive/--sndbuf/...`` socket options applied before bind/connect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ..transport import net, unix
from ..transport.sockopts import configure_with

if TYPE_CHECKING:
    from .netcat import NetcatOptions


async def connect_stream(opts: NetcatOptions) -> trio.SocketStream:
    """Connect to ``opts.endpoint`` (TCP) or ``opts.unix_path`` (-U)."""
    configure = configure_with(opts.socket_options)
    if opts.unix_path is not None:
        return await unix.connect_unix_stream(opts.unix_path, configure=configure)
    return await net.connect_tcp(
        opts.endpoint, source=opts.source, nodelay=opts.nodelay, configure=configure
    )


@asynccontextmanager
async def open_stream_listener(opts: NetcatOptions) -> AsyncIterator[trio.SocketListener]:
    """A TCP listener on ``opts.endpoint``, or a Unix one at ``opts.unix_path`` (removed
    on exit).  Backlog 1 without -k: nc serves one client."""
    configure = configure_with(opts.socket_options)
    backlog = 128 if opts.keep_open else 1
    if opts.unix_path is not None:
        async with unix.open_unix_listener(
            opts.unix_path, backlog=backlog, configure=configure
        ) as listener:
            yield listener
        return
    listener = await net.open_tcp_listener(opts.endpoint, backlog=backlog, configure=configure)
    async with listener:
        yield listener

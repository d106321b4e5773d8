"""The stream a connect/listen session runs over: TCP, or a Unix socket with ``-U``,
with the ``--keepalive/--sndbuf/...`` socket options applied before bind/connect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..transport import net, unix
from ..transport.sockopts import configure_with
from .netcat_options import StreamPlace


async def connect_stream(place: StreamPlace) -> trio.SocketStream:
    """Connect to ``place.endpoint`` (TCP) or ``place.unix_path`` (-U)."""
    configure = configure_with(place.socket_options)
    if place.unix_path is not None:
        return await unix.connect_unix_stream(place.unix_path, configure=configure)
    return await net.connect_tcp(
        place.endpoint, source=place.source, nodelay=place.nodelay, configure=configure
    )


@asynccontextmanager
async def open_stream_listener(
    place: StreamPlace, *, backlog: int
) -> AsyncIterator[trio.SocketListener]:
    """A TCP listener on ``place.endpoint``, or a Unix one at ``place.unix_path``
    (removed on exit)."""
    configure = configure_with(place.socket_options)
    if place.unix_path is not None:
        async with unix.open_unix_listener(
            place.unix_path, backlog=backlog, configure=configure
        ) as listener:
            yield listener
        return
    listener = await net.open_tcp_listener(place.endpoint, backlog=backlog, configure=configure)
    async with listener:
        yield listener

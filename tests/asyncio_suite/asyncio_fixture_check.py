"""The sync fixtures from a pytest-asyncio test (run by tests/transport/test_testing_asyncio.py).

Not collected by the main session (its name matches no ``test_*.py``): pytest-trio's
``trio_mode`` claims every async test of a session, so this file runs in a pytest of
its own with pytest-trio off (``-p no:trio``) and pytest-asyncio on.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ncat_trio import Latency
from ncat_trio.pytest_plugin import SyncRelayFactory


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.asyncio
async def test_relay_under_an_asyncio_loop(sync_relay: SyncRelayFactory) -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        relay = sync_relay(targets=[("127.0.0.1", port)])
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
        relay.faults.set(Latency(0.2, direction="down"))
        start = time.monotonic()
        writer.write(b"pong")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"pong"
        assert time.monotonic() - start >= 0.2
        asyncio.get_running_loop()  # the caller's own loop kept running all along
        writer.close()
        await writer.wait_closed()

"""Testing a client against a slow, fragmenting and resetting network with the ``relay``
fixture (the ``ncat_trio`` pytest plugin; needs pytest-trio).

The code under test is ``fetch_greeting``: it asks a server for a greeting framed with
a 4-byte length.  A real server runs in the test; the relay sits between them and
injects faults, which can be changed while the connection is live.

Run:  pytest examples/relay_fault_test.py      (with ``trio_mode = true``, or mark
each test ``@pytest.mark.trio``)
"""

from __future__ import annotations

import functools
import struct

import pytest
import trio

from ncat_trio import Latency, ResetPeer, Slicer
from ncat_trio.pytest_plugin import RelayFactory

GREETING = b"hello from a server that has never heard of message boundaries"


# --- the code under test ------------------------------------------------------------


async def receive_exactly(stream: trio.abc.ReceiveStream, count: int) -> bytes:
    """TCP delivers bytes, not messages: loop until ``count`` bytes have arrived."""
    data = b""
    while len(data) < count:
        chunk = await stream.receive_some(count - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return data


async def fetch_greeting(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"HELLO\n")
        (length,) = struct.unpack("!I", await receive_exactly(stream, 4))
        return await receive_exactly(stream, length)


# --- a real server, started in the test ---------------------------------------------


async def greeter(stream: trio.SocketStream) -> None:
    request = await stream.receive_some(100)
    if request.startswith(b"HELLO"):
        await stream.send_all(struct.pack("!I", len(GREETING)) + GREETING)


async def start_greeter(nursery: trio.Nursery) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, greeter, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


# --- the tests ----------------------------------------------------------------------


async def test_greeting_survives_a_reply_cut_into_3_byte_segments(
    nursery: trio.Nursery, relay: RelayFactory
) -> None:
    server = await start_greeter(nursery)
    proxy = await relay(targets=[("127.0.0.1", server)], faults=[Slicer(3, direction="down")])
    assert await fetch_greeting(proxy.port) == GREETING


async def test_a_slow_network_trips_a_short_timeout_only(
    nursery: trio.Nursery, relay: RelayFactory
) -> None:
    server = await start_greeter(nursery)
    proxy = await relay(targets=[("127.0.0.1", server)], faults=[Latency(0.3, direction="down")])
    with trio.fail_after(5):
        assert await fetch_greeting(proxy.port) == GREETING
    with pytest.raises(trio.TooSlowError), trio.fail_after(0.1):
        await fetch_greeting(proxy.port)


async def test_a_reset_mid_reply_is_an_error_not_a_short_greeting(
    nursery: trio.Nursery, relay: RelayFactory
) -> None:
    server = await start_greeter(nursery)
    proxy = await relay(targets=[("127.0.0.1", server)])
    assert await fetch_greeting(proxy.port) == GREETING  # healthy first...
    proxy.faults.set(ResetPeer(after_bytes=10, direction="down"))  # ...then, live, a reset
    with pytest.raises((ConnectionError, trio.BrokenResourceError)):
        await fetch_greeting(proxy.port)
    await proxy.wait_quiet()
    assert proxy.statistics().bytes_down == (4 + len(GREETING)) + 10

"""pytest plugin (entry point ``ncat_trio``): relay fixtures for integration tests.

``sync_relay`` and ``toxiproxy_server`` need neither pytest-trio nor an event loop of
yours: they run on a thread of their own (:mod:`ncat_trio.testing`), so plain
synchronous tests and pytest-asyncio tests use them alike::

    def test_client_survives_slow_server(sync_relay):
        proxy = sync_relay(targets=[("127.0.0.1", server_port)])
        proxy.faults.set(Latency(0.2, direction="down"))
        ...                                  # talk to ("127.0.0.1", proxy.port)

    def test_with_a_toxiproxy_client(toxiproxy_server):
        client = Toxiproxy(); client.update_api_consumer(toxiproxy_server.host,
                                                         toxiproxy_server.port)

The Trio ``relay`` fixture below is for Trio tests.

The fixture is a factory: each call starts a relay in pytest-trio's per-test
``nursery`` and returns a :class:`~ncat_trio.relay_api.Relay`; the relays stop (every
connection closed) when the test ends.  Needs pytest-trio (``trio_mode = true`` or
``@pytest.mark.trio``)::

    async def test_client_survives_slow_server(relay):
        proxy = await relay(targets=[("127.0.0.1", server_port)],
                            faults=[Latency(0.2, direction="down")])
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        ...
        proxy.faults.set(ResetPeer(after_bytes=1000, direction="down"))

Keyword arguments are those of :func:`ncat_trio.open_relay`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import pytest
import trio

from . import testing
from .relay_api import Address, Relay, serve_relay


class RelayFactory(Protocol):
    """``await relay(targets=[...], **options)`` → a running :class:`Relay`."""

    async def __call__(self, targets: Iterable[Address], **options: Any) -> Relay: ...


@pytest.fixture
async def relay(nursery: trio.Nursery) -> RelayFactory:
    """Start relays that live until the end of the test (see the module docstring)."""

    async def start(targets: Iterable[Address], **options: Any) -> Relay:
        serve = functools.partial(serve_relay, targets=list(targets), **options)
        started: Relay = await nursery.start(serve)
        return started

    return start


class SyncRelayFactory(Protocol):
    """``sync_relay(targets=[...], **options)`` → a running :class:`testing.Relay`."""

    def __call__(self, targets: Iterable[Address], **options: Any) -> testing.Relay: ...


@pytest.fixture
def sync_relay() -> Iterator[SyncRelayFactory]:
    """Start relays on their own thread (no event loop needed); all stop at teardown."""
    started: list[testing.Relay] = []

    def start(targets: Iterable[Address], **options: Any) -> testing.Relay:
        relay = testing.Relay(targets, **options)
        started.append(relay)
        return relay

    try:
        yield start
    finally:
        for relay in reversed(started):
            relay.close()


@pytest.fixture
def toxiproxy_server() -> Iterator[testing.ApiServer]:
    """toxiproxy's HTTP API on 127.0.0.1 (a free port) for this test: point any
    toxiproxy client at ``toxiproxy_server.url``; every proxy stops at teardown."""
    with testing.ApiServer() as server:
        yield server

"""pytest plugin (entry point ``ncat_trio``): a ``relay`` fixture for integration tests.

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
from collections.abc import Iterable
from typing import Any, Protocol

import pytest
import trio

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

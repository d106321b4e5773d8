"""The relay as a Python API, for scripted integration tests::

    import ncat_trio
    from ncat_trio import Latency, ResetPeer

    async with ncat_trio.open_relay(targets=[("127.0.0.1", server_port)]) as relay:
        client = await trio.open_tcp_stream("127.0.0.1", relay.port)
        relay.faults.set(Latency(0.2, direction="down"))   # live: the next chunk waits
        ...
        assert relay.statistics().peak_buffered <= 256 * 1024

:func:`open_relay` runs the relay in its own nursery for the ``async with`` block;
:func:`serve_relay` runs it in a nursery you pass (``await nursery.start(...)``),
which is what the pytest fixture (``ncat_trio.pytest_plugin``) does.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypedDict, Unpack

import trio

from . import diag
from .modes.relay import RelayOptions, RelayServer, ServerStatistics
from .transport import net
from .transport.access import AccessPolicy
from .transport.faults import AnyFault, FaultPlan
from .transport.relay import DEFAULT_BUFFER

Address = tuple[str, int] | str | net.Endpoint


def _endpoint(address: Address) -> net.Endpoint:
    if isinstance(address, net.Endpoint):
        return address
    if isinstance(address, str):
        host, sep, port = address.rpartition(":")
        if not sep:
            raise ValueError(f"expected 'host:port', got {address!r}")
        return net.Endpoint(host.strip("[]"), int(port))
    return net.Endpoint(address[0], address[1])


class HostPort:
    """``host`` and ``port`` of a server's bound ``address`` (shared with ``testing``)."""

    @property
    def address(self) -> tuple[str, int]:
        raise NotImplementedError

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]


class Relay(HostPort):
    """A running relay: where it listens, its counters, its live faults."""

    def __init__(self, server: RelayServer, faults: FaultPlan) -> None:
        self.server = server
        #: The live fault set: ``relay.faults.set(...)``, ``.add``, ``.remove``, ``.clear``.
        self.faults = faults

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when asked for port 0)."""
        assert self.server.address is not None
        return self.server.address

    def statistics(self) -> ServerStatistics:
        """Connections, bytes each way, bytes buffered now and at peak, refusals."""
        return self.server.statistics()

    async def wait_quiet(self) -> None:
        """Return once no client is being served: every accepted connection has been
        relayed, closed and logged (at once if there is none)."""
        await self.server.wait_quiet()

    async def drain(self, grace: float) -> bool:
        """Stop accepting; give live connections ``grace`` seconds, then cancel them."""
        return await self.server.drain(grace)


async def serve_relay(
    listen: Address = ("127.0.0.1", 0),
    targets: Iterable[Address] = (),
    *,
    buffer: int = DEFAULT_BUFFER,
    faults: Iterable[AnyFault] | FaultPlan = (),
    seed: int | None = None,
    connect_timeout: float = 10.0,
    max_conns: int | None = None,
    reject_over_limit: bool = False,
    idle_timeout: float | None = None,
    allow: Iterable[str] = (),
    deny: Iterable[str] = (),
    verbose: bool = False,
    json_log: bool = False,
    splice: bool = True,
    log: Callable[[str], None] = diag.say,
    task_status: trio.TaskStatus[Relay] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a relay until cancelled; ``await nursery.start(serve_relay, ...)`` gives the
    :class:`Relay` once it is listening.  Arguments as for :func:`open_relay`."""
    plan = faults if isinstance(faults, FaultPlan) else FaultPlan(faults, seed=seed)
    options = RelayOptions(
        listen=_endpoint(listen),
        targets=tuple(_endpoint(t) for t in targets),
        buffer=buffer,
        connect_timeout=connect_timeout,
        max_conns=max_conns,
        reject_over_limit=reject_over_limit,
        idle_timeout=idle_timeout,
        access=AccessPolicy.from_rules(allow, deny),
        verbose=verbose,
        json_log=json_log,
        faults=plan.faults,
        seed=seed,
        splice=splice,
    )
    server = RelayServer(options, plan, log=log)
    listener = await net.open_tcp_listener(options.listen, backlog=options.backlog)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, listener)
        task_status.started(Relay(server, plan))


class RelaySettings(TypedDict, total=False):
    """:func:`open_relay`'s keyword options: :func:`serve_relay`'s, with its defaults."""

    buffer: int
    faults: Iterable[AnyFault] | FaultPlan
    seed: int | None
    connect_timeout: float
    max_conns: int | None
    reject_over_limit: bool
    idle_timeout: float | None
    allow: Iterable[str]
    deny: Iterable[str]
    verbose: bool
    json_log: bool
    splice: bool
    log: Callable[[str], None]


@asynccontextmanager
async def open_relay(
    listen: Address = ("127.0.0.1", 0),
    targets: Iterable[Address] = (),
    **options: Unpack[RelaySettings],
) -> AsyncIterator[Relay]:
    """Run a relay for the ``async with`` block; yields a :class:`Relay`.

    ``targets``: ``(host, port)`` tuples, ``"host:port"`` strings or Endpoints, used
    round-robin (one that refuses is skipped).  ``buffer``: most bytes held per
    direction.  ``faults``: fault objects or a :class:`FaultPlan` (change them live via
    ``relay.faults``); ``seed`` makes toxicity, jitter and slicer variation
    reproducible.  ``max_conns``/``reject_over_limit``, ``idle_timeout``,
    ``allow``/``deny`` (CIDR strings) as on the command line.  ``log`` gets each log
    line (default: stderr); ``verbose`` adds one per connection.  On exit every live
    connection is cancelled and closed.
    """
    serve = functools.partial(serve_relay, listen, targets, **options)
    async with trio.open_nursery() as nursery:
        relay: Relay = await nursery.start(serve)
        try:
            yield relay
        finally:
            nursery.cancel_scope.cancel()


__all__ = ["Relay", "RelaySettings", "open_relay", "serve_relay"]

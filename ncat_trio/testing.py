"""The relay and the toxiproxy API for tests that are not Trio: a synchronous API.

Most test suites are synchronous (requests, psycopg, redis-py) or asyncio.  Here a relay
(or a toxiproxy API server) runs its own ``trio.run`` on a thread of its own, so the
caller needs no event loop and no pytest-trio::

    from ncat_trio.testing import Relay
    from ncat_trio import Latency

    with Relay(targets=[("127.0.0.1", db_port)]) as relay:
        conn = psycopg.connect(port=relay.port, ...)
        relay.faults.set(Latency(0.2, direction="down"))   # live: the next chunk waits
        ...

    with ApiServer() as api:                  # toxiproxy's HTTP API on api.url
        Toxiproxy().update_api_consumer(api.host, api.port)

The thread is started with a readiness handshake (the constructor returns once the
relay listens, or raises what stopped it) and stopped by cancellation: ``close()`` (or
leaving the ``with``) cancels the run, every connection is closed, and the thread is
joined.  Calls from the caller's thread go through ``trio.from_thread`` with the run's
token.  A thread is the only way to serve while a synchronous test blocks on a socket;
it holds exactly one Trio run and nothing else.

The pytest fixtures ``sync_relay`` and ``toxiproxy_server`` (``ncat_trio.pytest_plugin``)
wrap these classes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import trio

from . import relay_api
from .modes import toxiproxy as toxiproxy_mode
from .modes.relay import ServerStatistics
from .relay_api import Address
from .transport import net
from .transport.endpoint import Endpoint
from .transport.faults import AnyFault, FaultPlan

T = TypeVar("T")
R = TypeVar("R")
_log = logging.getLogger("ncat_trio")

#: How long start and stop may take before they fail (a loaded CI machine is slow).
START_TIMEOUT = 30.0


def _log_line(line: str) -> None:
    _log.info("%s", line)


class _TrioThread(Generic[T]):
    """One ``trio.run`` on its own thread, serving ``serve`` until cancelled.

    ``serve(task_status=...)`` must call ``task_status.started(value)`` once ready;
    :meth:`start` returns that value (or raises what ``serve`` raised first).
    """

    def __init__(self, serve: Callable[..., Awaitable[None]], name: str) -> None:
        self._serve = serve
        self._ready = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> T:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError(f"{self._thread.name} did not start within {START_TIMEOUT} s")
        if self._error is not None:
            self._thread.join(START_TIMEOUT)
            raise self._error
        assert self._value is not None
        return self._value

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = _single(exc)
            else:
                _log.exception("%s stopped with an error", self._thread.name)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                self._value = await nursery.start(self._serve)
                self._ready.set()

    def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` in the Trio thread and return its result."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def run(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def stop(self) -> None:
        """Cancel the run and join the thread (idempotent)."""
        if self._thread.is_alive() and self._scope is not None:
            with contextlib.suppress(trio.RunFinishedError):  # it had just ended
                self.run_sync(self._scope.cancel)
        if self._thread.ident is not None:
            self._thread.join(START_TIMEOUT)
            if self._thread.is_alive():
                raise TimeoutError(f"{self._thread.name} did not stop within {START_TIMEOUT} s")


def _single(exc: BaseException) -> BaseException:
    """The one error inside trio's exception groups, if there is exactly one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class SyncFaults:
    """A relay's live fault set, changed from any thread (``relay.faults``)."""

    def __init__(self, runner: _TrioThread[Any], plan: FaultPlan) -> None:
        self._runner = runner
        self._plan = plan

    @property
    def faults(self) -> tuple[AnyFault, ...]:
        return self._plan.faults

    def set(self, *faults: AnyFault) -> None:
        """Replace every fault (no arguments: remove all); live connections see the
        change at their next chunk."""
        self._runner.run_sync(functools.partial(self._plan.set, *faults))

    def add(self, fault: AnyFault) -> None:
        self._runner.run_sync(self._plan.add, fault)

    def remove(self, fault: AnyFault) -> None:
        self._runner.run_sync(self._plan.remove, fault)

    def clear(self) -> None:
        self._runner.run_sync(self._plan.clear)


class _OnThread(relay_api.HostPort):
    """A server on its own thread (``_runner``): ``close()``, or leave the ``with``."""

    _runner: _TrioThread[Any]

    def close(self) -> None:
        """Stop: the listener and every connection are closed (idempotent)."""
        self._runner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Relay(_OnThread):
    """A relay on its own thread: ``with Relay(targets=[...], faults=[...]) as r``.

    Arguments are those of :func:`ncat_trio.open_relay` (``listen`` defaults to
    127.0.0.1 port 0; log lines go to the ``ncat_trio`` logger).  Running once the
    constructor returns.
    """

    def __init__(
        self,
        targets: Iterable[Address],
        *,
        listen: Address = ("127.0.0.1", 0),
        faults: Iterable[AnyFault] = (),
        seed: int | None = None,
        **options: Any,
    ) -> None:
        self._plan = FaultPlan(faults, seed=seed)
        options.setdefault("log", _log_line)
        serve = functools.partial(
            relay_api.serve_relay, listen, list(targets), faults=self._plan, **options
        )
        self._runner: _TrioThread[relay_api.Relay] = _TrioThread(serve, "ncat-trio relay")
        self._relay = self._runner.start()
        #: The live fault set: ``relay.faults.set(...)``, ``.add``, ``.remove``, ``.clear``.
        self.faults = SyncFaults(self._runner, self._plan)

    @property
    def address(self) -> tuple[str, int]:
        return self._relay.address

    def statistics(self) -> ServerStatistics:
        """Connections, bytes each way, bytes buffered now and at peak, refusals."""
        return self._runner.run_sync(self._relay.statistics)

    def wait_quiet(self, timeout: float = START_TIMEOUT) -> None:
        """Block until no client is being served (TimeoutError after ``timeout`` s)."""

        async def wait() -> None:
            with trio.fail_after(timeout):
                await self._relay.wait_quiet()

        try:
            self._runner.run(wait)
        except trio.TooSlowError:
            raise TimeoutError(f"relay still busy after {timeout} s") from None


class ApiServer(_OnThread):
    """toxiproxy's HTTP API on its own thread: ``with ApiServer() as api: api.url``.

    ``config``: proxies to create first (toxiproxy's populate JSON, already parsed).
    Listens on 127.0.0.1 port 0 unless told otherwise.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        config: Iterable[object] = (),
        seed: int | None = None,
        verbose: bool = False,
    ) -> None:
        async def serve(
            task_status: trio.TaskStatus[tuple[tuple[str, int], Any]],
        ) -> None:
            listener = await net.open_tcp_listener(Endpoint(host, port))
            sockname = listener.socket.getsockname()

            serve_api = functools.partial(
                toxiproxy_mode.serve_toxiproxy, listener, config=list(config), seed=seed,
                verbose=verbose, log=_log_line,
            )  # fmt: skip
            async with trio.open_nursery() as nursery:
                api = await nursery.start(serve_api)
                task_status.started(((sockname[0], sockname[1]), api))

        self._runner: _TrioThread[tuple[tuple[str, int], Any]] = _TrioThread(
            serve, "ncat-trio toxiproxy API"
        )
        self._address, self._api = self._runner.start()

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (what toxiproxy clients take as their server)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


__all__ = ["ApiServer", "Relay", "SyncFaults"]

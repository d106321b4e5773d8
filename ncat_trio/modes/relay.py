"""relay: accept many clients, connect each to a target, relay both ways with a bound.

The nursery tree is the work: process → server (accept loop + one task per client) →
:class:`~ncat_trio.transport.relay.RelayConnection` (two pump tasks).  Per client:

* access: ``--allow/--deny/--allowfile/--denyfile``, the listeners' one
  :class:`~ncat_trio.transport.access.AccessPolicy` (deny wins; IPv4-mapped IPv6 peers
  and rules are normalised to IPv4 first, so a v4 rule cannot be bypassed through the
  v6 spelling).  Denied clients are reset at once, before any target is dialled, and
  logged.
* limits: with ``--max-conns N`` the accept loop takes a slot *before* ``accept``: the
  N+1th client completes its TCP handshake in the kernel backlog and waits there
  (backpressure on accept) until a slot frees.  ``--reject-over-limit`` accepts it and
  resets it at once instead.
* targets: round-robin; a target that refuses or does not answer within
  ``--connect-timeout`` is skipped for the next one; if none answers the client is reset.
* SIGTERM drains: stop accepting (the listener closes), let transfers finish for up
  to ``--drain-timeout`` seconds, cancel what is left, exit 143.  The runner cancels
  everything on SIGTERM, so :func:`relay_main` opens its own signal receiver for SIGTERM
  and SIGUSR1: Trio delivers a signal to the most recently opened receiver, which
  shadows the runner's for SIGTERM while the relay runs (SIGINT and SIGHUP still stop
  at once: 130, 129).
"""

from __future__ import annotations

import collections
import contextlib
import json
import resource
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import trio

from .. import diag, report_schema
from ..errors import ConnectError, ExitCode, NcatError, leaves
from ..json_summary import Summary
from ..transport import net
from ..transport.access import (  # the one home of access rules, re-exported here
    AccessPolicy as AccessPolicy,
)
from ..transport.access import normalise_address as normalise_address
from ..transport.access import parse_network as parse_network
from ..transport.faults import AnyFault, FaultPlan
from ..transport.relay import (
    DEFAULT_BUFFER,
    Ending,
    RelayConnection,
    RelayMeter,
    RelayResult,
    RelayStatistics,
    abort,
)


@dataclass(frozen=True)
class RelayOptions:
    """Everything the relay needs; built by the CLI or by :func:`ncat_trio.open_relay`."""

    listen: net.Endpoint
    targets: tuple[net.Endpoint, ...]
    buffer: int = DEFAULT_BUFFER  # per direction, bytes held in user space at most
    connect_timeout: float = 10.0
    max_conns: int | None = None
    reject_over_limit: bool = False
    idle_timeout: float | None = None
    access: AccessPolicy = field(default_factory=AccessPolicy)
    drain_timeout: float = 5.0
    verbose: bool = False  # one line per connection
    stats_interval: float | None = None
    json_log: bool = False
    json: bool = False  # a summary object on stdout at exit (report_schema.RELAY)
    json_file: str | None = None  # ... appended to this file (json_summary.Summary)
    faults: tuple[AnyFault, ...] = ()
    seed: int | None = None
    splice: bool = True  # Linux splice(2) fast path when no fault applies
    backlog: int = 4096


@dataclass(frozen=True)
class ServerStatistics(RelayStatistics):
    """A snapshot of a relay server (the ``--stats`` line, ``Relay.statistics()``): its
    connections' meter (bytes up = client → target), then the clients refused."""

    accepted: int  # clients accepted (including denied/rejected/unreachable)
    denied: int  # refused by --allow/--deny
    rejected: int  # refused by --max-conns with --reject-over-limit
    unreachable: int  # no target answered


class RelayServer:
    """The accept loop and per-client work; shared by the CLI and the Python API."""

    def __init__(
        self,
        options: RelayOptions,
        plan: FaultPlan | None = None,
        log: Callable[[str], None] = diag.say,
    ) -> None:
        if not options.targets:
            raise ValueError("a relay needs at least one target")
        self.options = options
        self.plan = plan
        self.meter = RelayMeter()
        self.address: tuple[str, int] | None = None
        self._log = log
        self._accepted = self._denied = self._rejected = self._unreachable = 0
        self._next_target = 0
        self._slots = trio.Semaphore(options.max_conns) if options.max_conns else None
        self._accept_scope = trio.CancelScope()
        self._clients: trio.Nursery | None = None
        self._listener: trio.SocketListener | None = None
        self._live = 0
        self._fd_waiters = 0  # clients waiting for an fd to connect to their target
        self._no_fd_waiters = trio.Event()
        self._no_fd_waiters.set()
        self._quiet = trio.Event()
        self._quiet.set()
        self._endings: collections.Counter[str] = collections.Counter()
        self.drain_finished: bool | None = None  # set by drain(): did everything finish?
        self._loops: dict[net.Endpoint, bool] = {}  # target -> is it our own address?

    def endings(self) -> dict[str, int]:
        """Relayed connections so far by how they ended (``Ending`` values)."""
        return dict(self._endings)

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            **asdict(self.meter.statistics()), accepted=self._accepted, denied=self._denied,
            rejected=self._rejected, unreachable=self._unreachable,
        )  # fmt: skip

    async def serve(
        self,
        listener: trio.SocketListener,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept and relay until cancelled or drained; closes ``listener``."""
        sockname = listener.socket.getsockname()
        self.address = (sockname[0], sockname[1])
        self._listener = listener
        async with trio.open_nursery() as clients:
            self._clients = clients
            with self._accept_scope:
                try:
                    task_status.started()
                    await self._accept_loop(listener, clients)
                finally:
                    await trio.aclose_forcefully(listener)

    def stop_accepting(self) -> None:
        """Close the listener now: new clients are refused (queued ones are reset)."""
        self._accept_scope.cancel()  # first, so the accept loop sees Cancelled...
        if self._listener is not None:
            self._listener.socket.close()  # ...not a ClosedResourceError

    async def drain(self, grace: float) -> bool:
        """Stop accepting, let live connections finish for up to ``grace`` seconds, then
        cancel the rest.  True if everything finished by itself."""
        self.stop_accepting()
        with trio.move_on_after(grace):
            await self.wait_quiet()
        finished = self._live == 0
        self.drain_finished = finished
        if self._clients is not None:
            self._clients.cancel_scope.cancel()
        return finished

    async def wait_quiet(self) -> None:
        """Return once no client is being served (at once if none is)."""
        await self._quiet.wait()

    def report(self) -> None:
        """Log one statistics line (``--stats``, SIGUSR1)."""
        stats = asdict(self.statistics())
        if self.options.json_log:
            self._log_json({"event": "stats", **stats})
        else:
            self._log("stats: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items()))

    async def report_every(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            self.report()

    # -- accepting -----------------------------------------------------------------

    async def _accept_loop(self, listener: trio.SocketListener, clients: trio.Nursery) -> None:
        while True:
            holding_slot = False
            if self._slots is not None and not self.options.reject_over_limit:
                await self._slots.acquire()  # the N+1th client waits in the backlog
                holding_slot = True
            try:
                if not self._no_fd_waiters.is_set():  # (a set Event's wait still checkpoints)
                    await self._no_fd_waiters.wait()  # clients waiting for a target fd go first
                # net.accept: EMFILE waited out (one line per burst), reset clients skipped
                client = await net.accept(listener, on_pressure=self._accept_pressure, on_gone=None)
            except BaseException:
                if holding_slot:
                    self._release_slot()
                raise
            self._accepted += 1
            try:
                peer = client.socket.getpeername()
            except OSError:  # reset while it waited in the backlog: already gone
                if holding_slot:
                    self._release_slot()
                await trio.aclose_forcefully(client)
                continue
            if not self.options.access.permits(peer[0]):
                self._denied += 1
                if holding_slot:
                    self._release_slot()
                self._event("denied", peer, why="not allowed by --allow/--deny")
                await abort(client)
                continue
            if self._slots is not None and not holding_slot:
                try:
                    self._slots.acquire_nowait()
                except trio.WouldBlock:
                    self._rejected += 1
                    self._event("rejected", peer, why=f"over --max-conns {self.options.max_conns}")
                    await abort(client)
                    continue
            self._live += 1
            if self._quiet.is_set():
                self._quiet = trio.Event()
            clients.start_soon(self._serve_client, client, peer)

    def _accept_pressure(self, why: str) -> None:
        self._event("accept-error", None, why=f"{why}; retrying")

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    # -- one client ----------------------------------------------------------------

    async def _serve_client(self, client: trio.SocketStream, peer: tuple[str, int]) -> None:
        start = trio.current_time()
        try:
            target, where = await self._connect_target()
            if target is None:
                self._unreachable += 1
                self._event("unreachable", peer, why=f"no target reachable ({where})")
                await abort(client)
                return
            connection = RelayConnection(
                client, target, buffer=self.options.buffer,
                client_name=f"client {diag.format_address(peer)}", target_name=f"target {where}",
                idle_timeout=self.options.idle_timeout,
                faults=self.plan.connection() if self.plan is not None else None,
                meter=self.meter, splice=self.options.splice,
            )  # fmt: skip
            result: RelayResult | None = None
            try:
                result = await connection.run()
            finally:
                self._endings[(Ending.CANCELLED if result is None else result.ending).value] += 1
                if self.options.verbose:
                    self._connection_line(peer, where, connection, result, start)
        except BaseException:
            await trio.aclose_forcefully(client)
            raise
        finally:
            self._release_slot()
            self._live -= 1
            if self._live == 0:
                self._quiet.set()

    async def _connect_target(self) -> tuple[trio.SocketStream | None, str]:
        targets = self.options.targets
        first = self._next_target
        self._next_target = (first + 1) % len(targets)
        failures: list[str] = []
        for i in range(len(targets)):
            endpoint = targets[(first + i) % len(targets)]
            if await self._is_loop(endpoint):
                failures.append(f"{endpoint}: {_LOOP}")
                continue
            with trio.move_on_after(self.options.connect_timeout):
                try:
                    stream = await net.connect_tcp(
                        endpoint, nodelay=True, on_pressure=self._waiting_for_fd
                    )
                except ConnectError as exc:
                    failures.append(f"{endpoint}: {exc.why}")
                    continue
                try:
                    target_address = stream.socket.getpeername()
                except OSError:  # reset already: the relay will find out and say so
                    return stream, str(endpoint)
                if net.reaches(self.address, target_address):  # the name moved onto us
                    await trio.aclose_forcefully(stream)
                    failures.append(f"{endpoint}: {_LOOP}")
                    continue
                return stream, diag.format_address(target_address)
            failures.append(f"{endpoint}: timed out after {self.options.connect_timeout:g} s")
        return None, "; ".join(failures)

    async def _is_loop(self, endpoint: net.Endpoint) -> bool:
        """Does ``endpoint`` resolve to this relay's own listening address?  Checked
        before connecting (a connection to ourselves would be accepted, connect to
        ourselves again, and so on) and remembered per target."""
        known = self._loops.get(endpoint)
        if known is None:
            try:
                infos = await net.resolve(endpoint)
            except ConnectError:  # the connect reports it
                return False
            known = any(net.reaches(self.address, info[4]) for info in infos)
            self._loops[endpoint] = known
        return known

    @contextlib.contextmanager
    def _waiting_for_fd(self, why: str) -> Iterator[None]:
        """A client waits out fd exhaustion (EMFILE...) to connect to its target, as
        accept does, instead of being reset as unreachable; while any client waits here
        the accept loop takes nobody new (they would only hold more of the scarce fds)."""
        if self._fd_waiters == 0:
            self._no_fd_waiters = trio.Event()
        self._fd_waiters += 1
        try:
            yield
        finally:
            self._fd_waiters -= 1
            if self._fd_waiters == 0:
                self._no_fd_waiters.set()

    # -- logging -------------------------------------------------------------------

    def _connection_line(
        self,
        peer: tuple[str, int],
        target: str,
        connection: RelayConnection,
        result: RelayResult | None,
        start: float,
    ) -> None:
        if result is None:  # cancelled: report what had moved
            s = connection.statistics()
            up, down, ending, why = s.bytes_up, s.bytes_down, Ending.CANCELLED, "cancelled"
        else:
            up, down, ending, why = result.bytes_up, result.bytes_down, result.ending, result.why
        duration = trio.current_time() - start
        if self.options.json_log:
            self._log_json({
                "event": "connection", "peer": diag.format_address(peer), "target": target,
                "bytes_up": up, "bytes_down": down, "duration": round(duration, 6),
                "end": ending.value, "why": why,
            })  # fmt: skip
            return
        how = ending.value if ending is Ending.CLOSED else f"{ending.value} ({why})"
        self._log(
            f"{diag.format_address(peer)} -> {target}: up {up} B, down {down} B, "
            f"{duration:.3f} s, {how}"
        )

    def _event(self, event: str, peer: tuple[str, int] | None, *, why: str) -> None:
        """Denied, rejected, unreachable, accept errors: always logged."""
        where = "" if peer is None else diag.format_address(peer)
        if self.options.json_log:
            self._log_json({"event": event, "peer": where, "why": why})
        else:
            self._log(f"{event} {where}: {why}" if where else f"{event}: {why}")

    def _log_json(self, record: dict[str, object]) -> None:
        self._log(json.dumps(record, separators=(",", ":")))


_LOOP = "this relay's own listening address (a loop: refused)"


def raise_fd_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit: each client costs two sockets
    and, with splice, two pipes (four fds)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@dataclass(frozen=True)
class WorkerSetup:
    """How a ``--workers`` child listens and reports (see relay_workers.py)."""

    index: int  # 1..N, prefixed to its log lines
    listen: net.Endpoint  # the address the parent reserved (net.reserve_reuseport)
    ready: Callable[[], None]  # called once listening (the parent prints readiness)


async def relay_main(opts: RelayOptions, worker: WorkerSetup | None = None) -> int:
    """``ncat-trio relay``: serve until a signal; SIGTERM drains (exit 143)."""
    raise_fd_limit()
    plan = FaultPlan(opts.faults, seed=opts.seed) if opts.faults else None
    say = diag.say if worker is None else prefixed(f"worker {worker.index}: ")
    server = RelayServer(opts, plan, log=_json_line if opts.json_log else say)
    endpoint = opts.listen if worker is None else worker.listen
    listener = await net.open_tcp_listener(
        endpoint, backlog=opts.backlog, reuseport=worker is not None
    )
    where = diag.format_address(listener.socket.getsockname())
    started = trio.current_time()
    failure: BaseException | None = None
    try:
        return await _serve_until_signal(opts, server, listener, worker, say)
    except BaseException as exc:
        failure = exc
        raise
    finally:
        summary = Summary(opts.json, opts.json_file)
        if summary.wanted:
            seconds = trio.current_time() - started
            summary.write_at_end(relay_summary(opts, server, where, worker, seconds, failure), say)


async def _serve_until_signal(
    opts: RelayOptions,
    server: RelayServer,
    listener: trio.SocketListener,
    worker: WorkerSetup | None,
    say: Callable[[str], None],
) -> int:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGUSR1) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listener)
            assert server.address is not None
            if worker is None:
                diag.say(f"listening on {diag.format_address(server.address)}")
            else:
                worker.ready()
            if opts.stats_interval:
                nursery.start_soon(server.report_every, opts.stats_interval)
            draining = False
            async for signum in signals:
                if signum == signal.SIGUSR1:
                    server.report()
                elif not draining:
                    draining = True
                    nursery.start_soon(
                        _drain, server, opts.drain_timeout, say, nursery.cancel_scope
                    )
                else:  # a second SIGTERM: stop now
                    nursery.cancel_scope.cancel()
    if worker is None:  # a worker's parent says it once for all
        diag.say("interrupted by SIGTERM")
    return int(ExitCode.SIGTERM)


def relay_summary(
    opts: RelayOptions,
    server: RelayServer,
    where: str,
    worker: WorkerSetup | None,
    seconds: float,
    failure: BaseException | None,
) -> dict[str, object]:
    """The ``--json`` object (schema: report_schema.RELAY)."""
    error = _first_ncat_error(failure)  # None with a failure: SIGINT/SIGHUP cancelled us
    drained = "drained" if server.drain_finished else "drain timeout"
    end = report_schema.ending(error, failure is not None, drained, int(ExitCode.SIGTERM))
    s = server.statistics()
    return report_schema.record(
        report_schema.RELAY,
        listen=where, targets=[str(t) for t in opts.targets],
        worker=None if worker is None else worker.index, seconds=round(seconds, 6),
        accepted=s.accepted, connections=s.total, denied=s.denied,
        rejected=s.rejected, unreachable=s.unreachable, endings=server.endings(),
        bytes_up=s.bytes_up, bytes_down=s.bytes_down, peak_buffered=s.peak_buffered,
        peak_total_buffered=s.peak_total_buffered, **end,
    )  # fmt: skip


def _first_ncat_error(exc: BaseException | None) -> NcatError | None:
    inside = () if exc is None else leaves(exc)
    return next((leaf for leaf in inside if isinstance(leaf, NcatError)), None)


async def _drain(
    server: RelayServer, grace: float, say: Callable[[str], None], everything: trio.CancelScope
) -> None:
    server.stop_accepting()
    live = server.statistics().active
    say(f"SIGTERM: draining {live} connection(s), up to {grace:g} s (--drain-timeout)")
    finished = await server.drain(grace)
    if not finished:
        say(f"drain timeout: cancelled {server.statistics().active} connection(s)")
    await server.wait_quiet()
    everything.cancel()


def prefixed(prefix: str, log: Callable[[str], None] = diag.say) -> Callable[[str], None]:
    """``log`` with ``prefix`` before each line (a worker's, a toxiproxy proxy's)."""

    def say(message: str) -> None:
        log(prefix + message)

    return say


def _json_line(line: str) -> None:
    """``--json-log``: JSON records go to stderr bare (no prefix), one per line, by the
    same never-blocking path as the other log lines."""
    diag.write_raw(line + "\n")

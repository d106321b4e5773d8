"""toxiproxy's HTTP API (version 2) over ncat-trio's relay: ``ncat-trio toxiproxy``.

Any toxiproxy client (Ruby, Go, Python, JS, testcontainers, curl) can drive it.  Each
proxy is a :class:`~ncat_trio.modes.relay.RelayServer` with its own
:class:`~ncat_trio.transport.faults.FaultPlan`; each toxic maps to one relay fault, so a
toxic added, changed or removed acts on live connections at their next chunk, and the
relay's bounded buffers and lossless half-close hold underneath.

Shapes, field names, defaults and status codes are toxiproxy's (api.go, proxy.go,
toxic_collection.go, toxics/*.go of Shopify/toxiproxy v2.12):

* proxy ``{"name", "listen", "upstream", "enabled", "toxics"}``; ``enabled`` defaults to
  true; ``listen`` with port 0 is answered with the real port; ``enabled: false`` closes
  the listener and every live connection; a changed ``listen``/``upstream`` restarts it.
* toxic ``{"attributes", "name", "type", "stream", "toxicity"}``; ``stream`` defaults to
  ``downstream``, ``name`` to ``TYPE_STREAM``, ``toxicity`` to 1; attributes in
  toxiproxy's units (below); an update merges attributes and may change ``toxicity``.
* 201 on proxy create and populate, 200 on toxic create (as toxiproxy), 204 on delete
  and reset, 404 unknown, 409 duplicate name or listen port in use, 400 bad body
  (``{"error": "...", "status": N}``), 403 for browsers (toxiproxy's guard: a web page
  must not open ports on this machine).

Where ncat-trio's faults differ from toxiproxy's toxics, on purpose:
``timeout`` holds data instead of dropping it (removing the toxic resumes the stream
where it stopped; toxiproxy closes those connections), ``latency`` delays each chunk
before the next is read, half-close passes through every toxic, and an invalid value
(negative latency, slicer variation >= size, toxicity outside 0..1) is a 400.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import json
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from .. import __version__, diag
from ..errors import ConnectError, UsageError
from ..transport import net
from ..transport.endpoint import Endpoint
from ..transport.faults import FaultPlan
from .http_server import Request, Response, serve_http
from .relay import RelayOptions, RelayServer, prefixed, raise_fd_limit
from .toxiproxy_toxics import ApiError, Toxic, bad_body, new_toxic, updated_toxic

#: What ``GET /version`` answers: the toxiproxy API version spoken, with ours as semver
#: build metadata (ignored when versions are compared).
VERSION = f"2.12.0+ncat-trio.{__version__}"


# ---- proxies ---------------------------------------------------------------------


def split_host_port(text: str, what: str) -> tuple[str | None, int]:
    """Go's ``net.SplitHostPort`` for ``host:port``, ``[v6]:port`` and ``:port``
    (empty host: None)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise bad_body(f"{what} {text!r}: expected [IPV6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise bad_body(f"{what} {text!r}: expected HOST:PORT")
    if not port.isdigit() or int(port) > 65535:
        raise bad_body(f"{what} {text!r}: bad port")
    return (host or None), int(port)


@dataclass
class Proxy:
    """One proxy: its fields, its toxics, and while enabled a running relay."""

    name: str
    listen: str
    upstream: str
    enabled: bool = False
    toxics: list[Toxic] = field(default_factory=list)
    plan: FaultPlan = field(default_factory=FaultPlan)
    server: RelayServer | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics_json(),
        }

    def toxics_json(self) -> list[dict[str, object]]:
        # toxiproxy lists upstream toxics first, then downstream, each in order added.
        ordered = sorted(self.toxics, key=lambda t: t.stream != "upstream")
        return [t.to_json() for t in ordered]

    def toxic(self, name: str) -> Toxic:
        """The toxic called ``name``; 404 if there is none."""
        toxic = next((t for t in self.toxics if t.name == name), None)
        if toxic is None:
            raise ApiError(404, "toxic not found")
        return toxic

    def apply_toxics(self) -> None:
        """Hand the toxics to the relay: live connections see them at their next chunk."""
        faults = [t.fault() for t in self.toxics]
        self.plan.set(*(f for f in faults if f is not None))


def _proxy_fields(body: object, base: Proxy | None) -> tuple[str, str, str, bool]:
    """(name, listen, upstream, enabled) from a create/update body; ``base`` gives the
    defaults of an update (toxiproxy decodes onto the existing proxy)."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    values: list[Any] = ["", "", "", True]
    if base is not None:
        values = [base.name, base.listen, base.upstream, base.enabled]
    for i, (key, kind, what) in enumerate(_PROXY_FIELDS):
        if body.get(key) is not None:
            if not isinstance(body[key], kind):
                raise bad_body(f"{key} must be {what}")
            values[i] = body[key]
    return values[0], values[1], values[2], values[3]


_PROXY_FIELDS = (
    ("name", str, "a string"),
    ("listen", str, "a string"),
    ("upstream", str, "a string"),
    ("enabled", bool, "true or false"),
)


def _check_new(name: str, upstream: str, where: str = "") -> None:
    if not name:
        raise ApiError(400, f"missing required field: name{where}")
    if not upstream:
        raise ApiError(400, f"missing required field: upstream{where}")


class ToxiproxyApi:
    """The proxies and the routes.  Runs its relays in ``nursery``; every request is
    handled under one lock, as toxiproxy's collection mutex serialises them."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        seed: int | None = None,
        verbose: bool = False,
        log: Callable[[str], None] = diag.say,
    ) -> None:
        self._nursery = nursery
        self._seed = seed
        self._verbose = verbose
        self._log = log
        self._lock = trio.Lock()
        self.proxies: dict[str, Proxy] = {}

    # -- running relays -------------------------------------------------------------

    async def _start(self, proxy: Proxy) -> None:
        """Listen and relay; ``proxy.listen`` becomes the bound address.  409 if the
        port is taken, 500 for other listen errors (toxiproxy: 500 for all)."""
        if proxy.enabled:
            return
        host, port = split_host_port(proxy.listen or ":0", "listen")
        upstream_host, upstream_port = split_host_port(proxy.upstream, "upstream")
        target = Endpoint(upstream_host or "localhost", upstream_port)
        try:
            listener = await net.open_tcp_listener(Endpoint(host, port), backlog=1024)
        except ConnectError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                raise ApiError(409, f"listen {proxy.listen}: address already in use") from exc
            raise ApiError(500, f"listen {proxy.listen}: {exc.why}") from exc
        options = RelayOptions(
            listen=Endpoint(host, port), targets=(target,), verbose=self._verbose
        )
        server = RelayServer(
            options, proxy.plan, log=prefixed(f"proxy {diag.printable(proxy.name)}: ", self._log)
        )
        await self._nursery.start(server.serve, listener)
        proxy.server = server
        proxy.listen = diag.format_address(listener.socket.getsockname())
        proxy.enabled = True

    async def _stop(self, proxy: Proxy) -> None:
        """Close the listener and every live connection; return once they are closed."""
        if not proxy.enabled:
            return
        proxy.enabled = False
        if proxy.server is not None:
            await proxy.server.drain(0)  # the listener is closed at once
            await proxy.server.wait_quiet()
        proxy.server = None

    async def _differs(self, proxy: Proxy, listen: str, upstream: str) -> bool:
        """toxiproxy's Proxy.Differs: the upstream text changed, or the listen address
        resolves to another one than the bound address (port 0 always differs)."""
        if upstream != proxy.upstream:
            return True
        if listen == proxy.listen:
            return False
        host, port = split_host_port(listen or ":0", "listen")
        if port == 0:
            return True
        if host is None:  # every address: what _start binds (one dual-stack socket)
            return proxy.listen not in (f"[::]:{port}", f"0.0.0.0:{port}")
        try:
            infos = await net.resolve(Endpoint(host, port), passive=True)
        except ConnectError as exc:
            raise bad_body(f"listen {listen!r}: {exc}") from exc
        return diag.format_address(infos[0][4]) != proxy.listen

    async def close(self) -> None:
        """Stop every proxy (the server is shutting down)."""
        for proxy in list(self.proxies.values()):
            await self._stop(proxy)

    # -- operations (each also reachable over HTTP) ----------------------------------

    async def create(self, body: object) -> Proxy:
        name, listen, upstream, enabled = _proxy_fields(body, None)
        _check_new(name, upstream)
        if name in self.proxies:
            raise ApiError(409, "proxy already exists")
        split_host_port(upstream, "upstream")
        return await self._add(name, listen, upstream, enabled)

    async def _add(self, name: str, listen: str, upstream: str, enabled: bool) -> Proxy:
        proxy = Proxy(name, listen, upstream, plan=FaultPlan(seed=self._seed))
        if enabled:
            await self._start(proxy)
        self.proxies[name] = proxy
        return proxy

    async def update(self, proxy: Proxy, body: object) -> Proxy:
        _, listen, upstream, enabled = _proxy_fields(body, proxy)
        split_host_port(upstream, "upstream")
        if await self._differs(proxy, listen, upstream):
            was_enabled = proxy.enabled
            await self._stop(proxy)
            proxy.listen, proxy.upstream = listen, upstream
            if was_enabled and not enabled:
                return proxy
        if enabled and not proxy.enabled:
            await self._start(proxy)
        elif not enabled and proxy.enabled:
            await self._stop(proxy)
        return proxy

    async def delete(self, proxy: Proxy) -> None:
        await self._stop(proxy)
        del self.proxies[proxy.name]

    async def reset(self) -> None:
        """Enable every proxy, remove every toxic."""
        for proxy in self.proxies.values():
            await self._start(proxy)
            proxy.toxics.clear()
            proxy.apply_toxics()

    async def populate(self, body: object) -> tuple[list[Proxy], ApiError | None]:
        """Create or replace a list of proxies (toxiproxy's PopulateJson): all are
        checked first; one whose listen and upstream match is left as it is."""
        if not isinstance(body, list):
            raise bad_body("expected a JSON array of proxies")
        wanted = []
        for index, item in enumerate(body, 1):
            name, listen, upstream, enabled = _proxy_fields(item, None)
            _check_new(name, upstream, f" at proxy {index}")
            split_host_port(upstream, "upstream")
            wanted.append((name, listen, upstream, enabled))
        done: list[Proxy] = []
        for name, listen, upstream, enabled in wanted:
            try:
                existing = self.proxies.get(name)
                if existing is not None:
                    if not await self._differs(existing, listen, upstream):
                        done.append(existing)
                        continue
                    await self._stop(existing)
                    del self.proxies[name]
                done.append(await self._add(name, listen, upstream, enabled))
            except ApiError as exc:
                return done, exc
        return done, None

    def add_toxic(self, proxy: Proxy, body: object) -> Toxic:
        toxic = new_toxic(body)
        if any(t.name == toxic.name for t in proxy.toxics):
            raise ApiError(409, "toxic already exists")
        proxy.toxics.append(toxic)
        proxy.apply_toxics()
        return toxic

    def update_toxic(self, proxy: Proxy, name: str, body: object) -> Toxic:
        toxic = proxy.toxic(name)
        new = updated_toxic(toxic, body)
        proxy.toxics[proxy.toxics.index(toxic)] = new
        proxy.apply_toxics()
        return new

    def remove_toxic(self, proxy: Proxy, name: str) -> None:
        proxy.toxics.remove(proxy.toxic(name))
        proxy.apply_toxics()

    # -- HTTP ----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Route one request (the :mod:`http_server` handler)."""
        agent = request.header("user-agent") or ""
        if agent.startswith("Mozilla/"):
            # toxiproxy's stopBrowsersMiddleware: this API opens ports and cuts
            # connections, so a web page must not reach it through a browser.
            return Response(403, b"User agent not allowed\n", "text/plain; charset=utf-8")
        async with self._lock:
            try:
                status, body = await self._route(request)
            except ApiError as exc:
                status, body = exc.status, exc.body()
            except Exception as exc:  # a bug: answer 500 and keep serving the others
                self._log(f"HTTP API: internal error (a bug): {diag.printable(repr(exc))}")
                self._log(diag.printable("".join(traceback.format_exception(exc))))
                status, body = 500, ApiError(500, "internal error").body()
        if self._verbose:
            self._log(
                f"HTTP API: {request.peer} {diag.printable(request.method)} "
                f"{diag.printable(request.path)} -> {status}"
            )
        if body is None:
            return Response(status)
        if isinstance(body, _Plain):
            return Response(status, body, "text/plain; charset=utf-8")
        if isinstance(body, bytes):
            return Response(status, body, "application/json; charset=utf-8")
        return Response(status, json.dumps(body, separators=(",", ":")).encode() + b"\n")

    async def _route(self, request: Request) -> tuple[int, object]:
        parts = [urllib.parse.unquote(p) for p in request.path.strip("/").split("/")]
        method = request.method
        if parts == ["version"] and method == "GET":
            return 200, json.dumps({"version": VERSION}).encode() + b"\n"
        if parts == ["reset"] and method == "POST":
            await self.reset()
            return 204, None
        if parts == ["populate"] and method == "POST":
            proxies, error = await self.populate(_decode(request.body))
            listed = [p.to_json() for p in proxies]
            if error is not None:
                return error.status, {**error.body(), "proxies": listed}
            return 201, {"proxies": listed}
        if parts == ["proxies"]:
            if method == "GET":
                return 200, {name: p.to_json() for name, p in self.proxies.items()}
            if method == "POST":
                return 201, (await self.create(_decode(request.body))).to_json()
            return _NOT_ALLOWED
        if parts[0] != "proxies" or not 2 <= len(parts) <= 4 or parts[2:3] not in ([], ["toxics"]):
            return _PAGE_NOT_FOUND
        if len(parts) == 2 and method not in ("GET", "POST", "PATCH", "DELETE"):
            return _NOT_ALLOWED
        proxy = self.proxies.get(parts[1])
        if proxy is None:
            raise ApiError(404, "proxy not found")
        if len(parts) == 2:
            if method == "GET":
                return 200, proxy.to_json()
            if method == "DELETE":
                await self.delete(proxy)
                return 204, None
            return 200, (await self.update(proxy, _decode(request.body))).to_json()
        if len(parts) == 3:
            if method == "GET":
                return 200, proxy.toxics_json()
            if method == "POST":
                return 200, self.add_toxic(proxy, _decode(request.body)).to_json()
            return _NOT_ALLOWED
        name = parts[3]
        if method == "GET":
            return 200, proxy.toxic(name).to_json()
        if method in ("POST", "PATCH"):
            return 200, self.update_toxic(proxy, name, _decode(request.body)).to_json()
        if method == "DELETE":
            self.remove_toxic(proxy, name)
            return 204, None
        return _NOT_ALLOWED


class _Plain(bytes):
    """A text/plain answer (gorilla/mux's 404 and 405 pages)."""


_NOT_ALLOWED: tuple[int, object] = (405, _Plain(b""))
_PAGE_NOT_FOUND: tuple[int, object] = (404, _Plain(b"404 page not found\n"))


def _decode(body: bytes) -> object:
    if not body.strip():
        raise bad_body("EOF")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_body(str(exc)) from exc


def load_config(text: str) -> list[object]:
    """Parse a ``--config`` file (toxiproxy's populate JSON: an array of proxies)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError("--config", f"not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise UsageError("--config", "expected a JSON array of proxies")
    return data


async def serve_toxiproxy(
    listener: trio.SocketListener,
    *,
    config: Iterable[object] = (),
    seed: int | None = None,
    verbose: bool = False,
    log: Callable[[str], None] = diag.say,
    task_status: trio.TaskStatus[ToxiproxyApi] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API on ``listener`` until cancelled; with ``config`` (populate JSON)
    the proxies are created first (an error is raised as :class:`ConnectError`)."""
    async with trio.open_nursery() as nursery:
        api = ToxiproxyApi(nursery, seed=seed, verbose=verbose, log=log)
        try:
            config = list(config)
            if config:
                try:
                    _, error = await api.populate(config)
                except ApiError as exc:
                    error = exc
                if error is not None:
                    raise ConnectError("--config", error.message)
            await nursery.start(serve_http, listener, api.handle)
            task_status.started(api)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await api.close()


async def toxiproxy_main(
    where: Endpoint, config: list[object], *, seed: int | None = None, verbose: bool = False
) -> int:
    """``ncat-trio toxiproxy``: serve until a signal (the runner maps it to an exit code)."""
    raise_fd_limit()
    listener = await net.open_tcp_listener(where)
    async with trio.open_nursery() as nursery:
        api = await nursery.start(
            functools.partial(serve_toxiproxy, listener, config=config, seed=seed, verbose=verbose)
        )
        bound = listener.socket.getsockname()
        diag.say(f"listening on {diag.format_address(bound)}")
        if not ipaddress.ip_address(bound[0].split("%", 1)[0]).is_loopback:
            diag.say(
                "warning: the toxiproxy API is not on loopback: whoever reaches it can open "
                "ports and cut connections on this machine"
            )
        if verbose:
            diag.say(f"toxiproxy API {VERSION}: {len(api.proxies)} proxies from --config")
    return 0

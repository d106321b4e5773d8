"""A small HTTP/1.1 server over h11: the transport under ``ncat-trio toxiproxy``'s API.

h11 (python-hyper) parses and frames; this module only moves bytes and enforces bounds:

* a request head larger than :data:`MAX_HEAD` bytes is refused (431), a body larger than
  :data:`MAX_BODY` bytes is refused (413) before it is read, so one client can make the
  server hold at most about ``MAX_HEAD + MAX_BODY`` bytes;
* a request must arrive within :data:`READ_TIMEOUT` seconds and a kept-alive connection
  idle for :data:`IDLE_TIMEOUT` seconds is closed (toxiproxy's read/idle timeouts);
* at most :data:`MAX_CONNECTIONS` clients are served at once: the next waits in the
  listen backlog.
* ``Expect: 100-continue`` is answered before the body is read (curl sends it for bodies
  over 1 KiB).

A connection ends the way h11's trio example ends one: ``send_eof``, drain what the
client still sends for a moment, then close, so the last response is not lost to an RST.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import h11
import trio

from .. import diag
from ..errors import NcatError
from ..transport import net
from ..transport.pump import STREAM_ERRORS

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
READ_TIMEOUT = 15.0
IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 64
#: After our last response, how long the client may keep sending before we close.
LINGER = 2.0
_RECEIVE = 64 * 1024
_KNOWN = frozenset(HTTPStatus)


@dataclass(frozen=True)
class Request:
    """One complete request: method, path (no query), query string, headers, body."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    peer: str

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class _Refuse(Exception):
    """Answer ``status`` and close: the request cannot be read."""

    status: int
    why: str


async def serve_http(
    listener: trio.SocketListener,
    handler: Handler,
    *,
    log: Callable[[str], None] = diag.say,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept clients on ``listener`` and answer their requests with ``handler`` until
    cancelled; closes the listener."""
    slots = trio.Semaphore(MAX_CONNECTIONS)
    async with trio.open_nursery() as nursery:
        try:
            task_status.started()
            while True:
                await slots.acquire()
                try:
                    stream = await net.accept(listener)
                except BaseException:
                    slots.release()
                    raise
                nursery.start_soon(_connection, stream, handler, log, slots)
        finally:
            await trio.aclose_forcefully(listener)


async def _connection(
    stream: trio.SocketStream,
    handler: Handler,
    log: Callable[[str], None],
    slots: trio.Semaphore,
) -> None:
    try:
        peer = diag.format_address(stream.socket.getpeername())
    except OSError:
        peer = "(gone)"
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        async with stream:
            try:
                await _serve(stream, conn, handler, peer)
            except (*STREAM_ERRORS, NcatError):
                return  # the client went away: nothing to answer
            except h11.ProtocolError as exc:
                log(f"HTTP API: {peer}: {diag.printable(str(exc))}")
                return
            await _close_gracefully(stream)
    finally:
        slots.release()


async def _serve(
    stream: trio.SocketStream, conn: h11.Connection, handler: Handler, peer: str
) -> None:
    while True:
        request: Request | _Refuse | None
        try:
            timeout = IDLE_TIMEOUT if conn.their_state is h11.IDLE else READ_TIMEOUT
            with trio.fail_after(timeout):
                request = await _read_request(stream, conn, peer)
        except trio.TooSlowError:
            if conn.their_state is h11.IDLE and not conn.trailing_data[0]:
                return  # an idle keep-alive connection (or a silent one): just close it
            request = _Refuse(408, "request timeout")
        except _Refuse as refusal:
            request = refusal
        except h11.RemoteProtocolError as exc:  # 431 for a head over MAX_HEAD, else 400
            request = _Refuse(exc.error_status_hint, str(exc))
        if request is None:
            return  # clean EOF between requests
        if isinstance(request, _Refuse):
            body = json.dumps({"error": request.why, "status": request.status}).encode()
            response = Response(request.status, body, headers=(("connection", "close"),))
            with contextlib.suppress(h11.LocalProtocolError):  # nothing can be answered
                await _send(stream, conn, response)
            return
        response = await handler(request)
        await _send(stream, conn, response)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:  # the client had not finished its request
            return


async def _read_request(
    stream: trio.SocketStream, conn: h11.Connection, peer: str
) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if head is not None and conn.they_are_waiting_for_100_continue:
                await stream.send_all(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                )
            data = await stream.receive_some(_RECEIVE)
            conn.receive_data(data)
            if not data and head is None and conn.their_state is h11.IDLE:
                return None
            continue
        if isinstance(event, h11.Request):
            head = event
            # h11 bounds only a head still incomplete; one that arrived whole in a
            # single read is measured here.
            size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
            if size > MAX_HEAD:
                raise _Refuse(431, f"request head over {MAX_HEAD} bytes")
            length = dict(event.headers).get(b"content-length")  # h11 checked: digits, one value
            if length is not None and int(length) > MAX_BODY:
                raise _Refuse(413, f"request body over {MAX_BODY} bytes")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise _Refuse(413, f"request body over {MAX_BODY} bytes")
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            target = head.target.decode("ascii", "replace")
            path, _, query = target.partition("?")
            headers = tuple(
                (k.decode("ascii", "replace").lower(), v.decode("latin-1")) for k, v in head.headers
            )
            return Request(
                head.method.decode("ascii", "replace"), path, query, headers, bytes(body), peer
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(stream: trio.SocketStream, conn: h11.Connection, response: Response) -> None:
    headers = [(b"server", b"ncat-trio")]
    headers.extend((k.encode(), v.encode()) for k, v in response.headers)
    bodyless = response.status == 204 or response.status < 200
    if not bodyless:
        headers.append((b"content-type", response.content_type.encode()))
        headers.append((b"content-length", str(len(response.body)).encode()))
    reason = HTTPStatus(response.status).phrase.encode() if response.status in _KNOWN else b""
    head = h11.Response(status_code=response.status, headers=headers, reason=reason)
    out = conn.send(head) or b""
    if not bodyless and response.body:
        out += conn.send(h11.Data(data=response.body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(out)


async def _close_gracefully(stream: trio.SocketStream) -> None:
    """``send_eof``, read (and drop) what the client still sends for up to LINGER s."""
    with contextlib.suppress(*STREAM_ERRORS):
        await stream.send_eof()
        with trio.move_on_after(LINGER):
            while await stream.receive_some(_RECEIVE):
                pass


__all__ = ["MAX_BODY", "MAX_HEAD", "Handler", "Request", "Response", "serve_http"]

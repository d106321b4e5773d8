"""The pump: ``receive_some → send_all`` in a loop, and the one error translation for it.

The awaiting ``send_all`` *is* the backpressure: while the sink is slow nothing more
is read from the source, the kernel buffers fill, and TCP flow control pushes back to
the sender.  At most one chunk (``chunk_size`` bytes) is held in user space.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..errors import ConnectionLost, LocalIOError, NcatError, reason
from .stdio import CHUNK


@dataclass(frozen=True)
class Side:
    """What to call one end of a pump in messages, and which error its failures become."""

    name: str  # "stdin", "stdout", "connection to 127.0.0.1:80", ...
    local: bool  # True: failures are LocalIOError; False: ConnectionLost


def describe_failure(exc: BaseException) -> str:
    """The human *why* of a stream failure, taken from the OSError that caused it."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return reason(cause)
    if isinstance(exc, trio.ClosedResourceError):
        return "closed"
    return str(exc) or type(exc).__name__


#: What a connection's failure on send, shutdown or receive can only mean: the peer reset
#: it.  Which of the three a reset shows depends on which call meets it first (a denied
#: client saw each at random, issue 15 §4), so a person is told one sentence.
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN})


def translate(exc: BaseException, where: Side) -> NcatError:
    """Translate a stream failure at ``where`` into the domain error tree."""
    if where.local:
        return LocalIOError(where.name, describe_failure(exc))
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__
    if isinstance(cause, OSError) and cause.errno in _RESET_ERRNOS:
        return ConnectionLost(where.name, "connection reset by peer")
    return ConnectionLost(where.name, describe_failure(exc))


class SinkGone(LocalIOError):
    """The reader of the sink went away and **no byte received was left unwritten**.

    A normal end, like EOF (issue 16 §1): ``ncat-trio … | head -c 1000`` when the peer
    sent exactly those 1000 bytes.  Splicing socket → pipe reports the pipe's EPIPE
    before the socket's own end of data, so without this the fast path failed where
    the portable pump (which only writes when it has data) and every nc ended cleanly.
    When received bytes could not be written, the failure stays a plain LocalIOError.
    A caller that does not tell the two apart (exec: a child that stopped reading) sees
    the LocalIOError it always saw.
    """


#: What a stream's send, receive, half-close or close raises when it fails (the one
#: spelling of it: everything that catches a stream failure names this tuple).
STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class translated:  # lower case: read as ``with translated(side):``, like contextlib's
    """``with translated(side):`` — a :data:`STREAM_ERRORS` failure inside the block is
    raised as :func:`translate` makes it (``from`` the original); anything else passes.

    In the spirit of trio's ``_translate_socket_errors_to_stream_errors``.  A class, not a
    generator, so that entering costs two calls; still, wrap a loop, not each call of a
    hot one (the pump below keeps its own two ``except`` clauses for that reason).
    """

    __slots__ = ("side",)

    def __init__(self, side: Side) -> None:
        self.side = side

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        exc = exc_info[1]
        if isinstance(exc, STREAM_ERRORS):
            raise translate(exc, self.side) from exc


async def pump(
    source: trio.abc.ReceiveStream,
    sink: trio.abc.SendStream | None,
    *,
    source_side: Side,
    sink_side: Side,
    chunk_size: int = CHUNK,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Copy ``source`` to ``sink`` until EOF; return the byte count.

    ``sink=None`` reads and discards (``--send-only`` still has to see the peer's EOF
    or reset).  Errors come out as :class:`NcatError` naming the failing side.
    """
    total = 0
    while True:
        try:
            data = await source.receive_some(chunk_size)
        except STREAM_ERRORS as exc:
            raise translate(exc, source_side) from exc
        if not data:
            return total
        if sink is not None:
            try:
                await sink.send_all(data)
            except STREAM_ERRORS as exc:
                raise translate(exc, sink_side) from exc
        total += len(data)
        if on_chunk is not None:
            on_chunk(len(data))


async def send_eof(stream: trio.abc.HalfCloseableStream, side: Side) -> None:
    """Half-close ``stream`` (shutdown SHUT_WR), translating failures."""
    with translated(side):
        await stream.send_eof()


async def run_directions(*directions: Callable[[], Awaitable[None]]) -> NcatError | None:
    """Run a connection's directions side by side until every one has finished.

    The first :class:`NcatError` cancels the others and is *returned*, not raised inside
    an exception group, so the caller can finish its cleanup and raise it as itself.
    """
    failure: list[NcatError] = []

    async def guarded(direction: Callable[[], Awaitable[None]], both: trio.CancelScope) -> None:
        try:
            await direction()
        except NcatError as exc:
            if not failure:
                failure.append(exc)
            both.cancel()

    async with trio.open_nursery() as nursery:
        for direction in directions:
            nursery.start_soon(guarded, direction, nursery.cancel_scope)
    return failure[0] if failure else None

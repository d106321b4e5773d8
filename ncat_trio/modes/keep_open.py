"""``listen -k``: serve clients concurrently, ncat's way.

* Up to ``--max-conns`` clients at once (default 100), each with its own two pumps;
  a client beyond that is accepted and closed at once (ncat does the same), with a
  line on stderr.
* stdin is read once and every chunk is given to every client connected at that
  moment (:class:`StdinBroadcast`).  The slowest client sets the pace: a chunk is
  handed to all before the next is read (bounded memory, nothing dropped).  A client
  arriving after stdin's EOF gets EOF (our FIN) at once.
* What clients send goes to stdout in whole chunks: :class:`ChunkedStdout` writes one
  chunk at a time, so lines of different clients never interleave mid-chunk.
* A client's failure (reset, idle timeout, a failed handshake, no fd for it) is one
  line on stderr and ends only that client; a stdio failure (stdout closed, stdin
  unreadable) ends the listener (transport/serve.py: the one serve discipline).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio

from ..transport.pump import run_directions, translated
from ..transport.serve import never_fatal, serve_connections, stdio_is_fatal
from ..transport.stdio import CHUNK
from .netcat_options import SessionOptions
from .session import STDIN, SessionResult, open_stdio

#: Chunks queued per client before the broadcast waits for it.
BROADCAST_QUEUE = 4

ServeConnection = Callable[
    [
        trio.SocketStream,
        trio.abc.ReceiveStream | None,
        trio.abc.SendStream | None,
        SessionOptions,
    ],
    Awaitable[SessionResult],
]


class _ChannelStream(trio.abc.ReceiveStream):
    """One client's view of stdin: the broadcast chunks, then ``b""`` at EOF."""

    def __init__(self, channel: trio.MemoryReceiveChannel[bytes]) -> None:
        self._channel = channel
        self._pending = b""

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._pending:
            try:
                self._pending = await self._channel.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return b""
        else:
            await trio.lowlevel.checkpoint()
        limit = max_bytes or len(self._pending)
        data, self._pending = self._pending[:limit], self._pending[limit:]
        return data

    async def aclose(self) -> None:
        await self._channel.aclose()


class StdinBroadcast:
    """Reads stdin once and hands each chunk to every subscribed client."""

    def __init__(self) -> None:
        self._subscribers: set[trio.MemorySendChannel[bytes]] = set()
        self._eof = False

    def subscribe(self) -> _ChannelStream:
        send, receive = trio.open_memory_channel[bytes](BROADCAST_QUEUE)
        if self._eof:
            send.close()
        else:
            self._subscribers.add(send)
        return _ChannelStream(receive)

    async def run(self, stdin: trio.abc.ReceiveStream, chunk_size: int = CHUNK) -> None:
        """Until stdin's EOF; raises :class:`LocalIOError` if stdin fails."""
        try:
            with translated(STDIN):  # only the read: a subscriber's failure is caught below
                while data := await stdin.receive_some(chunk_size):
                    for channel in list(self._subscribers):
                        try:
                            await channel.send(bytes(data))
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            self._subscribers.discard(channel)  # that client has gone
        finally:
            self._eof = True
            for channel in self._subscribers:
                channel.close()
            self._subscribers.clear()


class ChunkedStdout(trio.abc.SendStream):
    """Stdout shared by many clients: each ``send_all`` is written whole, one at a time."""

    def __init__(self, stdout: trio.abc.SendStream) -> None:
        self._stdout = stdout
        self._lock = trio.Lock()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._lock:
            await self._stdout.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stdout.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()  # stdout belongs to the listener, not a client


async def serve_concurrently(
    listener: trio.SocketListener,
    session_options: SessionOptions,
    accept: Callable[[], Awaitable[trio.SocketStream]],
    serve: ServeConnection,
    *,
    max_conns: int,
    children: bool,
) -> int:
    """Accept (``accept()``: the listener's next admitted client) until a signal or a
    stdio failure; each client runs ``serve`` in its own task, at most ``max_conns`` at
    once.  With ``children`` (-e/-c) each client has a child of its own and no stdio."""
    stdio_options = session_options
    if children:  # each client has its own child: no stdio
        stdio_options = SessionOptions(send=False, receive=False)
    async with open_stdio(stdio_options) as (stdin, stdout, session):
        if children:
            session = session_options
        broadcast = StdinBroadcast() if stdin is not None else None
        shared_stdout = ChunkedStdout(stdout) if stdout is not None else None

        async def client(conn: trio.SocketStream) -> None:
            client_stdin = broadcast.subscribe() if broadcast is not None else None
            try:
                await serve(conn, client_stdin, shared_stdout, session)
            finally:
                if client_stdin is not None:
                    await client_stdin.aclose()

        # With -e/-c each client has its own child and no stdio: a LocalIOError is
        # that child's (could not start it), never the listener's.
        accept_loop = partial(
            serve_connections,
            listener,
            client,
            accept=accept,
            max_conns=max_conns,
            fatal=never_fatal if children else stdio_is_fatal,
        )
        jobs: list[Callable[[], Awaitable[None]]] = [accept_loop]
        if broadcast is not None and stdin is not None:
            jobs.insert(0, partial(broadcast.run, stdin, session.chunk_size))
        # stdin or stdout failed (the listener's own resources): the first failure ends all
        fatal = await run_directions(*jobs)
    if fatal is not None:
        raise fatal
    return 0  # unreachable in practice: only a signal or a failure ends the loop

"""The two ends around a relay in Trio tests: loopback TCP pairs, servers, payloads.

Everything listens on 127.0.0.1 port 0.  Payloads are slices of one seeded random
block, so a test can say "this many bytes from this offset" and check sha256 of what
arrives against the slice.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import cache
from typing import Any

import trio

from ncat_trio import Relay, open_relay
from ncat_trio.transport import net

from .support import NCAT

BLOCK_SIZE = 8 << 20


@cache
def block() -> bytes:
    """8 MiB of seeded random bytes, shared by every payload."""
    return random.Random(20240607).randbytes(BLOCK_SIZE)


def payload(offset: int, size: int) -> bytes:
    """``size`` bytes of the block starting at ``offset`` (wrapping), ``size`` ≤ 8 MiB."""
    assert size <= BLOCK_SIZE
    data = block()
    offset %= BLOCK_SIZE
    end = offset + size
    return data[offset:end] if end <= BLOCK_SIZE else data[offset:] + data[: end - BLOCK_SIZE]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RecordingSink(trio.abc.HalfCloseableStream):
    """A sink that records the size of every ``send_all`` it is given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.data = bytearray()
        self.eof = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.sizes.append(len(data))
        self.data += data

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        self.eof = True

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def send_in_pieces(stream: trio.abc.SendStream, data: bytes, piece: int = 256 << 10) -> None:
    with memoryview(data) as view:
        for start in range(0, len(view), piece):
            await stream.send_all(view[start : start + piece])


async def receive_all(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything until EOF."""
    chunks = []
    while chunk := await stream.receive_some(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


async def digest_all(stream: trio.abc.ReceiveStream) -> tuple[int, str]:
    """(byte count, sha256) of everything until EOF."""
    digest = hashlib.sha256()
    count = 0
    while chunk := await stream.receive_some(1 << 20):
        digest.update(chunk)
        count += len(chunk)
    return count, digest.hexdigest()


async def tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected loopback TCP pair (connecting end, accepted end)."""
    listener = await net.open_tcp_listener(net.Endpoint("127.0.0.1", 0))
    async with listener:
        port = listener.socket.getsockname()[1]
        connecting = await net.connect_tcp(net.Endpoint("127.0.0.1", port), nodelay=True)
        accepted = await listener.accept()
    return connecting, accepted


Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def start_server(nursery: trio.Nursery, handler: Handler) -> int:
    """Serve ``handler`` per connection on 127.0.0.1 port 0 in ``nursery``; return the
    port.  Each connection is closed after its handler returns or fails."""
    listener = await net.open_tcp_listener(net.Endpoint("127.0.0.1", 0), backlog=4096)

    async def one(stream: trio.SocketStream) -> None:
        # Tests that reset on purpose check the client side.
        async with stream:
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await handler(stream)

    async def serve() -> None:
        async with listener, trio.open_nursery() as handlers:
            while True:
                handlers.start_soon(one, await listener.accept())

    nursery.start_soon(serve)
    return int(listener.socket.getsockname()[1])


@asynccontextmanager
async def relay_in_front_of(
    handler: Handler, seconds: float, **relay_options: Any
) -> AsyncIterator[Relay]:
    """A :func:`start_server` target serving ``handler`` and an in-process relay to it
    (``open_relay`` with ``relay_options``), all under ``fail_after(seconds)``.  Leaving
    closes the relay, then stops the target."""
    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            target = await start_server(nursery, handler)
            async with open_relay(targets=[("127.0.0.1", target)], **relay_options) as relay:
                yield relay
            nursery.cancel_scope.cancel()


async def connect(port: int) -> trio.SocketStream:
    return await net.connect_tcp(net.Endpoint("127.0.0.1", port), nodelay=True)


async def echo(stream: trio.SocketStream) -> None:
    """A :func:`start_server` handler: everything back, then EOF."""
    while data := await stream.receive_some(65536):
        await stream.send_all(data)
    await stream.send_eof()


async def send_then_eof(stream: trio.abc.HalfCloseableStream, data: bytes) -> None:
    await send_in_pieces(stream, data)
    await stream.send_eof()


async def exchange(port: int, data: bytes) -> bytes:
    """Connect to ``port``, send ``data`` and EOF while reading everything that comes back."""
    stream = await connect(port)
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(send_then_eof, stream, data)
        return await receive_all(stream)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def is_reset(exc: BaseException) -> bool:
    """True if a stream failure came from ECONNRESET (an RST) or EPIPE after one."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in (errno.ECONNRESET, errno.EPIPE):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def wait_reset(stream: trio.SocketStream) -> bytes:
    """Read until the stream fails with a reset; return what arrived before it.

    Raises AssertionError on a clean EOF: that would mean an RST was turned into a FIN.
    """
    chunks = []
    try:
        while chunk := await stream.receive_some(1 << 20):
            chunks.append(chunk)
    except trio.BrokenResourceError as exc:
        if not is_reset(exc):
            raise AssertionError(f"failed, but not with a reset: {exc!r}") from exc
        return b"".join(chunks)
    raise AssertionError("clean EOF where a reset was expected")


class RelayProcess:
    """A running ``ncat-trio relay`` and the lines of its stderr."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stderr is not None
        self._stderr = process.stderr
        self._buffer = b""
        self.port = 0

    async def line(self) -> str:
        """The next stderr line (without the newline); AssertionError at EOF."""
        while b"\n" not in self._buffer:
            chunk = await self._stderr.receive_some(65536)
            if not chunk:
                raise AssertionError(f"relay stderr ended; partial line {self._buffer!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def line_starting(self, prefix: str) -> str:
        """Skip lines until one starts with ``prefix``."""
        while not (line := await self.line()).startswith(prefix):
            pass
        return line

    async def close(self) -> None:
        await self._stderr.aclose()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def rss(self) -> int:
        """Resident set size in bytes, from /proc/PID/status."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for row in status:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@asynccontextmanager
async def relay_process(*args: str) -> AsyncIterator[RelayProcess]:
    process = await trio.lowlevel.open_process(
        [*NCAT, "relay", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    relay = RelayProcess(process)
    try:
        with trio.fail_after(20):
            ready = await relay.line()
        match = re.search(r"listening on \S+:(\d+)$", ready)
        assert match is not None, ready
        relay.port = int(match.group(1))
        yield relay
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await relay.close()

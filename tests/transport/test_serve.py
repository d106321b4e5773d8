"""transport/serve.py and net.accept: the one accept/serve discipline, in process.

* ``guard``: a client's failure (NcatError, OSError, broken stream) is one line and
  None; a fatal one (the server's stdio) is raised; OutOfResources is never fatal.
* ``serve_connections``: a handler that fails never ends the server; over
  ``max_conns`` a newcomer is closed with one line; a fatal failure ends it, raised
  as itself (not in a group).
* ``first_session``: a client stalled in its handshake holds nobody up; failures are
  logged and do not consume the server; the winner's ``run`` result is returned.
* ``net.accept``: a client that reset in the backlog is skipped with one line.
* ``net.connect_tcp(on_pressure=...)``: EMFILE is waited out inside ``on_pressure``
  (entered once, left before the stream is returned); without it, or for any other
  error, the ConnectError is raised at once.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from collections.abc import Iterator
from functools import partial

import pytest
import trio

from ncat_trio.errors import (
    ConnectError,
    ConnectionLost,
    LocalIOError,
    OutOfResources,
    RemoteProtocolError,
)
from ncat_trio.transport import net, serve

LOCAL = net.Endpoint("127.0.0.1", 0)


async def _listener() -> tuple[trio.SocketListener, int]:
    listener = await net.open_tcp_listener(LOCAL)
    return listener, listener.socket.getsockname()[1]


async def test_guard_logs_a_client_failure_and_raises_a_fatal_one() -> None:
    lines: list[str] = []
    failures: list[BaseException] = [
        ConnectionLost("connection from 10.0.0.1:5", "reset\x1b[2J"),
        OSError(24, "Too many open files"),
        trio.BrokenResourceError(),
        OutOfResources("connection", "too many open files"),
    ]

    async def fails() -> None:
        await trio.lowlevel.checkpoint()
        raise failures.pop(0)

    for _ in range(4):
        await serve.guard(fails, name="c", log=lines.append)
    assert lines[0] == "connection from 10.0.0.1:5: reset\\x1b[2J"  # escaped
    assert lines[1] == "c: too many open files"
    assert len(lines) == 4
    failures.append(LocalIOError("stdout", "broken pipe"))
    with pytest.raises(LocalIOError):
        await serve.guard(fails, name="c")


async def _talk(port: int, message: bytes) -> bytes:
    async with await trio.open_tcp_stream("127.0.0.1", port) as client:
        await client.send_all(message)
        return await client.receive_some(10)


async def test_serve_connections_survives_failing_clients_and_limits_them() -> None:
    lines: list[str] = []
    hold = trio.Event()

    async def handler(conn: trio.SocketStream) -> None:
        data = await conn.receive_some(10)
        if data == b"boom":
            raise ConnectionLost("client", "boom")
        if data == b"hold":
            await hold.wait()
        await conn.send_all(b"ok")

    listener, port = await _listener()
    with trio.fail_after(20):
        async with listener, trio.open_nursery() as nursery:
            await nursery.start(
                partial(serve.serve_connections, listener, handler, max_conns=1, log=lines.append)
            )
            async with await trio.open_tcp_stream("127.0.0.1", port) as holder:
                await holder.send_all(b"hold")
                assert await _talk(port, b"extra") == b""  # over max_conns: closed
                hold.set()
                assert await holder.receive_some(10) == b"ok"
            assert await _talk(port, b"boom") == b""
            assert await _talk(port, b"fine") == b"ok"
            nursery.cancel_scope.cancel()
    assert lines == ["refused a client: 1 connected (--max-conns 1)", "client: boom"]


async def test_serve_connections_raises_a_fatal_failure_as_itself() -> None:
    async def handler(conn: trio.SocketStream) -> None:
        await trio.lowlevel.checkpoint()
        raise LocalIOError("stdout", "broken pipe")

    listener, port = await _listener()
    async with listener:
        with (
            socket.create_connection(("127.0.0.1", port)),  # waits in the backlog
            trio.fail_after(20),
            pytest.raises(LocalIOError),
        ):
            await serve.serve_connections(listener, handler)


async def test_first_session_is_not_held_up_by_a_stalled_handshake() -> None:
    lines: list[str] = []

    async def establish(conn: trio.SocketStream) -> bytes:
        greeting = await conn.receive_some(5)
        if greeting != b"hello":
            raise RemoteProtocolError("client", f"said {greeting!r}")
        return greeting

    async def run(conn: trio.SocketStream, greeting: bytes) -> bytes:
        async with conn:
            await conn.send_all(b"welcome")
        return greeting

    listener, port = await _listener()
    result: list[bytes] = []

    async def server() -> None:
        accept = partial(net.accept, listener)
        session = serve.first_session(accept, establish, run, within=60, log=lines.append)
        result.append(await session)

    with trio.fail_after(20):
        async with listener, trio.open_nursery() as nursery:
            nursery.start_soon(server)
            async with await trio.open_tcp_stream("127.0.0.1", port) as stalled:
                assert await _talk(port, b"HELLO") == b""  # refused; the server goes on
                assert await _talk(port, b"hello") == b"welcome"
                assert await stalled.receive_some(10) == b""  # closed: the winner ran
    assert result == [b"hello"]
    assert lines == ["client: said b'HELLO'"]


async def test_accept_skips_a_client_that_reset_in_the_backlog() -> None:
    lines: list[str] = []
    listener, port = await _listener()
    async with listener:
        with socket.create_connection(("127.0.0.1", port)) as doomed:
            doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with trio.fail_after(20):
            alive = await trio.open_tcp_stream("127.0.0.1", port)
            conn = await net.accept(listener, on_gone=lines.append)
            async with alive, conn:
                await alive.send_all(b"x")
                assert await conn.receive_some(1) == b"x"  # the live one, not the dead
    assert len(lines) == 1
    assert "not connected" in lines[0]


async def test_connect_tcp_waits_out_fd_pressure_inside_on_pressure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = net.connect_socket
    failures = [2]

    async def exhausted(*args: object, **kwargs: object) -> object:
        if failures[0]:
            failures[0] -= 1
            await trio.lowlevel.checkpoint()
            error = ConnectError("connect to 127.0.0.1", "too many open files")
            raise error from OSError(errno.EMFILE, "Too many open files")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(net, "connect_socket", exhausted)
    waits: list[str] = []
    inside: list[bool] = []

    @contextlib.contextmanager
    def on_pressure(why: str) -> Iterator[None]:
        waits.append(why)
        inside.append(True)
        yield
        inside.append(False)

    listener, port = await _listener()
    async with listener:
        target = net.Endpoint("127.0.0.1", port)
        with trio.fail_after(20):
            with pytest.raises(ConnectError, match="too many open files"):
                await net.connect_tcp(target)  # no hook: fails at once
            assert failures == [1]
            stream = await net.connect_tcp(target, on_pressure=on_pressure)
            await stream.aclose()
        assert failures == [0]
        assert waits == ["too many open files"]  # entered once for the burst
        assert inside == [True, False]  # and left before the stream came back
    with pytest.raises(ConnectError, match="refused"):  # not pressure: raised at once
        await net.connect_tcp(target, on_pressure=on_pressure)  # (the listener closed)
    assert waits == ["too many open files"]

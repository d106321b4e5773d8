"""``relay --workers N``: SO_REUSEPORT workers, one readiness line, supervised.

* every worker takes connections (the kernel spreads them), bytes arrive whole;
* SIGTERM reaches every worker once (each drains), the parent exits 143;
* a worker that dies takes the relay down with its status, the others stopped;
* the parent's death takes the workers with it (PR_SET_PDEATHSIG);
* a port that is taken is one error line and exit 1.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

import pytest
import trio

from ..relay_ends import echo, exchange, payload, relay_process, start_server
from ..support import NCAT, spawn

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for processes that are not our children to exit (pidfd: no polling)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:  # already gone (and reaped)
            continue
    try:
        for fd in fds:
            readable, _, _ = select.select([fd], [], [], timeout)
            assert readable, "a worker outlived its parent"
    finally:
        for fd in fds:
            os.close(fd)


async def test_two_workers_share_the_port_and_drain_on_sigterm() -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            target = await start_server(nursery, echo)
            async with relay_process(
                "--workers", "2", "-v", "127.0.0.1:0", f"127.0.0.1:{target}"
            ) as relay:
                workers = children_of(relay.process.pid)
                for index in range(40):
                    data = payload(index, 10_000 * index)
                    assert await exchange(relay.port, data) == data
                lines = [await relay.line() for _ in range(40)]
                relay.signal(signal.SIGTERM)
                rest = [await relay.line() for _ in range(3)]
                assert await relay.process.wait() == 143
            nursery.cancel_scope.cancel()
    assert len(workers) == 2
    served = {line.split(":", 2)[1].strip() for line in lines}
    assert served == {"worker 1", "worker 2"}
    assert all(line.endswith(", closed") for line in lines)
    assert sorted(rest[:2]) == [
        "ncat-trio: worker 1: SIGTERM: draining 0 connection(s), up to 5 s (--drain-timeout)",
        "ncat-trio: worker 2: SIGTERM: draining 0 connection(s), up to 5 s (--drain-timeout)",
    ]
    assert rest[2] == "ncat-trio: interrupted by SIGTERM"


async def test_a_dead_worker_stops_the_relay_with_its_status() -> None:
    with trio.fail_after(30):
        async with relay_process("--workers", "3", "127.0.0.1:0", "127.0.0.1:9") as relay:
            workers = children_of(relay.process.pid)
            os.kill(workers[1], signal.SIGKILL)
            assert await relay.process.wait() == 128 + signal.SIGKILL
            line = await relay.line()
    assert line == "ncat-trio: worker 2 exited (-9); stopping the others"
    wait_gone(workers, 10)


async def test_workers_die_with_their_parent() -> None:
    with trio.fail_after(30):
        async with relay_process("--workers", "2", "127.0.0.1:0", "127.0.0.1:9") as relay:
            workers = children_of(relay.process.pid)
            relay.process.kill()
            await relay.process.wait()
    wait_gone(workers, 10)


def test_a_taken_port_is_one_error_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = spawn([*NCAT, "relay", "--workers", "2", f"127.0.0.1:{port}", "127.0.0.1:9"])
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.decode().startswith(f"ncat-trio: listen on 127.0.0.1:{port}: ")
    assert len(err.decode().splitlines()) == 1


async def test_the_reserved_address_takes_reuseport_listeners_and_nothing_else() -> None:
    """``net.reserve_reuseport`` (the parent, outside Trio) and
    ``open_tcp_listener(reuseport=True)`` (each worker) are one listener factory: the
    workers share the reserved port, a listener without SO_REUSEPORT is refused it."""
    from ncat_trio.errors import ConnectError
    from ncat_trio.transport import net

    probe, shared = net.reserve_reuseport(net.Endpoint("127.0.0.1", 0, numeric=True))
    try:
        port = probe.getsockname()[1]
        assert port != 0
        assert shared == net.Endpoint("127.0.0.1", port, 0, numeric=True)
        first = await net.open_tcp_listener(shared, reuseport=True)
        second = await net.open_tcp_listener(shared, reuseport=True)
        with pytest.raises(ConnectError, match="address already in use"):
            await net.open_tcp_listener(shared)
        assert first.socket.getsockname() == second.socket.getsockname() == ("127.0.0.1", port)
        taken: list[int] = []
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:

                async def take(index: int, listener: trio.SocketListener) -> None:
                    conn = await listener.accept()  # the kernel picks one of the two
                    taken.append(index)
                    await conn.aclose()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(take, 1, first)
                nursery.start_soon(take, 2, second)
                client = await net.connect_tcp(shared)
        assert len(taken) == 1
        await client.aclose()
        await first.aclose()
        await second.aclose()
    finally:
        probe.close()

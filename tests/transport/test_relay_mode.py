"""The relay server (modes/relay.py) through the Python API, against servers in the test.

* 200 concurrent connections of random sizes (0 B - 8 MiB each way), every byte
  checked by sha256 in both directions, on the splice path and the user-space pump;
* request-then-FIN with a multi-MiB reply arriving 2 s later, both directions;
* targets: round-robin, a refusing target is skipped, none reachable → client reset;
* access: allow/deny, IPv4-mapped IPv6 peers cannot bypass an IPv4 rule;
* limits: --max-conns makes the next client wait in the backlog (or resets it with
  reject-over-limit); idle timeout; drain; the log lines.
"""

from __future__ import annotations

import json
import random
import struct

import pytest
import trio
import trio.testing

import ncat_trio
from ncat_trio.modes.relay import AccessPolicy, normalise_address, parse_network, raise_fd_limit
from ncat_trio.pytest_plugin import RelayFactory
from ncat_trio.transport.net import Endpoint
from ncat_trio.transport.relay import abort

from ..relay_ends import (
    BLOCK_SIZE,
    connect,
    digest_all,
    echo,
    exchange,
    payload,
    receive_all,
    refusing_port,
    relay_in_front_of,
    send_then_eof,
    sha256,
    start_server,
    wait_reset,
)

HEADER = struct.Struct("!IQQ")  # connection id, reply offset, reply size


@pytest.mark.parametrize("splice", [True, False], ids=["splice", "pump"])
async def test_200_concurrent_random_sizes_sha256_both_ways(splice: bool) -> None:
    raise_fd_limit()  # 200 clients: ~1600 fds in this process
    rng = random.Random(200)

    def size() -> int:  # mostly small, some large, total a few hundred MiB
        return rng.randrange(1, BLOCK_SIZE + 1) if rng.random() < 0.1 else rng.randrange(256 << 10)

    plans = [
        (i, rng.randrange(BLOCK_SIZE), size(), rng.randrange(BLOCK_SIZE), size())
        for i in range(200)
    ]
    plans[0] = (0, 0, 0, 0, BLOCK_SIZE)  # the extremes: nothing one way, 8 MiB the other
    plans[1] = (1, 5, BLOCK_SIZE, 9, 0)
    received_up: dict[int, tuple[int, str]] = {}

    async def server(stream: trio.SocketStream) -> None:
        header = b""
        while len(header) < HEADER.size:
            chunk = await stream.receive_some(HEADER.size - len(header))
            assert chunk, "EOF inside the header"
            header += chunk
        ident, offset, count = HEADER.unpack(header)
        async with trio.open_nursery() as both:
            both.start_soon(send_then_eof, stream, payload(offset, count))
            received_up[ident] = await digest_all(stream)

    async def client(
        port: int, ident: int, up_off: int, up_size: int, down_off: int, down_size: int
    ) -> None:
        stream = await connect(port)
        async with stream, trio.open_nursery() as both:
            header = HEADER.pack(ident, down_off, down_size)
            both.start_soon(send_then_eof, stream, header + payload(up_off, up_size))
            assert await digest_all(stream) == (down_size, sha256(payload(down_off, down_size)))

    async with relay_in_front_of(server, 90, splice=splice) as relay:
        async with trio.open_nursery() as clients:
            for plan in plans:
                clients.start_soon(client, relay.port, *plan)
        await relay.wait_quiet()
        stats = relay.statistics()
    for ident, up_off, up_size, _, _ in plans:
        assert received_up[ident] == (up_size, sha256(payload(up_off, up_size))), ident
    assert stats.total == 200
    assert stats.active == 0
    assert stats.bytes_up == sum(HEADER.size + p[2] for p in plans)
    assert stats.bytes_down == sum(p[4] for p in plans)
    assert stats.peak_buffered <= 256 * 1024


async def test_late_replies_after_fin_arrive_in_both_directions() -> None:
    """socat cuts a reply that comes 0.5 s after the first FIN; here 2 s later is fine."""
    request, reply = payload(11, 1 << 20), payload(12, 6 << 20)
    server_got: list[bytes] = []

    async def server(stream: trio.SocketStream) -> None:
        kind = await stream.receive_some(1)
        if kind == b"Q":  # the client asks, sends FIN, and waits for the answer
            assert await receive_all(stream) == request
            await trio.sleep(2)  # the scenario under test, not synchronisation
            await send_then_eof(stream, reply)
        else:  # the server talks first, sends FIN, and waits for the answer
            await send_then_eof(stream, request)
            server_got.append(await receive_all(stream))

    async def asks_first(port: int) -> None:
        stream = await connect(port)
        async with stream:
            await send_then_eof(stream, b"Q" + request)
            assert await receive_all(stream) == reply

    async def answers_late(port: int) -> None:
        stream = await connect(port)
        async with stream:
            await stream.send_all(b"S")
            assert await receive_all(stream) == request
            await trio.sleep(2)
            await send_then_eof(stream, reply)

    lines: list[str] = []
    async with relay_in_front_of(server, 30, verbose=True, log=lines.append) as relay:
        async with trio.open_nursery() as clients:
            clients.start_soon(asks_first, relay.port)
            clients.start_soon(answers_late, relay.port)
        await relay.wait_quiet()
    assert server_got == [reply]
    assert len(lines) == 2
    assert all(line.endswith(", closed") for line in lines), lines


async def _tagged(tag: bytes, stream: trio.SocketStream) -> None:
    await stream.send_all(tag)
    await stream.send_eof()
    await receive_all(stream)


async def test_round_robin_skips_a_refusing_target() -> None:
    lines: list[str] = []
    with refusing_port() as dead, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            a = await start_server(nursery, lambda s: _tagged(b"A", s))
            b = await start_server(nursery, lambda s: _tagged(b"B", s))
            targets = [("127.0.0.1", a), ("127.0.0.1", dead), ("127.0.0.1", b)]
            async with ncat_trio.open_relay(targets=targets, log=lines.append) as relay:
                answers = [await exchange(relay.port, b"") for _ in range(6)]
                assert relay.statistics().unreachable == 0
            nursery.cancel_scope.cancel()
    # start at A, then the dead one is skipped for B, then B, then A, ...
    assert answers == [b"A", b"B", b"B", b"A", b"B", b"B"]
    assert lines == []


async def test_no_reachable_target_resets_the_client() -> None:
    lines: list[str] = []
    with refusing_port() as dead, refusing_port() as dead2, trio.fail_after(10):
        targets = [("127.0.0.1", dead), ("127.0.0.1", dead2)]
        async with ncat_trio.open_relay(targets=targets, log=lines.append) as relay:
            await _refused(relay.port)
            await relay.wait_quiet()
            assert relay.statistics().unreachable == 1
            assert relay.statistics().total == 0
    assert len(lines) == 1
    assert lines[0].startswith("unreachable 127.0.0.1:")
    assert "connection refused" in lines[0].lower()


def test_access_policy_normalises_ipv4_mapped_addresses() -> None:
    deny_v4 = AccessPolicy(deny=(parse_network("10.0.0.0/8"),))
    assert not deny_v4.permits("10.0.0.1")
    assert not deny_v4.permits("::ffff:10.0.0.1")  # the dual-stack spelling
    assert deny_v4.permits("::ffff:11.0.0.1")
    allow_v4 = AccessPolicy(allow=(parse_network("127.0.0.0/8"),))
    assert allow_v4.permits("::ffff:127.0.0.1")
    assert not allow_v4.permits("::1")
    mapped_rule = AccessPolicy(deny=(parse_network("::ffff:10.0.0.0/104"),))
    assert not mapped_rule.permits("10.1.2.3")  # a mapped rule is an IPv4 rule
    both = AccessPolicy(allow=(parse_network("10.0.0.0/8"),), deny=(parse_network("10.9.0.0/16"),))
    assert both.permits("10.1.0.1")
    assert not both.permits("10.9.0.1")  # deny wins
    assert str(normalise_address("::ffff:192.0.2.1")) == "192.0.2.1"
    assert AccessPolicy().permits("203.0.113.9")


@pytest.mark.parametrize(
    ("allow", "deny", "admitted"),
    [
        (
            [],
            ["127.0.0.0/8"],
            False,
        ),  # a v4 rule, a peer the dual-stack socket sees as ::ffff:127.0.0.1
        (["::1"], [], False),
        (["127.0.0.1/32"], [], True),
        (["127.0.0.0/8"], ["127.0.0.1"], False),
    ],
)
async def test_allow_and_deny_on_a_dual_stack_listener(
    allow: list[str], deny: list[str], admitted: bool
) -> None:
    lines: list[str] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            target = await start_server(nursery, echo)
            async with ncat_trio.open_relay(
                Endpoint(None, 0), [("127.0.0.1", target)], allow=allow, deny=deny, log=lines.append
            ) as relay:
                if admitted:
                    assert await exchange(relay.port, b"hello") == b"hello"
                else:
                    await _refused(relay.port)
                await relay.wait_quiet()
                stats = relay.statistics()
            nursery.cancel_scope.cancel()
    assert stats.denied == (0 if admitted else 1)
    assert stats.total == (1 if admitted else 0)  # a denied client never reaches a target
    if not admitted:
        assert lines == [lines[0]]
        assert lines[0].startswith("denied 127.0.0.1:")


async def _refused(port: int) -> None:
    """The relay resets a refused client at once: during or just after connecting."""
    try:
        client = await connect(port)
    except ncat_trio.ConnectError as exc:
        if "reset" not in exc.why:
            raise
        return
    async with client:
        await wait_reset(client)


async def test_max_conns_makes_the_next_client_wait_in_the_backlog() -> None:
    async with relay_in_front_of(echo, 10, max_conns=2) as relay:
        first, second, third = [await connect(relay.port) for _ in range(3)]
        for stream in (first, second, third):  # the third connects: the kernel accepts it
            await stream.send_all(b"hi")
        assert await first.receive_some(10) == b"hi"
        assert await second.receive_some(10) == b"hi"
        await trio.testing.wait_all_tasks_blocked(cushion=0.1)
        assert relay.statistics().accepted == 2  # the third waits in the backlog
        await first.send_eof()
        assert await receive_all(first) == b""
        await first.aclose()
        assert await third.receive_some(10) == b"hi"  # served once a slot freed
        assert relay.statistics().accepted == 3
        assert relay.statistics().rejected == 0
        await second.aclose()
        await third.aclose()


async def test_a_client_that_resets_while_queued_does_not_stop_the_relay() -> None:
    async with relay_in_front_of(echo, 10, max_conns=1) as relay:
        first = await connect(relay.port)
        await first.send_all(b"hi")
        assert await first.receive_some(10) == b"hi"
        queued = await connect(relay.port)  # waits in the backlog...
        await abort(queued)  # ...and resets there
        await first.aclose()
        assert await exchange(relay.port, b"still serving") == b"still serving"


async def test_reject_over_limit_resets_the_extra_client() -> None:
    lines: list[str] = []
    async with relay_in_front_of(
        echo, 10, max_conns=1, reject_over_limit=True, log=lines.append
    ) as relay:
        first = await connect(relay.port)
        await first.send_all(b"hi")
        assert await first.receive_some(10) == b"hi"
        await _refused(relay.port)
        assert relay.statistics().rejected == 1
        await first.send_eof()
        assert await receive_all(first) == b""
        await first.aclose()
        await relay.wait_quiet()
        assert await exchange(relay.port, b"again") == b"again"  # the slot came back
    assert lines == [lines[0]]
    assert lines[0].startswith("rejected 127.0.0.1:")
    assert "--max-conns 1" in lines[0]


async def test_idle_timeout_closes_a_silent_connection() -> None:
    lines: list[str] = []
    async with relay_in_front_of(
        echo, 10, idle_timeout=0.3, verbose=True, json_log=True, log=lines.append
    ) as relay:
        client = await connect(relay.port)
        async with client:
            await client.send_all(b"x")
            assert await client.receive_some(10) == b"x"
            assert await receive_all(client) == b""  # then silence: closed
        await relay.wait_quiet()
    record = json.loads(lines[0])
    assert record["event"] == "connection"
    assert record["end"] == "idle-timeout"
    assert (record["bytes_up"], record["bytes_down"]) == (1, 1)
    assert record["duration"] >= 0.3


async def test_drain_lets_live_transfers_finish_and_refuses_new_clients() -> None:
    arrived, release = trio.Event(), trio.Event()

    async def slow_reply(stream: trio.SocketStream) -> None:
        arrived.set()
        await receive_all(stream)
        await release.wait()
        await send_then_eof(stream, b"late but whole")

    async with relay_in_front_of(slow_reply, 10) as relay:
        client = await connect(relay.port)
        await client.send_eof()
        await arrived.wait()  # the relay has connected upstream
        drained: list[bool] = []

        async def drain() -> None:
            drained.append(await relay.drain(30))

        async with trio.open_nursery() as draining:
            draining.start_soon(drain)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(ncat_trio.ConnectError):  # the listener is closed
                await connect(relay.port)
            release.set()
            assert await receive_all(client) == b"late but whole"
        await client.aclose()
        assert drained == [True]


async def test_pytest_fixture_starts_a_relay(relay: RelayFactory) -> None:
    async with trio.open_nursery() as nursery:
        target = await start_server(nursery, echo)
        proxy = await relay(targets=[("127.0.0.1", target)], buffer=4096)
        assert await exchange(proxy.port, b"through the fixture") == b"through the fixture"
        await proxy.wait_quiet()
        assert proxy.statistics().peak_buffered <= 4096
        nursery.cancel_scope.cancel()

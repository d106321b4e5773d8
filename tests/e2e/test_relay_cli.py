"""``ncat-trio relay`` as a process: readiness, logs, signals, fds and memory.

The relay runs as ``python -m ncat_trio relay … 127.0.0.1:0 …`` and its port comes
from the readiness line; the servers and clients around it are Trio tasks in the test.
Synchronisation is by log lines (``-v`` writes a connection's line only after both of
its sockets are closed), never by sleeping.
"""

from __future__ import annotations

import hashlib
import json
import signal

import pytest
import trio

from ncat_trio import ConnectError
from ncat_trio.cli import run_cli
from ncat_trio.transport.relay import abort

from .. import relay_ends as ends


@pytest.mark.parametrize(
    "args",
    [
        ["0"],  # no target
        ["0", "localhost"],  # target without a port
        ["0", "127.0.0.1:80", "--reject-over-limit"],  # needs --max-conns
        ["0", "127.0.0.1:80", "--buffer", "0"],
        ["0", "127.0.0.1:80", "--latency", "sideways:1"],
        ["0", "127.0.0.1:80", "--toxicity", "2"],
        ["0", "127.0.0.1:80", "--allow", "10.0.0.0/33"],
        ["1.2.3.4:0:0", "127.0.0.1:80"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["relay", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip()


@pytest.mark.parametrize(
    ("flags", "splice"), [([], True), (["--no-zerocopy"], False), (["--no-splice"], False)]
)
def test_the_fast_path_flag_is_spelled_as_for_connect(
    flags: list[str], splice: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--no-zerocopy`` as on connect/listen; relay's old ``--no-splice`` still works
    (hidden from --help)."""
    from ncat_trio.modes import relay as relay_mode

    seen: list[relay_mode.RelayOptions] = []

    async def fake_main(options: relay_mode.RelayOptions) -> None:
        seen.append(options)

    monkeypatch.setattr(relay_mode, "relay_main", fake_main)
    assert run_cli(["relay", *flags, "127.0.0.1:0", "127.0.0.1:9"]) == 0
    assert [o.splice for o in seen] == [splice]


def test_help_names_only_no_zerocopy(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["relay", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--no-zerocopy" in out
    assert "--no-splice" not in out


async def test_relays_and_logs_one_line_per_connection_and_stats_on_sigusr1() -> None:
    data = ends.payload(21, 3 << 20)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            target = await ends.start_server(nursery, ends.echo)
            async with ends.relay_process("-v", "127.0.0.1:0", f"127.0.0.1:{target}") as relay:
                assert await ends.exchange(relay.port, data) == data
                line = await relay.line()
                relay.signal(signal.SIGUSR1)
                stats = await relay.line_starting("ncat-trio: stats:")
                relay.signal(signal.SIGTERM)
                assert await relay.line_starting("ncat-trio: interrupted by SIGTERM")
                assert await relay.process.wait() == 143
            nursery.cancel_scope.cancel()
    assert line.startswith("ncat-trio: 127.0.0.1:")
    assert f"-> 127.0.0.1:{target}: up {len(data)} B, down {len(data)} B, " in line
    assert line.endswith(" s, closed")
    assert f"bytes up {len(data)}, bytes down {len(data)}" in stats
    assert "active 0, total 1," in stats


async def test_json_log_and_periodic_stats() -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            target = await ends.start_server(nursery, ends.echo)
            async with ends.relay_process(
                "-v", "--json-log", "--stats", "0.1", "127.0.0.1:0", f"127.0.0.1:{target}"
            ) as relay:
                assert await ends.exchange(relay.port, b"json please") == b"json please"
                records = [json.loads(await relay.line())]
                while records[-1]["event"] != "stats" or records[-1]["total"] != 1:
                    records.append(json.loads(await relay.line()))
            nursery.cancel_scope.cancel()
    connection = next(r for r in records if r["event"] == "connection")
    assert connection["end"] == "closed"
    assert (connection["bytes_up"], connection["bytes_down"]) == (11, 11)
    assert connection["target"] == f"127.0.0.1:{target}"
    assert records[-1]["peak_buffered"] <= 256 * 1024


async def test_sigterm_drains_live_transfers_then_exits_143() -> None:
    arrived, release = trio.Event(), trio.Event()
    reply = ends.payload(5, 4 << 20)

    async def slow_reply(stream: trio.SocketStream) -> None:
        arrived.set()
        await ends.receive_all(stream)
        await release.wait()
        await ends.send_then_eof(stream, reply)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            target = await ends.start_server(nursery, slow_reply)
            async with ends.relay_process(
                "--drain-timeout", "20", "127.0.0.1:0", f"127.0.0.1:{target}"
            ) as relay:
                client = await ends.connect(relay.port)
                await client.send_eof()
                await arrived.wait()
                relay.signal(signal.SIGTERM)
                draining = await relay.line()
                with pytest.raises(ConnectError, match="refused"):  # no longer accepting
                    await ends.connect(relay.port)
                release.set()
                async with client:
                    assert await ends.digest_all(client) == (len(reply), ends.sha256(reply))
                assert await relay.process.wait() == 143
                last = await relay.line()
            nursery.cancel_scope.cancel()
    assert draining == "ncat-trio: SIGTERM: draining 1 connection(s), up to 20 s (--drain-timeout)"
    assert last == "ncat-trio: interrupted by SIGTERM"


async def test_sigterm_cancels_what_is_left_after_the_drain_timeout() -> None:
    arrived = trio.Event()

    async def never_replies(stream: trio.SocketStream) -> None:
        arrived.set()
        await trio.sleep_forever()

    drain = 1.0
    async with trio.open_nursery() as nursery:
        target = await ends.start_server(nursery, never_replies)
        async with ends.relay_process(
            "--drain-timeout", str(drain), "127.0.0.1:0", f"127.0.0.1:{target}"
        ) as relay:
            client = await ends.connect(relay.port)
            await client.send_all(b"hello?")
            await arrived.wait()
            relay.signal(signal.SIGTERM)
            with trio.fail_after(drain + 1):  # the promise: exit within drain-timeout + 1 s
                assert await relay.process.wait() == 143
            lines = [await relay.line() for _ in range(3)]
            async with client:
                with trio.fail_after(5):
                    assert await ends.receive_all(client) == b""  # closed, not left hanging
        nursery.cancel_scope.cancel()
    assert lines[1] == "ncat-trio: drain timeout: cancelled 1 connection(s)"
    assert lines[2] == "ncat-trio: interrupted by SIGTERM"


async def test_no_fd_leak_after_2000_connections() -> None:
    """Clean closes, client resets mid-transfer and refused targets, 2000 in all."""

    async def one(port: int, index: int) -> None:
        stream = await ends.connect(port)
        async with stream:
            if index % 10 == 9:  # reset mid-transfer, once the relay has connected
                await stream.send_all(b"x" * 1000)
                assert await stream.receive_some(1)
                await abort(stream)
                return
            data = ends.payload(index, index % 5000)
            assert await _exchange_on(stream, data) == data

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            target = await ends.start_server(nursery, ends.echo)
            async with ends.relay_process("-v", "127.0.0.1:0", f"127.0.0.1:{target}") as relay:
                before = relay.fd_count()
                limit = trio.CapacityLimiter(25)

                async def limited(index: int) -> None:
                    async with limit:
                        await one(relay.port, index)

                endings: list[str] = []

                async def read_log() -> None:  # stderr must be drained while it runs
                    while len(endings) < 2000:
                        endings.append((await relay.line()).rsplit(", ", 1)[1])

                async with trio.open_nursery() as clients:
                    clients.start_soon(read_log)
                    for index in range(2000):
                        clients.start_soon(limited, index)
                after = relay.fd_count()
            nursery.cancel_scope.cancel()
    assert endings.count("closed") == 1800
    assert after == before


async def _exchange_on(stream: trio.SocketStream, data: bytes) -> bytes:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ends.send_then_eof, stream, data)
        return await ends.receive_all(stream)


@pytest.mark.slow
@pytest.mark.parametrize("copy", [["--no-zerocopy"], []], ids=["pump", "splice"])
async def test_slow_consumer_keeps_memory_flat(copy: list[str]) -> None:
    """A server pushes 256 MiB + as fast as it can; the client reads 1 MiB/s for 10 s,
    then fast.  The relay's RSS stays below idle + 2 × buffer + 8 MiB, its peak-buffered
    statistic never exceeds the buffer, and every byte arrives (ends.sha256)."""
    buffer = 256 * 1024
    piece = ends.payload(0, 8 << 20)
    pieces = 33  # 264 MiB
    total = pieces * len(piece)
    expected = hashlib.sha256()
    for _ in range(pieces):
        expected.update(piece)
    samples: list[int] = []

    async def push(stream: trio.SocketStream) -> None:
        for _ in range(pieces):
            await stream.send_all(piece)
        await stream.send_eof()
        await ends.receive_all(stream)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            target = await ends.start_server(nursery, push)
            async with ends.relay_process(
                *copy, "--buffer", str(buffer), "127.0.0.1:0", f"127.0.0.1:{target}"
            ) as relay:
                idle = relay.rss()

                sampling = trio.CancelScope()

                async def sample() -> None:
                    with sampling:  # stopped before the relay exits: its /proc entry goes
                        while True:
                            samples.append(relay.rss())
                            await trio.sleep(0.2)

                nursery.start_soon(sample)
                client = await ends.connect(relay.port)
                async with client:
                    await client.send_eof()
                    digest = hashlib.sha256()
                    count = 0
                    start = trio.current_time()
                    while count < 10 << 20:  # 1 MiB/s for 10 s
                        chunk = await client.receive_some(64 << 10)
                        assert chunk
                        digest.update(chunk)
                        count += len(chunk)
                        await trio.sleep_until(start + count / (1 << 20))
                    while chunk := await client.receive_some(1 << 20):
                        digest.update(chunk)
                        count += len(chunk)
                relay.signal(signal.SIGUSR1)
                stats = await relay.line_starting("ncat-trio: stats:")
                sampling.cancel()
            nursery.cancel_scope.cancel()
    assert (count, digest.hexdigest()) == (total, expected.hexdigest())
    assert max(samples) < idle + 2 * buffer + (8 << 20), (idle, max(samples))
    peak = int(stats.split("peak buffered ")[1].split(",")[0])
    assert 0 < peak <= buffer

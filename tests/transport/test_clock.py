"""clock mode under Trio: probe scheduling, pairing and timeouts (memory channels and
``MockClock``, so every time is exact), the servers over real loopback sockets and memory
streams, and the command line end to end."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import pytest
import trio
import trio.testing

from ncat_trio.cli import run_cli
from ncat_trio.errors import ConnectError, ConnectionLost, NcatTimeout, RemoteProtocolError
from ncat_trio.modes import clock
from ncat_trio.proto import ntp
from ncat_trio.proto import roundtrip as rt
from ncat_trio.proto.roundtrip import ClockSample, DiscardedReply
from ncat_trio.transport import datagram
from ncat_trio.transport.net import Endpoint

from ..support import NCAT, spawn, wait_for_port

BASE = 1_800_000_000 * 10**9  # the wall clock at Trio time 0, in ns
SKEW = 2 * 10**9  # the fake server's clock is 2 s ahead
HOLD = 2**-7  # 7.8125 ms: exact in binary, so virtual times stay exact


def virtual_wall_clock() -> int:
    """A wall clock that follows Trio's (mock) clock: times are exact and repeatable."""
    return BASE + round(trio.current_time() * 1e9)


class MemoryLink:
    """A :class:`clock.DatagramLink` over memory channels, stamped by the virtual clock."""

    def __init__(
        self,
        to_server: trio.MemorySendChannel[bytes],
        from_server: trio.MemoryReceiveChannel[bytes],
    ) -> None:
        self.to_server = to_server
        self.from_server = from_server

    async def send(self, data: bytes) -> None:
        await self.to_server.send(data)

    async def receive(self) -> tuple[bytes, int]:
        data = await self.from_server.receive()
        return data, virtual_wall_clock()


Answer = Callable[[int, bytes], list[tuple[float, bytes]]]  # probe, request -> (delay, reply)


def roundtrip_answer(delays: dict[int, float] | None = None, copies: int = 1) -> Answer:
    """A roundtrip server 2 s ahead that stamps on arrival and replies after HOLD s."""

    def answer(index: int, request: bytes) -> list[tuple[float, bytes]]:
        stamp_us = (virtual_wall_clock() + SKEW) // 1000
        delay = (delays or {}).get(index, HOLD)
        return [(delay, rt.answer_datagram(request, stamp_us))] * copies

    return answer


async def fake_server(
    requests: trio.MemoryReceiveChannel[bytes],
    replies: trio.MemorySendChannel[bytes],
    answer: Answer,
    arrivals: list[float],
) -> None:
    async def later(delay: float, data: bytes) -> None:
        await trio.sleep(delay)
        await replies.send(data)

    async with trio.open_nursery() as nursery:
        index = 0
        async for request in requests:
            arrivals.append(trio.current_time())
            for delay, reply in answer(index, request):
                nursery.start_soon(later, delay, reply)
            index += 1


async def probe_fake(
    answer: Answer,
    client: rt.ClockClient | None = None,
    *,
    count: int = 4,
    interval: float = 0.25,
    reply_timeout: float = 0.125,
) -> tuple[clock.ProbeRun, list[clock.ProbeEvent], list[float]]:
    to_server, requests = trio.open_memory_channel[bytes](math.inf)
    replies, from_server = trio.open_memory_channel[bytes](math.inf)
    events: list[clock.ProbeEvent] = []
    arrivals: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake_server, requests, replies, answer, arrivals)
        run = await clock.run_probes(
            MemoryLink(to_server, from_server),
            client or rt.RoundtripClient(),
            count=count,
            interval=interval,
            reply_timeout=reply_timeout,
            clock=virtual_wall_clock,
            on_event=events.append,
        )
        nursery.cancel_scope.cancel()
    return run, events, arrivals


# --- the probe loop, in virtual time ---------------------------------------------------


async def test_probes_go_out_on_schedule_and_measure_exactly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run, events, arrivals = await probe_fake(roundtrip_answer())
    assert arrivals == [0.0, 0.25, 0.5, 0.75]
    hold_ns = round(HOLD * 1e9)
    expected = [ClockSample(i, hold_ns, SKEW - hold_ns // 2) for i in range(4)]
    assert events == expected
    report = run.report
    assert (report.probes, report.replies, report.lost) == (4, 4, 0)
    assert report.best == expected[0]
    assert report.spread_ns == 0
    assert run.failure is None


async def test_late_reply_is_discarded_and_never_mis_paired(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Probe 1's reply comes 0.3 s late: after its 0.125 s timeout, *while probe 2 waits*
    # (probe 2 is sent at 0.5 and answered at 0.58; the stale reply lands at 0.55).
    run, events, _ = await probe_fake(roundtrip_answer({1: 0.3, 2: 0.08}))
    assert [type(e).__name__ for e in events] == [
        "ClockSample",
        "ProbeTimeout",
        "DiscardedReply",
        "ClockSample",
        "ClockSample",
    ]
    assert events[1] == clock.ProbeTimeout(1)
    assert events[2] == DiscardedReply(1, "late")
    probe2 = events[3]
    assert isinstance(probe2, ClockSample)
    assert probe2.probe == 2
    assert probe2.rtt_ns == 80_000_000  # its own round trip, not 0.55 - 0.5
    report = run.report
    assert (report.replies, report.lost, report.late) == (3, 1, 1)


async def test_duplicate_replies_are_discarded(autojump_clock: trio.testing.MockClock) -> None:
    run, events, _ = await probe_fake(roundtrip_answer(copies=2), count=3)
    samples = [e for e in events if isinstance(e, ClockSample)]
    assert [s.probe for s in samples] == [0, 1, 2]
    assert events.count(DiscardedReply(1, "duplicate")) == 1
    # The run ends at the last probe's first reply, before that probe's copy is read.
    assert (run.report.replies, run.report.duplicates, run.report.lost) == (3, 2, 0)


async def test_silence_times_every_probe_out(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    run, events, _ = await probe_fake(lambda i, r: [], count=3)
    assert events == [clock.ProbeTimeout(0), clock.ProbeTimeout(1), clock.ProbeTimeout(2)]
    assert trio.current_time() - start == pytest.approx(0.5 + 0.125)  # last send + timeout
    assert (run.report.replies, run.report.lost) == (0, 3)
    assert run.failure is None


async def test_only_invalid_replies_keep_the_last_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def echo(index: int, request: bytes) -> list[tuple[float, bytes]]:
        return [(HOLD, request)]  # an echo server, not a roundtrip server

    run, events, _ = await probe_fake(echo, count=2)
    assert all(isinstance(e, clock.RejectedReply | clock.ProbeTimeout) for e in events)
    assert run.report.rejected == 2
    assert isinstance(run.failure, RemoteProtocolError)
    assert "server time is 0" in str(run.failure)


def ntp_answer(kiss_at: int | None = None) -> Answer:
    config = ntp.NtpServerConfig(stratum=5)

    def answer(index: int, request: bytes) -> list[tuple[float, bytes]]:
        now = virtual_wall_clock() + SKEW
        if index == kiss_at:
            packet = ntp.decode_packet(request)
            kiss = ntp.NtpPacket(mode=4, stratum=0, reference_id=b"RATE", originate=packet.transmit)
            return [(HOLD, ntp.encode_packet(kiss))]
        # T2 = arrival, T3 = HOLD/2 later; the reply then travels HOLD/2.
        reply = ntp.answer_request(request, now, now + round(HOLD * 5e8), config)
        return [(HOLD, reply)]

    return answer


async def test_ntp_over_the_loop_removes_the_server_hold_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run, events, _ = await probe_fake(ntp_answer(), ntp.NtpClient(), count=3)
    half = round(HOLD * 5e8)
    # offset = ((T2-T1) + (T3-T4)) / 2 = (SKEW + SKEW + half - 2 * half) / 2
    assert events[0] == ClockSample(0, 2 * half - half, SKEW - half // 2, stratum=5)
    assert run.report.replies == 3


async def test_kiss_of_death_stops_probing(autojump_clock: trio.testing.MockClock) -> None:
    run, events, arrivals = await probe_fake(ntp_answer(kiss_at=1), ntp.NtpClient(), count=6)
    assert len(arrivals) == 2  # nothing sent after the kiss
    assert isinstance(run.stopped, ntp.KissOfDeath)
    assert run.stopped.code == "RATE"
    assert "kiss-o'-death RATE" in str(run.stopped)
    assert run.report.replies == 1
    assert isinstance(events[-1], clock.RejectedReply)


# --- servers over real loopback sockets ------------------------------------------------


def skewed_clock() -> int:
    return time.time_ns() + SKEW


async def udp_server(
    nursery: trio.Nursery, proto: str, clock_fn: Callable[[], int] = skewed_clock
) -> tuple[clock.ClockServer, int]:
    sock = await datagram.bind_udp(Endpoint("127.0.0.1", 0))
    server = clock.ClockServer(proto, stratum=9, clock=clock_fn)

    async def serve() -> None:
        with sock:
            await server.serve_datagrams(sock)

    nursery.start_soon(serve)
    return server, sock.getsockname()[1]


def assert_offset_within_half_rtt(sample: ClockSample | None, true_offset: int) -> None:
    """The measured offset is off by at most half the round trip (+1 µs of truncation)."""
    assert sample is not None
    assert abs(sample.offset_ns - true_offset) <= sample.rtt_ns // 2 + 1000


@pytest.mark.parametrize("proto", ["roundtrip", "ntp"])
async def test_udp_probe_measures_a_skewed_server(proto: str) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            _server, port = await udp_server(nursery, proto)
            opts = clock.ProbeOptions(Endpoint("127.0.0.1", port), proto=proto)
            async with clock.open_probe_link(opts) as (link, peer):
                run = await clock.run_probes(
                    link, clock.make_client(proto), count=3, interval=0, reply_timeout=5
                )
            nursery.cancel_scope.cancel()
    assert peer == f"127.0.0.1:{port}"
    assert run.report.replies == 3
    for sample in run.report.samples:
        assert_offset_within_half_rtt(sample, SKEW)
        assert sample.stratum == (9 if proto == "ntp" else None)


@pytest.mark.parametrize("proto", ["roundtrip", "ntp"])
async def test_udp_server_survives_any_datagram_and_counts_drops(proto: str) -> None:
    garbage = [
        b"",
        b"x",
        b"\0" * 15,
        b"\0" * 17,
        b"\xff" * 47,
        b"\x24" + b"\0" * 47,
        b"\xa5" * 65507,
    ]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server, port = await udp_server(nursery, proto, time.time_ns)
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sock:
                await sock.connect(("127.0.0.1", port))
                for data in garbage:
                    await sock.send(data)
                client = clock.make_client(proto)
                probe = client.send_probe(time.time_ns())
                await sock.send(probe.data)
                # Datagrams on one path arrive in order: this reply means all were handled.
                reply = await sock.recv(65536)
                assert isinstance(client.receive_reply(reply, time.time_ns()), ClockSample)
            nursery.cancel_scope.cancel()
    # b"\x24..." is a 48-byte NTP mode-4 packet: a server must never answer it.
    assert server.statistics() == clock.ClockServerStatistics(answered=1, dropped=len(garbage))


async def test_serving_on_a_port_in_use_is_a_connect_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        opts = clock.ServeOptions(Endpoint("127.0.0.1", taken.getsockname()[1]))
        with trio.fail_after(10), pytest.raises(ConnectError, match="address already in use"):
            await clock.serve_main(opts)


async def test_probe_to_a_closed_udp_port_is_a_connect_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    opts = clock.ProbeOptions(Endpoint("127.0.0.1", port), count=3, interval=0.01, timeout=5)
    with trio.fail_after(10), pytest.raises(ConnectError, match="port unreachable"):
        await clock.probe_main(opts)
    assert " 0 replies, " in capsys.readouterr().out  # the summary still printed


async def test_probe_with_no_reply_times_out(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never read: no reply, no ICMP either
        opts = clock.ProbeOptions(
            Endpoint("127.0.0.1", silent.getsockname()[1]), count=2, interval=0, timeout=0.05
        )
        with trio.fail_after(10), pytest.raises(NcatTimeout, match="no reply to 2 probes"):
            await clock.probe_main(opts)
    out = capsys.readouterr().out
    assert "2 probes, 0 replies, 2 lost" in out


async def test_probe_main_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            _server, port = await udp_server(nursery, "ntp")
            opts = clock.ProbeOptions(
                Endpoint("127.0.0.1", port), proto="ntp", count=2, interval=0, json=True
            )
            assert await clock.probe_main(opts) == 0
            nursery.cancel_scope.cancel()
    result = json.loads(capsys.readouterr().out)
    assert (result["proto"], result["probes"], result["replies"], result["lost"]) == (
        "ntp",
        2,
        2,
        0,
    )
    assert result["best"]["stratum"] == 9
    assert abs(result["best"]["offset_s"] - 2) <= result["best"]["rtt_s"] / 2 + 1e-6
    assert len(result["samples"]) == 2


# --- roundtrip over streams -------------------------------------------------------------


async def test_stream_server_buffers_partial_frames(autojump_clock: trio.testing.MockClock) -> None:
    server = clock.ClockServer("roundtrip", clock=virtual_wall_clock)
    client_end, server_end = trio.testing.memory_stream_pair()
    a = rt.encode_frame(rt.RoundtripFrame(111))
    b = rt.encode_frame(rt.RoundtripFrame(222))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, server_end)
        for piece in (a[:5], a[5:] + b[:9]):
            await client_end.send_all(piece)
        first = await client_end.receive_some(100)  # a is complete: its reply comes alone
        await client_end.send_all(b[9:])
        second = await client_end.receive_some(100)
        stamp_us = BASE // 1000
        assert first == rt.encode_frame(rt.RoundtripFrame(111, stamp_us))
        assert second == rt.encode_frame(rt.RoundtripFrame(222, stamp_us))
        await client_end.send_all(b"\1\2\3")
        await client_end.send_eof()
        assert await client_end.receive_some(100) == b""  # the server closed its end
    assert server.statistics() == clock.ClockServerStatistics(answered=2, dropped=1)


async def test_stream_probe_against_the_stream_server(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = clock.ClockServer("roundtrip", clock=lambda: virtual_wall_clock() + SKEW)
    client_end, server_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, server_end)
        link = clock.StreamLink(client_end, "server", virtual_wall_clock)
        run = await clock.run_probes(
            link, rt.RoundtripClient(), count=3, interval=0.25, reply_timeout=1,
            clock=virtual_wall_clock,
        )  # fmt: skip
        await client_end.aclose()
    assert [(s.rtt_ns, s.offset_ns) for s in run.report.samples] == [(0, SKEW)] * 3


async def test_stream_closed_by_the_server_keeps_what_was_measured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()

    async def answer_two_then_close() -> None:
        buffer = rt.FrameBuffer()
        answered = 0
        while answered < 2:
            buffer.receive_data(await server_end.receive_some(100))
            while isinstance(frame := buffer.next_event(), rt.RoundtripFrame):
                await server_end.send_all(rt.encode_frame(rt.RoundtripFrame(frame.sent_us, 1)))
                answered += 1
        await server_end.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_two_then_close)
        link = clock.StreamLink(client_end, "roundtrip server x", virtual_wall_clock)
        run = await clock.run_probes(
            link, rt.RoundtripClient(), count=5, interval=0.25, reply_timeout=1,
            clock=virtual_wall_clock,
        )  # fmt: skip
    assert run.report.replies == 2
    assert isinstance(run.stopped, ConnectionLost)
    assert "closed the connection" in str(run.stopped)


async def test_stream_link_failures_are_connection_lost_in_the_one_wording() -> None:
    """A broken pipe on the link is a reset, said as every connection says it (pump.translate);
    a closed stream says "closed"."""
    client_end, _server_end = trio.testing.memory_stream_pair()
    link = clock.StreamLink(client_end, "roundtrip server x", virtual_wall_clock)

    async def broken(data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        raise trio.BrokenResourceError("write failed") from BrokenPipeError(32, "Broken pipe")

    client_end.send_all = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionLost, match=r"^roundtrip server x: connection reset by peer$"):
        await link.send(b"x")
    await client_end.aclose()
    with pytest.raises(ConnectionLost, match=r"^roundtrip server x: closed$"):
        await link.receive()


async def test_tcp_probe_against_the_tcp_server() -> None:
    server = clock.ClockServer("roundtrip", clock=skewed_clock)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
            async with listener:
                await nursery.start(server.serve_listener, listener)
                port = listener.socket.getsockname()[1]
                opts = clock.ProbeOptions(Endpoint("127.0.0.1", port), tcp=True)
                async with clock.open_probe_link(opts) as (link, _peer):
                    run = await clock.run_probes(
                        link, rt.RoundtripClient(), count=3, interval=0, reply_timeout=5
                    )
                nursery.cancel_scope.cancel()
    assert run.report.replies == 3
    for sample in run.report.samples:
        assert_offset_within_half_rtt(sample, SKEW)


# --- the command line -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["clock", "serve", "--proto", "ntp", "--tcp"],
        ["clock", "serve", "--proto", "sntp"],
        ["clock", "serve", "--stratum", "0"],
        ["clock", "serve", "--stratum", "16"],
        ["clock", "serve", "-p", "70000"],
        ["clock", "probe", "localhost", "--timeout", "0"],
        ["clock", "probe", "localhost", "--interval", "soon"],
        ["clock", "probe", "localhost", "-c", "0"],
        ["clock", "probe", "localhost", "-4", "-6"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run_cli(args) == 2


def start_server(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = spawn([*NCAT, "clock", "serve", "-b", "127.0.0.1", "-p", "0", *args])
    assert proc.stderr is not None
    try:
        return proc, wait_for_port(proc.stderr)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


@pytest.mark.parametrize("args", [["--proto", "roundtrip"], ["--proto", "ntp"], ["--tcp"]])
def test_end_to_end_serve_and_probe(args: list[str]) -> None:
    server, port = start_server("-v", *args)
    try:
        probe = subprocess.run(
            [*NCAT, "clock", "probe", "127.0.0.1", "-p", str(port), "-c", "3",
             "--interval", "0", "--json", "-v", *args],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        _, server_err = server.communicate(timeout=30)
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert (result["probes"], result["replies"]) == (3, 3)
    assert abs(result["best"]["offset_s"]) < 0.001  # same clock on both ends
    assert probe.stderr.count(b"ncat-trio: probe ") == 3  # -v: one line per sample
    assert server.returncode == 130
    assert b"answered 3 requests, dropped 0" in server_err


def test_end_to_end_no_server_exits_4() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        probe = subprocess.run(
            [*NCAT, "clock", "probe", "127.0.0.1", "-p", str(silent.getsockname()[1]),
             "-c", "2", "--interval", "0", "--timeout", "0.1"],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    assert probe.returncode == 4
    assert b"2 probes, 0 replies, 2 lost" in probe.stdout
    assert probe.stderr.startswith(b"ncat-trio: roundtrip server 127.0.0.1:")

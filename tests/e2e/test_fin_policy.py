"""When the FIN goes out after stdin EOF: ``--shutdown=now|idle[:SECS]|never`` (issue 16 §2).

``idle`` (the CLI's default) holds the FIN until the peer has sent nothing for a quiet
period, so servers that take a FIN as an abort (nginx with a large body, tinyproxy,
ncat's HTTP proxy) finish first, while a server that reads to EOF still gets it.  The
session tests run over memory streams with ``MockClock`` (every wait is Trio's); the
real servers are in ``tests/interop/test_real_servers.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from ncat_trio import SessionOptions, SessionResult, netcat_session
from ncat_trio.cli import run_cli
from ncat_trio.cli.netcat import FIN_QUIET
from ncat_trio.modes import netcat
from ncat_trio.modes.netcat import NetcatOptions

from ..support import record_mains

IDLE = SessionOptions(fin_after_quiet=1.0)


class Ends:
    def __init__(self) -> None:
        self.conn, self.peer = trio.testing.memory_stream_pair()
        self.stdin_writer, self.stdin = trio.testing.memory_stream_one_way_pair()
        self.stdout = trio.testing.MemorySendStream()
        self.results: list[SessionResult] = []

    async def run(self, options: SessionOptions) -> None:
        self.results.append(await netcat_session(self.conn, self.stdin, self.stdout, options))

    async def fin_seen(self) -> float:
        """Read the peer's side until our FIN; return when (Trio time) it came."""
        while await self.peer.receive_some():
            pass
        return trio.current_time()


@contextlib.asynccontextmanager
async def session(options: SessionOptions) -> AsyncIterator[Ends]:
    """The session on fresh ends, running in a nursery; leaving waits for it to end."""
    ends = Ends()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ends.run, options)
        yield ends


async def test_idle_holds_the_fin_while_the_peer_sends(autojump_clock: trio.abc.Clock) -> None:
    async with session(IDLE) as ends, trio.open_nursery() as nursery:
        await ends.stdin_writer.aclose()  # stdin ends before the reply starts
        fin_at: list[float] = []
        fin = trio.Event()

        async def watch() -> None:
            fin_at.append(await ends.fin_seen())
            fin.set()

        nursery.start_soon(watch)
        start = trio.current_time()
        for _ in range(10):  # a reply that keeps coming every 0.6 s (< 1 s quiet)
            await ends.peer.send_all(b"x" * 100)
            await trio.sleep(0.6)
        assert not fin_at, "no FIN while the peer is still sending"
        last = trio.current_time() - 0.6
        await fin.wait()
        assert fin_at[0] - last == pytest.approx(1.0, abs=0.15)
        assert fin_at[0] - start > 5
        await ends.peer.send_eof()
    assert ends.stdout.get_data_nowait() == b"x" * 1000
    assert ends.results[0].stdin_eof
    assert ends.results[0].peer_eof


async def test_idle_sends_the_fin_to_a_silent_peer_after_the_period(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A server that reads to EOF gets its FIN one quiet period after stdin EOF."""
    async with session(IDLE) as ends:
        await ends.stdin_writer.send_all(b"request")
        await ends.stdin_writer.aclose()
        start = trio.current_time()
        got = bytearray()
        while chunk := await ends.peer.receive_some():
            got += chunk
        assert bytes(got) == b"request"
        assert trio.current_time() - start == pytest.approx(1.0, abs=0.05)
        await ends.peer.send_all(b"answer")
        await ends.peer.send_eof()
    assert ends.stdout.get_data_nowait() == b"answer"


@pytest.mark.parametrize(
    ("upload", "peer_spoke", "waits"),
    [
        (netcat.BULK_UPLOAD, False, False),  # a file copy into `nc -l > file`: FIN at once
        (netcat.BULK_UPLOAD - 1, False, True),  # a request, however long: the quiet wait
        (netcat.BULK_UPLOAD, True, True),  # the peer answers: it may still be sending
    ],
    ids=["bulk-to-silent-peer", "just-below", "peer-spoke"],
)
async def test_idle_sends_a_bulk_uploads_fin_at_once(
    autojump_clock: trio.abc.Clock, upload: int, peer_spoke: bool, waits: bool
) -> None:
    """Only a silent peer that was sent BULK_UPLOAD bytes or more skips the quiet period:
    the servers that take a FIN as an abort answer small requests (docs/differences.md)."""
    async with session(IDLE) as ends, trio.open_nursery() as nursery:
        received = bytearray()
        fin = trio.Event()
        fin_at: list[float] = []

        async def read_until_fin() -> None:
            while chunk := await ends.peer.receive_some():
                received.extend(chunk)
            fin_at.append(trio.current_time())
            fin.set()

        nursery.start_soon(read_until_fin)
        if peer_spoke:
            await ends.peer.send_all(b"hello")
            await trio.testing.wait_all_tasks_blocked()
        await ends.stdin_writer.send_all(b"u" * upload)
        await ends.stdin_writer.aclose()
        start = trio.current_time()
        await fin.wait()
        assert len(received) == upload
        assert fin_at[0] - start == (pytest.approx(1.0, abs=0.05) if waits else 0)
        await ends.peer.send_eof()


async def test_now_sends_the_fin_at_stdin_eof(autojump_clock: trio.abc.Clock) -> None:
    async with session(SessionOptions(fin_after_quiet=None)) as ends:
        await ends.stdin_writer.aclose()
        start = trio.current_time()
        assert await ends.fin_seen() == start  # no time passed
        await ends.peer.send_eof()


async def test_idle_ends_at_once_when_the_peer_closed_first(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with session(IDLE) as ends:
        await ends.peer.send_all(b"bye")
        await ends.peer.send_eof()
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        await ends.stdin_writer.aclose()
        assert await ends.fin_seen() == start
    assert ends.results[0].peer_eof


async def test_linger_counts_from_stdin_eof_not_from_the_fin(
    autojump_clock: trio.abc.Clock,
) -> None:
    """-q bounds the whole wait after stdin EOF, the quiet period included."""
    async with session(SessionOptions(fin_after_quiet=10.0, linger=2.0)) as ends:
        await ends.stdin_writer.aclose()
        start = trio.current_time()
        for _ in range(5):  # keeps the quiet period from ever running out
            await ends.peer.send_all(b"y")
            await trio.sleep(1)
    assert ends.results[0].lingered_out
    assert trio.current_time() - start < 6


# --- the command line ----------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[NetcatOptions]:
    return record_mains(monkeypatch, netcat, "connect_main", "listen_main")


@pytest.mark.parametrize(
    ("flags", "shutdown", "quiet"),
    [
        ([], True, FIN_QUIET),
        (["-N"], True, None),
        (["--shutdown"], True, None),
        (["--shutdown=now"], True, None),
        (["--shutdown=idle"], True, FIN_QUIET),
        (["--shutdown=idle:2"], True, 2.0),
        (["--shutdown=never"], False, None),
        (["--no-shutdown"], False, None),
        (["-N", "--shutdown=now"], True, None),
    ],
)
@pytest.mark.parametrize("mode", [["127.0.0.1", "9"], ["-l", "9"]], ids=["connect", "listen"])
def test_fin_policy_flags(
    recorded: list[NetcatOptions],
    flags: list[str],
    shutdown: bool,
    quiet: float | None,
    mode: list[str],
) -> None:
    assert run_cli([*flags, *mode]) == 0
    session = recorded[0].session
    assert (session.shutdown, session.fin_after_quiet) == (shutdown, quiet)


@pytest.mark.parametrize(
    "flags",
    [
        ["-N", "--no-shutdown"],
        ["--shutdown=never", "-N"],
        ["--shutdown=later"],
        ["--shutdown=now:1"],
    ],
)
def test_contradicting_or_bad_fin_flags_are_usage_errors(
    recorded: list[NetcatOptions], flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli([*flags, "127.0.0.1", "9"]) == 2
    assert not recorded
    assert "shutdown" in capsys.readouterr().err

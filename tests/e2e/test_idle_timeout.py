"""``send``/``receive -i SECS``: a peer that hangs without closing ends the transfer
with exit 4 once the connection has been silent that long; local work doesn't count."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess

import pytest
import trio
import trio.testing

from ncat_trio.transport.idle import IdleWatch, WatchedStream

from ..support import NCAT, spawn_listener


async def test_silence_fires_and_traffic_or_local_work_does_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    watch = IdleWatch(2.0)
    watched = WatchedStream(left, watch)
    began = trio.current_time()
    with watch.scope:
        for _ in range(5):  # a byte every 1.5 s keeps it alive for 7.5 s
            await trio.sleep(1.5)
            await right.send_all(b"x")
            assert await watched.receive_some(10) == b"x"
        with watch.paused():  # 60 s of hashing or fsync is not silence
            await trio.sleep(60)
        await trio.sleep(1.9)
        await watched.send_all(b"y")
        assert await right.receive_some(10) == b"y"
        await watched.receive_some(10)  # nothing comes: fires 2 s after the send
    assert watch.scope.cancelled_caught
    assert trio.current_time() - began == pytest.approx(7.5 + 60 + 1.9 + 2.0)


def _silent_peer() -> tuple[socket.socket, int]:
    """A listener whose connections are accepted by the kernel and never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    return server, server.getsockname()[1]


def test_send_to_a_receiver_that_never_answers_exits_4() -> None:
    server, port = _silent_peer()
    with server:
        done = subprocess.run(
            [*NCAT, "send", "-i", "0.5", "127.0.0.1", str(port), "-"],
            input=b"some bytes",
            capture_output=True,
            timeout=20,
            check=False,
        )
    assert done.returncode == 4, done.stderr
    assert done.stderr.decode().strip().splitlines() == [
        f"ncat-trio: connection to 127.0.0.1:{port}: nothing sent or received for 0.5 s (-i)"
    ]


def test_receive_from_a_sender_that_never_sends_exits_4() -> None:
    proc, port = spawn_listener(["receive", "-i", "0.5", "-o", "-", "127.0.0.1", "0"])
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 4, err
    assert out == b""
    assert b"nothing sent or received for 0.5 s (-i)" in err
    assert b"Traceback" not in err


def test_a_bad_idle_timeout_is_a_usage_error() -> None:
    done = subprocess.run(
        [*NCAT, "send", "-i", "soon", "127.0.0.1", "9", "-"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.decode().strip().splitlines()) == 1
    assert b"idle timeout (-i)" in done.stderr


def test_a_transfer_that_keeps_moving_is_not_cut(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    out = tmp_path / "out"
    out.mkdir()
    proc, port = spawn_listener(["receive", "-q", "-i", "5", "-o", str(out), "127.0.0.1", "0"])
    try:
        sent = subprocess.run(
            [*NCAT, "send", "-q", "-i", "5", "127.0.0.1", str(port), str(src)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (sent.returncode, proc.returncode) == (0, 0), (sent.stderr, err)
    assert (out / "src.bin").read_bytes() == src.read_bytes()

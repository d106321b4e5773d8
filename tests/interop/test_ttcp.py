"""ttcp against the C reference peer ``ttcp_ref`` (peers/ttcp_ref.c), both directions.

``ttcp_ref`` was written from the protocol description and checked on the wire
against muduo's ttcp.  Its receiver reads a payload, then acks it, so a
transmitter with ``--window W`` must work against it unchanged: tested here too.
Our receiver runs with ``--verify``, so the C peer's data pattern is checked byte
for byte.  In CI a missing peer fails these tests (tests/support.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ..support import NCAT, finish, require_ref_peer, spawn, wait_for_port

pytestmark = pytest.mark.interop

SIZES = [(1, 1000), (65536, 512), (0, 3), (1048576, 64)]  # (length, number), from issue 4
TIMEOUT = 60


@contextmanager
def running(args: list[str], *, ready_on: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A receiver with its real port (``port = P`` / ``listening on``); killed if left over."""
    with spawn(args) as proc:
        try:
            stream = proc.stdout if ready_on == "stdout" else proc.stderr
            assert stream is not None
            yield proc, wait_for_port(stream)
        finally:
            if proc.poll() is None:
                proc.kill()


def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT, check=False)


def sizes(port: int, length: int, number: int) -> list[str]:
    return ["127.0.0.1", "-p", str(port), "-l", str(length), "-n", str(number)]


def output_of(proc: subprocess.Popen[bytes]) -> str:
    """What ``proc`` printed, once it has exited 0."""
    assert finish(proc, TIMEOUT) == 0
    assert proc.stdout is not None
    return proc.stdout.read().decode()


def expected_lines(length: int, number: int) -> str:
    return f"{length * number / 1048576:.3f} MiB in total\n"


@pytest.mark.parametrize(("length", "number"), SIZES)
def test_ncat_transmits_to_ttcp_ref(length: int, number: int) -> None:
    ref = require_ref_peer("ttcp_ref")
    with running([ref, "-r", "-p", "0", "-b", "127.0.0.1"], ready_on="stdout") as (peer, port):
        sent = run([*NCAT, "ttcp", "transmit", *sizes(port, length, number)])
        assert sent.returncode == 0, sent.stderr
        received = output_of(peer)
        assert peer.stderr is not None
        assert peer.stderr.read() == b""
    assert f"receive number = {number}\nreceive length = {length}\n" in received
    assert expected_lines(length, number) in received
    assert expected_lines(length, number) in sent.stdout.decode()


@pytest.mark.parametrize(("length", "number"), SIZES)
def test_ttcp_ref_transmits_to_ncat(length: int, number: int) -> None:
    ref = require_ref_peer("ttcp_ref")
    receiver = [*NCAT, "ttcp", "receive", "-p", "0", "-b", "127.0.0.1", "--verify"]
    with running(receiver, ready_on="stderr") as (ours, port):
        sent = run([ref, "-t", *sizes(port, length, number)])
        assert sent.returncode == 0, sent.stderr
        received = output_of(ours)
    assert f"receive number = {number}\nreceive length = {length}\n" in received
    assert expected_lines(length, number) in received
    assert expected_lines(length, number) in sent.stdout.decode()


@pytest.mark.parametrize(
    ("window", "length", "number"), [(16, 1024, 2000), (4, 65536, 256), (64, 1, 5000)]
)
def test_window_against_ttcp_ref_receiver(window: int, length: int, number: int) -> None:
    """The C receiver reads a payload, then acks it: a window needs nothing more."""
    ref = require_ref_peer("ttcp_ref")
    with running([ref, "-r", "-p", "0", "-b", "127.0.0.1"], ready_on="stdout") as (peer, port):
        sent = run([*NCAT, "ttcp", "-t", *sizes(port, length, number), "--window", str(window)])
        assert sent.returncode == 0, sent.stderr
        received = output_of(peer)
    assert f"receive number = {number}\n" in received
    assert expected_lines(length, number) in received


def test_ttcp_ref_with_nodelay_to_ncat_classic_receiver() -> None:
    ref = require_ref_peer("ttcp_ref")
    receiver = [*NCAT, "ttcp", "-r", "-p", "0", "-b", "127.0.0.1"]
    with running(receiver, ready_on="stderr") as (ours, port):
        sent = run([ref, "-t", "127.0.0.1", "-p", str(port), "-l", "100", "-n", "100", "-D"])
        assert sent.returncode == 0, sent.stderr
        assert finish(ours, TIMEOUT) == 0


def test_ncat_refuses_a_length_above_its_limit_from_ttcp_ref() -> None:
    ref = require_ref_peer("ttcp_ref")
    receiver = [*NCAT, "ttcp", "receive", "-p", "0", "-b", "127.0.0.1", "--max-length", "1K"]
    with running(receiver, ready_on="stderr") as (ours, port):
        sent = run([ref, "-t", "127.0.0.1", "-p", str(port), "-l", "2048", "-n", "4"])
        assert finish(ours, TIMEOUT) == 6
        assert ours.stderr is not None
        assert b"session length 2048 is above the limit of 1024" in ours.stderr.read()
    assert sent.returncode == 1  # the C transmitter sees the connection go

"""``scan HOST PORTS`` and ``-z``: open ports as ``ADDRESS PORT open`` lines in port order,
exit 0 if any is open and 1 if none, exit 2 for a bad port list.  Loopback only."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from ncat_trio.errors import UsageError
from ncat_trio.modes.scan import parse_ports

from ..support import NCAT, one_error_line


def test_parse_ports() -> None:
    assert parse_ports("22,80,8000-8003") == (22, 80, 8000, 8001, 8002, 8003)
    assert parse_ports(["443", "22,22", "1-2"]) == (1, 2, 22, 443)
    assert parse_ports("65535") == (65535,)


@pytest.mark.parametrize("bad", ["0", "65536", "80-22", "a-b", "1-", "-5", "", "22,,80", "0x50"])
def test_invalid_port_ranges_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_ports(bad)


@pytest.fixture
def open_ports() -> Iterator[list[int]]:
    """Three listening sockets on 127.0.0.1 (kernel-chosen ports)."""
    sockets = []
    for _ in range(3):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sockets.append(sock)
    try:
        yield sorted(s.getsockname()[1] for s in sockets)
    finally:
        for sock in sockets:
            sock.close()


def closed_port() -> int:
    """A port nothing listens on (bound then released, so it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*NCAT, *args], capture_output=True, timeout=60, check=False)


def test_open_ports_one_line_each_in_port_order(open_ports: list[int]) -> None:
    closed = closed_port()
    ports = ",".join(str(p) for p in [*reversed(open_ports), closed])
    done = run(["scan", "--concurrency", "2", "127.0.0.1", ports])
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode().splitlines() == [f"127.0.0.1 {p} open" for p in open_ports]


def test_nc_spelling_with_verbose_reports_closed_ports_on_stderr(open_ports: list[int]) -> None:
    """nc.openbsd's -z output (issue 16 §4): nothing on stdout, the open port on stderr."""
    closed = closed_port()
    done = run(["-zv", "-w", "2", "127.0.0.1", str(open_ports[0]), str(closed)])
    assert done.returncode == 0
    assert done.stdout == b""
    err = done.stderr.decode()
    assert f"Connection to 127.0.0.1 {open_ports[0]} port [tcp/" in err
    assert "] succeeded!\n" in err
    assert f"127.0.0.1 {closed} closed (connection refused)" in err
    assert "scanned 2 ports on 127.0.0.1: 1 open" in err


def test_nc_spelling_without_verbose_prints_nothing(open_ports: list[int]) -> None:
    """`until ncat-trio -z HOST PORT; do …` loops: the exit status is the whole answer."""
    closed = closed_port()
    assert run(["-z", "127.0.0.1", str(open_ports[0])]).returncode == 0
    done = run(["-z", "127.0.0.1", str(open_ports[0]), str(closed)])
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    done = run(["-z", "127.0.0.1", str(closed)])
    assert (done.returncode, done.stdout, done.stderr) == (1, b"", b"")


def test_a_range_with_nothing_open_is_exit_1() -> None:
    port = closed_port()
    done = run(["scan", "127.0.0.1", f"{port}-{port}"])
    assert (done.returncode, done.stdout, done.stderr) == (1, b"", b"")


def test_a_range_through_the_concurrency_bound(open_ports: list[int]) -> None:
    """More ports than workers: every port answered once, the open ones found."""
    low = max(1, open_ports[0] - 150)
    done = run(["scan", "--concurrency", "8", "127.0.0.1", f"{low}-{open_ports[0]}"])
    assert done.returncode == 0
    assert f"127.0.0.1 {open_ports[0]} open" in done.stdout.decode().splitlines()


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "127.0.0.1", "80-22"],
        ["-z", "127.0.0.1", "0"],
        ["scan", "127.0.0.1", "70000"],
        ["scan", "--concurrency", "0", "127.0.0.1", "22"],
        ["scan", "-w", "soon", "127.0.0.1", "22"],
    ],
    ids=["reversed", "zero", "too-big", "no-workers", "bad-timeout"],
)
def test_bad_arguments_are_exit_2(args: list[str]) -> None:
    done = run(args)
    assert (done.returncode, done.stdout) == (2, b"")
    one_error_line(done.stderr)

"""``scan HOST PORTS`` and ``-z``: open ports as ``ADDRESS PORT open`` lines in port order,
exit 0 if any is open and 1 if none, exit 2 for a bad port list.  Loopback only."""

from __future__ import annotations

import random
import resource
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest

from ncat_trio.errors import UsageError
from ncat_trio.modes.scan import parse_ports

from ..support import (
    NCAT,
    finish,
    heavy,
    one_error_line,
    read_line,
    run_watching_imports,
    spawn,
)


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


@pytest.fixture
def private_ports() -> Iterator[tuple[str, list[int]]]:
    """Three listeners on a loopback address of this test's own (all of 127/8 is local),
    for scans of a port *range*: 150 ports of 127.0.0.1 are other tests' listeners when
    suites run side by side (a stray connect once counted as a relay's extra client)."""
    host = f"127.{random.randrange(64, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    sockets = []
    for _ in range(3):
        sock = socket.socket()
        sock.bind((host, 0))
        sock.listen(16)
        sockets.append(sock)
    try:
        yield host, sorted(s.getsockname()[1] for s in sockets)
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


def test_a_range_through_the_concurrency_bound(private_ports: tuple[str, list[int]]) -> None:
    """More ports than workers: every port answered once, the open ones found."""
    host, ports = private_ports
    low = max(1, ports[0] - 150)
    done = run(["scan", "--concurrency", "8", host, f"{low}-{ports[0]}"])
    assert done.returncode == 0, done.stderr
    assert f"{host} {ports[0]} open" in done.stdout.decode().splitlines()


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


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener with backlog 0 whose accept queue is
    already full (Linux drops further SYNs), so a connect neither succeeds nor fails."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_a_port_that_never_answers_is_filtered_after_the_timeout(silent_port: int) -> None:
    done = run(["scan", "-v", "-w", "0.3", "127.0.0.1", str(silent_port)])
    assert (done.returncode, done.stdout) == (1, b"")
    assert f"127.0.0.1 {silent_port} filtered (no answer within 0.3 s)" in done.stderr.decode()


def lower_closed_port(than: int) -> int:
    for _ in range(200):
        port = closed_port()
        if port < than:
            return port
    raise AssertionError(f"no free port below {than}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_scan_is_one_line_and_its_exit_code(
    silent_port: int, signum: int, code: int
) -> None:
    """The scan runs without Trio (start-up, issue 16) and still ends as every command
    does: the blocked poll is interrupted, one line, 128 + signum, no traceback."""
    closed = lower_closed_port(silent_port)
    scan = spawn([*NCAT, "scan", "-v", "-w", "60", "127.0.0.1", f"{closed},{silent_port}"])
    assert scan.stderr is not None
    assert b"closed" in read_line(scan.stderr)  # the silent port's connect is now in flight
    scan.send_signal(signum)
    assert finish(scan, 10) == code
    rest = scan.stderr.read().decode()
    assert rest == f"ncat-trio: interrupted by {signal.Signals(signum).name}\n"


def test_out_of_fds_the_scan_waits_for_a_connect_to_finish(
    private_ports: tuple[str, list[int]],
) -> None:
    """``ulimit -n 24`` and 400 connects allowed in flight: socket() fails with EMFILE
    long before that; the scan goes on as connects finish, every port answered."""
    host, open_ports = private_ports
    low = max(1, open_ports[0] - 300)

    def few_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    done = subprocess.run(
        [*NCAT, "scan", "--concurrency", "400", host, f"{low}-{open_ports[-1]}"],
        capture_output=True,
        timeout=60,
        check=False,
        preexec_fn=few_fds,
    )
    assert (done.returncode, done.stderr) == (0, b""), done.stderr
    assert [f"{host} {p} open" for p in open_ports] == [
        line for line in done.stdout.decode().splitlines() if int(line.split()[1]) in open_ports
    ]


def test_a_scan_line_imports_neither_trio_nor_typer() -> None:
    """Start-up (issue 16 §4): `until ncat-trio -z HOST PORT` pays it on every call, and
    importing Trio is most of a Trio program's; the scan needs neither Trio nor typer.
    (Measured in benchmarks/RESULTS.md, "startup"; this checks the cause, not a time.)"""
    port = closed_port()
    for args in (["-z", "127.0.0.1", str(port)], ["-zvn", "-w1", "127.0.0.1", str(port)]):
        done, imported = run_watching_imports(args)
        assert done.returncode == 1, done.stderr
        assert (done.stderr == b"") is ("-z" in args), done.stderr  # -v speaks
        assert "ncat_trio.modes.scan" in imported
        assert heavy(imported) == set()


def test_a_name_under_n_is_one_line_and_exit_1() -> None:
    done = run(["-z", "-n", "localhost", "80"])
    assert (done.returncode, done.stdout) == (1, b"")
    assert one_error_line(done.stderr) == (
        "ncat-trio: cannot resolve localhost: not a numeric address (-n forbids DNS)"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-zu", "127.0.0.1", "53"], "no option -u with -z/scan: UDP port scans (nc -zu)"),
        (["-z", "-p", "5000", "127.0.0.1", "53"], "no option -p with -z/scan: a scan connects"),
        (["-z", "-x", "10.0.0.1", "h", "1"], "no option -x with -z/scan: a scan takes -v, -n"),
    ],
    ids=["udp", "source-port", "proxy"],
)
def test_nc_flags_a_scan_has_not_are_named(args: list[str], says: str) -> None:
    """Fail closed with the reason: nc.openbsd users combine these with -z."""
    done = run(args)
    assert (done.returncode, done.stdout) == (2, b"")
    assert one_error_line(done.stderr).startswith(f"ncat-trio: {says}")

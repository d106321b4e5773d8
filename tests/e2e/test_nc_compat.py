"""nc.openbsd's spellings as scripts type them (issue 16 §3).

* ``-w SECS`` bounds connecting *and* idleness: ``echo hi | nc.openbsd -w 2 HOST PORT``
  against a server that accepts and never answers exits 0 after 2 s (measured here);
  ``--connect-timeout`` keeps the connect-only meaning.
* ``listen -s ADDR -p PORT``, ``-w`` on listen, ``-x ADDR[:PORT]`` / ``-X 4|5|connect``.
* A flag nc has and we spell differently: the usage error names the equivalent.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest

from ncat_trio.cli import run_cli
from ncat_trio.modes import netcat
from ncat_trio.modes.netcat import NetcatOptions
from ncat_trio.proto.proxy import ProxyType

from ..support import (
    NCAT,
    ServeOnce,
    finish,
    one_error_line,
    reaped,
    record_mains,
    require_program,
    run_ncat,
    wait_for_port,
)


class Silent:
    """A server that reads what comes and never answers nor closes until ``release``."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def __call__(self, conn: socket.socket) -> bytes:
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
        self.released.wait(30)
        return got


@pytest.mark.parametrize("spelling", [[], ["connect"]], ids=["nc", "connect"])
def test_w_ends_a_quiet_session_with_exit_0(spelling: list[str]) -> None:
    silent = Silent()
    with ServeOnce(silent) as server:
        start = time.monotonic()
        proc = run_ncat([*spelling, "--json", "-w", "1", "127.0.0.1", str(server.port)], b"hi\n")
        took = time.monotonic() - start
        silent.released.set()
        assert server.result() == b"hi\n"
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr)["ended"] == "quiet (-w)"
    assert 1 <= took < 10  # the 12 s of the issue were "still running"


def test_nc_openbsd_w_is_the_same() -> None:
    """The reference: nc.openbsd -w 1 against the same silent server exits 0."""
    nc = require_program("nc.openbsd")
    silent = Silent()
    with ServeOnce(silent) as server:
        proc = subprocess.run(
            [nc, "-w", "1", "127.0.0.1", str(server.port)],
            input=b"hi\n",
            capture_output=True,
            timeout=30,
            check=False,
        )
        silent.released.set()
        server.result()
    assert proc.returncode == 0


def test_w_does_not_cut_a_session_that_moves() -> None:
    """Data every 0.3 s for 2 s: -w 1 never fires; the session ends at the peer's close."""

    def trickle(conn: socket.socket) -> None:
        for _ in range(7):
            conn.sendall(b"tick\n")
            time.sleep(0.3)  # the data's own pace, not synchronisation

    with ServeOnce(trickle) as server:
        proc = run_ncat(["-w", "1", "-d", "127.0.0.1", str(server.port)])
        server.result()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"tick\n" * 7


def test_connect_timeout_alone_does_not_end_a_quiet_session() -> None:
    silent = Silent()
    silent.released.set()  # this one closes once it has our FIN
    with ServeOnce(silent) as server:
        proc = subprocess.Popen(
            [*NCAT, "connect", "--connect-timeout", "1", "127.0.0.1", str(server.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        with reaped(proc):
            assert proc.stdin is not None
            proc.stdin.write(b"hi\n")
            proc.stdin.flush()
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(2.5)  # well past the 1 s: still connected, as asked
            proc.stdin.close()  # our FIN (after the quiet period); the server closes
            assert finish(proc, 30) == 0
        assert server.result() == b"hi\n"


def test_listen_s_addr_p_port_and_w() -> None:
    """``ncat-trio -l -s 127.0.0.1 -p 0 -w 1``: a client that goes quiet ends it, exit 0."""
    proc = subprocess.Popen(
        [*NCAT, "-l", "-s", "127.0.0.1", "-p", "0", "-w", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with reaped(proc):
        assert proc.stderr is not None
        port = wait_for_port(proc.stderr)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(b"hello\n")
            assert finish(proc, 30) == 0
        assert proc.stdout is not None
        assert proc.stdout.read() == b"hello\n"


# --- parsing: the options these spellings become -------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[NetcatOptions]:
    return record_mains(monkeypatch, netcat, "connect_main", "listen_main")


def test_w_sets_both_bounds(recorded: list[NetcatOptions]) -> None:
    assert run_cli(["-w", "2", "127.0.0.1", "9"]) == 0
    assert run_cli(["connect", "--connect-timeout", "3", "127.0.0.1", "9"]) == 0
    assert run_cli(["-l", "-w", "4", "9"]) == 0
    (a, b, c) = recorded
    assert (a.connect_timeout, a.session.quiet_exit) == (2, 2)
    assert (b.connect_timeout, b.session.quiet_exit) == (3, None)
    assert c.session.quiet_exit == 4


def test_listen_source_is_the_bind_address(recorded: list[NetcatOptions]) -> None:
    assert run_cli(["-l", "-s", "127.0.0.1", "-p", "9000"]) == 0
    assert run_cli(["listen", "-s", "::1", "9001"]) == 0
    assert [(o.endpoint.host, o.endpoint.port) for o in recorded] == [
        ("127.0.0.1", 9000),
        ("::1", 9001),
    ]


@pytest.mark.parametrize(
    ("flags", "kind", "port"),
    [
        (["-x", "127.0.0.1"], ProxyType.SOCKS5, 1080),  # nc.openbsd: SOCKS5 unless -X
        (["-x", "127.0.0.1:9050", "-X", "5"], ProxyType.SOCKS5, 9050),
        (["-x", "127.0.0.1", "-X", "4"], ProxyType.SOCKS4, 1080),
        (["-x", "127.0.0.1", "-X", "connect"], ProxyType.HTTP, 3128),
    ],
)
def test_nc_proxy_flags(
    recorded: list[NetcatOptions], flags: list[str], kind: ProxyType, port: int
) -> None:
    assert run_cli([*flags, "example.org", "80"]) == 0
    proxy = recorded[0].proxy
    assert proxy is not None
    assert (proxy.kind, proxy.endpoint.host, proxy.endpoint.port) == (
        kind,
        "127.0.0.1",
        port,
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["-w", "1", "--connect-timeout", "1", "h", "1"], "-w and --connect-timeout"),
        (["-X", "5", "h", "1"], "needs -x"),
        (["-x", "p", "--proxy", "p", "h", "1"], "not both"),
        (["-x", "p", "-X", "6", "h", "1"], "expected 4, 5 or connect"),
        (["-l", "-s", "127.0.0.1", "::1", "-p", "9"], "takes the port alone"),
        (["-u", "-w", "1", "h", "1"], "-w with -u"),  # fail closed: not honoured there
        (["-l", "-e", "cat", "-w", "1", "9"], "-w with -e/-c"),
        (["-I", "4096", "h", "1"], "--rcvbuf"),
        (["-O", "4096", "h", "1"], "--sndbuf"),
        (["-T", "8", "h", "1"], "--tos"),
        (["-M", "8", "h", "1"], "--ttl"),
    ],
)
def test_usage_errors_name_the_equivalent(
    recorded: list[NetcatOptions],
    argv: list[str],
    named: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(argv) == 2
    assert not recorded
    err = capsys.readouterr().err
    assert named in err
    one_error_line(err.encode())


@pytest.mark.parametrize(
    ("word", "suggested"),
    [("127.0.0.1:8080", "ncat-trio 127.0.0.1 8080"), ("[::1]:8080", "ncat-trio ::1 8080")],
)
def test_host_colon_port_suggests_two_words(
    recorded: list[NetcatOptions], word: str, suggested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli([word]) == 2
    assert not recorded
    assert suggested in one_error_line(capsys.readouterr().err.encode())

"""Command-line parsing: nc spellings, options objects, one-line usage errors.

These check the parsed, frozen options (the mode function is replaced by a recorder),
not the world: end-to-end behaviour is in tests/e2e/test_netcat.py.
"""

from __future__ import annotations

import socket

import pytest

from ncat_trio.cli import rewrite_shorthand, run_cli
from ncat_trio.modes import netcat
from ncat_trio.modes.netcat import NetcatOptions


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, NetcatOptions]]:
    calls: list[tuple[str, NetcatOptions]] = []

    async def fake_connect(opts: NetcatOptions) -> int:
        calls.append(("connect", opts))
        return 0

    async def fake_listen(opts: NetcatOptions) -> int:
        calls.append(("listen", opts))
        return 0

    monkeypatch.setattr(netcat, "connect_main", fake_connect)
    monkeypatch.setattr(netcat, "listen_main", fake_listen)
    return calls


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["example.com", "80"], ["connect", "example.com", "80"]),
        (["-l", "9000"], ["listen", "9000"]),
        (["-l", "-p", "9000"], ["listen", "-p", "9000"]),
        (["-lvk", "-p", "9000"], ["listen", "-vk", "-p", "9000"]),
        (["-vl", "127.0.0.1", "0"], ["listen", "-v", "127.0.0.1", "0"]),
        (["--listen", "0"], ["listen", "0"]),
        (["-v", "host", "1", "--", "-l"], ["connect", "-v", "host", "1", "--", "-l"]),
        (["connect", "h", "1"], ["connect", "h", "1"]),
        (["listen", "-l"], ["listen", "-l"]),
        (["--version"], ["--version"]),
        ([], []),
    ],
)
def test_nc_shorthand_becomes_subcommands(argv: list[str], expected: list[str]) -> None:
    assert rewrite_shorthand(argv) == expected


def test_connect_options(recorded: list[tuple[str, NetcatOptions]]) -> None:
    code = run_cli(["-v", "-q", "1.5", "-w", "2", "-i", "30", "-n", "-4", "10.0.0.1", "80"])
    assert code == 0
    mode, opts = recorded[0]
    assert mode == "connect"
    assert opts.endpoint.host == "10.0.0.1"
    assert opts.endpoint.port == 80
    assert opts.endpoint.numeric
    assert opts.endpoint.family == socket.AF_INET
    assert opts.connect_timeout == 2
    assert opts.session.linger == 1.5
    assert opts.session.idle_timeout == 30
    assert opts.session.shutdown
    assert opts.verbose


def test_source_address_and_port(recorded: list[tuple[str, NetcatOptions]]) -> None:
    assert run_cli(["connect", "-s", "127.0.0.2", "-p", "4000", "127.0.0.1", "9"]) == 0
    source = recorded[0][1].source
    assert source is not None
    assert (source.host, source.port) == ("127.0.0.2", 4000)


def test_listen_spellings(recorded: list[tuple[str, NetcatOptions]]) -> None:
    assert run_cli(["-lk", "-p", "0"]) == 0
    assert run_cli(["-l", "::1", "8080", "--no-shutdown", "-d"]) == 0
    assert run_cli(["listen", "0"]) == 0
    (_, a), (_, b), (_, c) = recorded
    assert (a.endpoint.host, a.endpoint.port, a.keep_open) == (None, 0, True)
    assert (b.endpoint.host, b.endpoint.port) == ("::1", 8080)
    assert not b.session.shutdown
    assert not b.session.send
    assert c.endpoint.port == 0
    assert not c.keep_open


def test_send_and_recv_only(recorded: list[tuple[str, NetcatOptions]]) -> None:
    assert run_cli(["h", "1", "--send-only"]) == 0
    assert run_cli(["h", "1", "--recv-only"]) == 0
    send_only, recv_only = recorded[0][1].session, recorded[1][1].session
    assert (send_only.send, send_only.receive) == (True, False)
    assert (recv_only.send, recv_only.receive) == (False, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["localhost", "70000"], "invalid port '70000': must be 1-65535"),
        (["localhost", "0x50"], "invalid port '0x50': not a decimal number"),
        (["localhost", "0"], "invalid port '0': must be 1-65535"),
        (["localhost", "-1"], "invalid value '-1': negative numbers are not allowed"),
        (["-l", "65536"], "invalid port '65536': must be 0-65535"),
        (["h", "1", "-q", "soon"], "invalid linger (-q) 'soon'"),
        (["h", "1", "-4", "-6"], "-4 and -6: choose one"),
        (["h", "1", "--send-only", "-d"], "--send-only: cannot be combined"),
        (["-l"], "listen: expected [HOST] PORT"),
        (["-l", "a", "b", "c"], "listen: expected [HOST] PORT"),
        (["connect", "onlyhost"], "Missing argument"),
        (["h", "1", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], recorded: list[object]
) -> None:
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("ncat-trio: ")
    assert message in err
    assert not recorded


def test_bare_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([]) == 2
    captured = capsys.readouterr()
    assert "Usage:" in captured.err
    assert captured.out == ""


def test_version_names_python_and_trio(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ncat-trio ")
    assert "Python 3." in out
    assert "Trio " in out

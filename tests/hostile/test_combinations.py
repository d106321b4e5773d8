"""Hostile class *combinations*: a flag that a path cannot honour is exit 2 and one line
naming it, never silently ignored (``connect -u --ssl`` used to send plaintext, exit 0).

* :func:`test_the_whole_flag_table` walks ``cli/compat.py``'s table: every flag of
  ``connect`` and ``listen`` on every path (TCP, UDP, Unix stream and datagram, TLS,
  proxy, exec, ``-k`` and mixes).  A pair the table refuses must stop at parsing with
  exit 2 and one ``ncat-trio: FLAG with PATH: …`` line; every other pair must reach
  the mode.  It runs the real argv parser in-process (``run_cli``, mode replaced by a
  recorder), since some 900 subprocesses would not be kind to a shared machine.
* The refusals that mattered are proven with the real CLI in subprocesses and real
  sockets: nothing reaches the target, no listener appears, no socket file is made.
* The other commands declare only what they honour: a connect/listen flag they lack is
  click's "No such option" (exit 2), never accepted; and each of their own flags that
  only one of their modes honours (``compat.COMMAND_RULES``) is walked both ways.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from ncat_trio.cli import app, run_cli
from ncat_trio.cli.compat import ARGUMENTS, COMMAND_RULES, TABLE, paths_of
from ncat_trio.modes import netcat
from ncat_trio.modes.netcat import NetcatOptions

from ..support import NCAT, one_error_line

#: A sample invocation of each flag (files are filled in per test).
SAMPLES: dict[str, list[str]] = {
    "udp": ["-u"], "unix": ["-U", "SOCK"], "exec_": ["-e", "cat"], "sh_exec": ["-c", "cat"],
    "keep_open": ["-k"], "max_conns": ["--max-conns", "5"], "sequential": ["--sequential"],
    "source": ["-s", "127.0.0.1"], "source_port": ["-p", "4000"], "port_option": ["-p", "0"],
    "ipv4": ["-4"], "ipv6": ["-6"], "numeric": ["-n"], "connect_timeout": ["-w", "1"],
    "linger": ["-q", "1"], "idle_timeout": ["-i", "1"], "shutdown": ["-N"],
    "no_shutdown": ["--no-shutdown"], "no_stdin": ["-d"], "send_only": ["--send-only"],
    "recv_only": ["--recv-only"], "no_zerocopy": ["--no-zerocopy"], "rate": ["--rate", "1M"],
    "crlf": ["-C"], "progress": ["-P"], "progress_auto": ["--progress=auto"],
    "size": ["-P", "--size", "10"], "stats": ["--stats"], "json": ["--json"],
    "json_file": ["--json-file", "JSONFILE"], "verbose": ["-v"], "output": ["-o", "DUMP"],
    "append_output": ["-o", "DUMP", "--append-output"], "keepalive": ["--keepalive"],
    "nodelay": ["--nodelay"], "sndbuf": ["--sndbuf", "64K"], "rcvbuf": ["--rcvbuf", "64K"],
    "tos": ["--tos", "16"], "ttl": ["--ttl", "9"], "reuseport": ["--reuseport"],
    "broadcast": ["--broadcast"], "ssl": ["--ssl"], "ssl_ca": ["--ssl-ca", "CA"],
    "ssl_system_ca": ["--ssl-system-ca"],
    "ssl_no_verify": ["--ssl-no-verify"], "ssl_cert": ["--ssl-cert", "CERT"],
    "ssl_key": ["--ssl-cert", "CERT", "--ssl-key", "KEY"],
    "ssl_servername": ["--ssl-servername", "example"], "ssl_alpn": ["--ssl-alpn", "h2"],
    "ssl_allow_truncation": ["--ssl-allow-truncation"], "proxy": ["--proxy", "127.0.0.1:1080"],
    "proxy_type": ["--proxy-type", "socks5"], "proxy_auth": ["--proxy-auth", "u:p"],
    "allow": ["--allow", "10.0.0.0/8"], "deny": ["--deny", "10.0.0.0/8"],
    "allowfile": ["--allowfile", "RULES"], "denyfile": ["--denyfile", "RULES"],
}  # fmt: skip

#: Samples that carry another flag with them (``--ssl-key`` needs ``--ssl-cert``).
COMPANIONS = {"append_output": "output", "ssl_key": "ssl_cert", "size": "progress"}

#: The paths walked, as the flags that select them.
PATHS: dict[str, tuple[str, ...]] = {
    "tcp": (),
    "udp": ("udp",),
    "unix": ("unix",),
    "unix-datagram": ("unix", "udp"),
    "tls": ("ssl",),
    "proxy": ("proxy",),
    "exec": ("exec_",),
    "keep-open": ("keep_open",),
    "udp-exec": ("udp", "exec_"),
    "udp-keep-open": ("udp", "keep_open"),
    "tls-exec-keep-open": ("ssl", "exec_", "keep_open"),
}

#: Pairs that are value errors, not path questions (checked by the parsers).
EXCLUSIVE = [
    {"exec_", "sh_exec"}, {"send_only", "no_stdin"}, {"send_only", "recv_only"},
    {"ipv4", "ipv6"}, {"sequential", "max_conns"}, {"ssl_no_verify", "ssl_ca"},
    {"ssl_no_verify", "ssl_system_ca"},
]  # fmt: skip


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    async def fake_connect(opts: NetcatOptions) -> int:
        calls.append("connect")
        return 0

    async def fake_listen(opts: NetcatOptions) -> int:
        calls.append("listen")
        return 0

    monkeypatch.setattr(netcat, "connect_main", fake_connect)
    monkeypatch.setattr(netcat, "listen_main", fake_listen)
    return calls


def command_params(name: str) -> dict[str, list[str]]:
    """The declared parameters of a command (``["ttcp", "receive"]`` as ``ttcp receive``):
    name → its option spellings."""
    command = typer.main.get_command(app)
    for word in name.split():
        command = command.commands[word]  # type: ignore[attr-defined]
    return {str(p.name): list(getattr(p, "opts", [])) for p in command.params}


def expected_refusals(given: frozenset[str]) -> list[str]:
    """The flag spellings the table says this invocation cannot honour."""
    paths = paths_of(given)
    spelled = []
    for name in sorted(given):
        flag = TABLE[name]
        for where in flag.refused:
            needed = where if isinstance(where, tuple) else (where,)
            if all(path in paths for path in needed):
                spelled.append(flag.spelling)
        if flag.needs is not None and flag.needs not in paths:
            spelled.append(flag.spelling)
    return spelled


def test_every_flag_of_connect_and_listen_is_in_the_table() -> None:
    """A new flag cannot be added without deciding where it is honoured."""
    for command in ("connect", "listen"):
        for name, spellings in command_params(command).items():
            if name in ARGUMENTS:
                continue
            assert name in TABLE, f"{command} {spellings}: not in cli/compat.py's TABLE"
            spelling = TABLE[name].spelling.replace("--progress=auto", "--progress-auto")
            assert spelling in spellings, (name, spelling, spellings)
            assert name in SAMPLES


def test_the_whole_flag_table(
    recorded: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = {
        "SOCK": str(tmp_path / "sock"),
        "JSONFILE": str(tmp_path / "summary.json"),
        "DUMP": str(tmp_path / "dump"),
        "CA": str(tmp_path / "ca.pem"),
        "CERT": str(tmp_path / "cert.pem"),
        "KEY": str(tmp_path / "key.pem"),
        "RULES": str(tmp_path / "rules"),
    }
    (tmp_path / "rules").write_text("10.0.0.0/8\n")
    walked = refused = 0
    failures: list[str] = []
    for command in ("connect", "listen"):
        params = command_params(command)
        for flag in sorted(name for name in params if name not in ARGUMENTS):
            for path, selectors in PATHS.items():
                if not all(s in params for s in selectors):
                    continue  # e.g. --proxy on listen, -k on connect: click's own refusal
                given = frozenset({flag, *selectors, *COMPANIONS.get(flag, "").split()})
                if any(pair <= given for pair in EXCLUSIVE):
                    continue
                argv = [command]
                for name in sorted(given):
                    if name not in COMPANIONS.values() or not given & set(COMPANIONS):
                        argv += [files.get(word, word) for word in SAMPLES[name]]
                argv += positional(command, given)
                expected = expected_refusals(given)
                recorded.clear()
                code = run_cli(argv)
                err = capsys.readouterr().err
                walked += 1
                if expected:
                    refused += 1
                    lines = err.splitlines()
                    named = len(lines) == 1 and any(
                        lines[0].startswith((f"ncat-trio: {spelling} ", f"ncat-trio: {spelling}:"))
                        for spelling in expected
                    )
                    if code != 2 or not named or recorded:
                        failures.append(f"{argv}: want exit 2 naming {expected}; {code} {err!r}")
                elif code != 0 or recorded != [command]:
                    failures.append(f"{argv} ({path}): want it to run; got {code} {err!r}")
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} of {walked})"
    assert walked > 700
    assert refused > 150  # the table does refuse things


def positional(command: str, given: frozenset[str]) -> list[str]:
    if "unix" in given:
        return []
    if command == "connect":
        return ["127.0.0.1", "9"]
    return [] if "port_option" in given else ["0"]


# --- the refusals that mattered, through the real CLI ----------------------------------


def run(args: list[str], data: bytes = b"secret\n") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*NCAT, *args], input=data, capture_output=True, timeout=30, check=False)


@pytest.fixture
def udp_target() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        target.setblocking(False)
        yield target


def nothing_arrived(target: socket.socket) -> bool:
    try:
        target.recv(65536)
    except BlockingIOError:
        return True
    return False


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--ssl"], "--ssl with -u"),
        (["--ssl-no-verify"], "--ssl-no-verify with -u"),
        (["--ssl-alpn", "h2"], "--ssl-alpn with -u"),
        (["-o", "DUMP"], "-o with -u"),
        (["--rate", "1K"], "--rate with -u"),
        (["-C"], "-C with -u"),
        (["--stats"], "--stats with -u"),
        (["--nodelay"], "--nodelay with -u"),
        (["-w", "1"], "-w with -u"),
    ],
)
def test_connect_udp_refuses_what_it_cannot_honour_and_sends_nothing(
    flags: list[str], named: str, udp_target: socket.socket, tmp_path: Path
) -> None:
    port = str(udp_target.getsockname()[1])
    flags = [str(tmp_path / "dump") if f == "DUMP" else f for f in flags]
    done = run(["connect", "-u", *flags, "127.0.0.1", port])
    line = one_error_line(done.stderr)
    assert done.returncode == 2, line
    assert line.startswith(f"ncat-trio: {named}: not supported: "), line
    assert nothing_arrived(udp_target)  # not one plaintext datagram went out


def test_connect_udp_through_a_proxy_is_refused_and_touches_nobody(
    udp_target: socket.socket,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as proxy:
        proxy.setblocking(False)
        done = run(
            ["connect", "-u", "--proxy", f"127.0.0.1:{proxy.getsockname()[1]}",
             "127.0.0.1", str(udp_target.getsockname()[1])]
        )  # fmt: skip
        line = one_error_line(done.stderr)
        assert done.returncode == 2, line
        assert line.startswith("ncat-trio: --proxy with -u: not supported: "), line
        with pytest.raises(BlockingIOError):
            proxy.accept()  # the proxy was never contacted
    assert nothing_arrived(udp_target)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["listen", "-u", "--ssl", "127.0.0.1", "0"], "--ssl with -u"),
        (["listen", "-u", "--ssl-cert", "CERT", "127.0.0.1", "0"], "--ssl-cert with -u"),
        (["listen", "-u", "-o", "DUMP", "127.0.0.1", "0"], "-o with -u"),
        (["listen", "-u", "-k", "--max-conns", "3", "127.0.0.1", "0"], "--max-conns with -u"),
        (["listen", "-U", "SOCK", "--allow", "127.0.0.1"], "--allow with -U"),
        (["listen", "-U", "SOCK", "--deny", "127.0.0.1"], "--deny with -U"),
        (["listen", "-U", "SOCK", "--allowfile", "/dev/zero"], "--allowfile with -U"),
        (["listen", "-u", "-U", "SOCK", "--deny", "127.0.0.1"], "--deny with -U"),
        (["connect", "-U", "SOCK", "--proxy", "127.0.0.1:1080"], "--proxy with -U"),
        (["connect", "-U", "SOCK", "-s", "127.0.0.1"], "-s with -U"),
        (["listen", "-e", "cat", "--send-only", "127.0.0.1", "0"], "--send-only with -e/-c"),
        (["listen", "-c", "cat", "-q", "1", "127.0.0.1", "0"], "-q with -e/-c"),
        (["connect", "-e", "cat", "--json", "127.0.0.1", "9"], "--json with -e/-c"),
        (["listen", "-u", "-k", "-e", "cat", "0"], "-k with -u -e/-c"),
        (["listen", "--sequential", "0"], "--sequential"),
        (["connect", "--proxy-auth", "u:p", "127.0.0.1", "9"], "--proxy-auth"),
    ],
)
def test_listeners_and_clients_refuse_at_start(args: list[str], named: str, tmp_path: Path) -> None:
    sock = tmp_path / "sock"
    files = {"SOCK": str(sock), "DUMP": str(tmp_path / "dump"), "CERT": str(tmp_path / "c")}
    done = run([files.get(a, a) for a in args])
    line = one_error_line(done.stderr)
    assert done.returncode == 2, line
    assert line.startswith(f"ncat-trio: {named}: "), line
    assert "listening" not in line
    assert not sock.exists()  # no Unix socket was bound
    assert not (tmp_path / "dump").exists()  # nor a dump file started


# --- the other commands: only their own flags --------------------------------------------

OTHER_COMMANDS = [
    "relay", "scan", "send", "receive", "ttcp receive", "ttcp transmit", "clock serve",
    "clock probe",
]  # fmt: skip


def test_other_commands_refuse_connect_and_listen_flags_they_lack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spellings = sorted({flag.spelling for flag in TABLE.values()} - {"--progress=auto"})
    checked = 0
    for command in OTHER_COMMANDS:
        own = {s for opts in command_params(command).values() for s in opts}
        for spelling in spellings:
            if spelling in own:
                continue  # that command's own flag (-p is a port, -c a count ...)
            code = run_cli([*command.split(), spelling])
            err = capsys.readouterr().err
            assert code == 2, (command, spelling, err)
            # run_cli reads an unknown -4/-6 as a negative number: still exit 2, named
            unknown = f"invalid value {spelling!r}" if spelling[1:].isdigit() else "No such option"
            assert unknown in err, (command, spelling, err)
            assert spelling in err, (command, spelling, err)
            assert err.count("\n") == 1, err
            checked += 1
    assert checked > 300


#: Each rule of the other commands: an argv that breaks it, and one that honours it.
RULE_CASES: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("relay", "reject_over_limit"): (
        ["relay", "0", "127.0.0.1:9", "--reject-over-limit"],
        ["relay", "0", "127.0.0.1:9", "--reject-over-limit", "--max-conns", "2"],
    ),
    ("relay", "toxicity"): (
        ["relay", "0", "127.0.0.1:9", "--toxicity", "0.5"],
        ["relay", "0", "127.0.0.1:9", "--toxicity", "0.5", "--latency", "10ms"],
    ),
    ("relay", "seed"): (
        ["relay", "0", "127.0.0.1:9", "--seed", "7"],
        ["relay", "0", "127.0.0.1:9", "--seed", "7", "--stall", "1"],
    ),
    ("clock serve", "stratum"): (
        ["clock", "serve", "-p", "0", "--stratum", "3"],
        ["clock", "serve", "-p", "0", "--proto", "ntp", "--stratum", "3"],
    ),
    ("send", "connect_timeout"): (
        ["send", "--listen", "-w", "1", "0"],
        ["send", "-w", "1", "127.0.0.1", "9"],
    ),
    ("receive", "connect_timeout"): (
        ["receive", "-w", "1", "0"],
        ["receive", "--connect", "-w", "1", "127.0.0.1", "9"],
    ),
    ("receive", "json"): (["receive", "-o", "-", "--json", "0"], ["receive", "--json", "0"]),
    **{
        (command, name): ([command, *broken, *where], [command, *honoured, *where])
        for command, where in (("connect", ["127.0.0.1", "9"]), ("listen", ["0"]))
        for name, broken, honoured in (
            ("size", ["--size", "1K"], ["-P", "--size", "1K"]),
            ("linger", ["-d", "-q", "1"], ["-q", "1"]),
            ("crlf", ["--recv-only", "-C"], ["-C"]),
        )
    },
    ("receive", "resume"): (["receive", "-o", "-", "--resume", "0"], ["receive", "--resume", "0"]),
}


def test_the_other_commands_rules(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ncat_trio import runner

    ran: list[object] = []

    def fake_run(main: object) -> int:
        ran.append(main)
        return 0

    monkeypatch.setattr(runner, "run", fake_run)
    assert set(RULE_CASES) == {(rule.command, rule.name) for rule in COMMAND_RULES}
    for rule in COMMAND_RULES:
        broken, honoured = RULE_CASES[rule.command, rule.name]
        ran.clear()
        assert run_cli(broken) == 2, broken
        err = capsys.readouterr().err
        assert err == f"ncat-trio: {rule.spelling}: {rule.why}\n", (broken, err)
        assert not ran
        assert run_cli(honoured) == 0, (honoured, capsys.readouterr().err)
        assert len(ran) == 1, honoured

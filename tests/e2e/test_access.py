"""``--allow``/``--deny`` (and the files) for listeners: deny wins, IPv4-mapped IPv6 can't
slip past an IPv4 rule, malformed rules are exit 2, denied clients are closed and logged."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from ncat_trio.errors import UsageError
from ncat_trio.transport.access import AccessPolicy, parse_network, read_rules

from ..support import (
    NCAT,
    ipv6_loopback_available,
    one_error_line,
    read_line,
    spawn_listener,
)

needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1)")


def policy(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> AccessPolicy:
    return AccessPolicy.from_rules(allow, deny)


def test_no_rules_admit_everyone() -> None:
    assert policy().permits("203.0.113.9")
    assert policy().permits("2001:db8::1")


def test_allow_admits_only_matches_in_either_family() -> None:
    rules = policy(allow=("10.0.0.0/8", "2001:db8::/32"))
    assert rules.permits("10.9.8.7")
    assert rules.permits("2001:db8:1::5")
    assert not rules.permits("11.0.0.1")
    assert not rules.permits("2001:db9::1")


def test_deny_wins_over_allow() -> None:
    rules = policy(allow=("10.0.0.0/8",), deny=("10.0.0.5",))
    assert rules.permits("10.0.0.4")
    assert not rules.permits("10.0.0.5")


def test_ipv4_mapped_peers_meet_ipv4_rules() -> None:
    """What a dual-stack listener reports for an IPv4 client must not bypass a v4 rule."""
    assert not policy(deny=("10.0.0.0/8",)).permits("::ffff:10.0.0.1")
    assert policy(allow=("10.0.0.0/8",)).permits("::ffff:10.0.0.1")
    assert not policy(allow=("10.0.0.0/8",)).permits("::ffff:11.0.0.1")


def test_ipv4_mapped_rules_are_ipv4_rules() -> None:
    assert parse_network("::ffff:10.0.0.0/104") == parse_network("10.0.0.0/8")
    assert not policy(deny=("::ffff:127.0.0.1",)).permits("127.0.0.1")


def test_scoped_ipv6_peers_match_without_their_scope() -> None:
    assert not policy(deny=("fe80::/10",)).permits("fe80::1%eth0")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0", "nonsense", "::1/129", ""])
def test_malformed_rules_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid address rule"):
        parse_network(bad)


def test_rule_files_have_comments_and_name_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("# office\n10.0.0.0/8  # lan\n\n2001:db8::/32\n")
    assert [str(n) for n in read_rules(str(good))] == ["10.0.0.0/8", "2001:db8::/32"]
    bad = tmp_path / "bad"
    bad.write_text("10.0.0.0/8\n300.1.1.1\n")
    with pytest.raises(UsageError, match="line 2"):
        read_rules(str(bad))
    with pytest.raises(UsageError, match="cannot read"):
        read_rules(str(tmp_path / "missing"))


# --- end to end -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--allow", "10.0.0.0/33"],
        ["--deny", "not-an-address"],
        ["--allowfile", "/nonexistent/rules"],
    ],
    ids=["allow", "deny", "allowfile"],
)
def test_listener_with_malformed_rule_exits_2(args: list[str]) -> None:
    done = subprocess.run(
        [*NCAT, "listen", *args, "127.0.0.1", "0"], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert "listening" not in done.stderr.decode()
    one_error_line(done.stderr)


def test_denyfile_error_names_the_line(tmp_path: Path) -> None:
    rules = tmp_path / "deny"
    rules.write_text("127.0.0.1\n10.0.0.0/8/8\n")
    done = subprocess.run(
        [*NCAT, "listen", "--denyfile", str(rules), "0"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "line 2" in one_error_line(done.stderr)


def denied_at_once(port: int, host: str = "127.0.0.1") -> bool:
    """Connect, send a line, and see the connection closed without any data."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as client:
        client.settimeout(30)
        client.connect((host, port))
        try:
            client.sendall(b"let me in\n")
            return client.recv(100) == b""
        except ConnectionResetError:
            return True


@needs_ipv6
def test_dual_stack_listener_denies_the_ipv4_client_and_serves_the_ipv6_one() -> None:
    """``--deny 127.0.0.0/8`` on ``::`` (IPv4 peers appear as ::ffff:127.0.0.1)."""
    listener, port = spawn_listener(
        ["listen", "--deny", "127.0.0.0/8", "0"], stdin=subprocess.DEVNULL
    )
    assert listener.stderr is not None
    assert denied_at_once(port)
    logged = read_line(listener.stderr).decode()
    assert "denied connection from 127.0.0.1:" in logged
    with socket.create_connection(("::1", port), timeout=30) as client:
        client.sendall(b"from ipv6\n")
        client.shutdown(socket.SHUT_WR)
        assert client.recv(100) == b""
    out, _err = listener.communicate(timeout=30)
    assert listener.returncode == 0
    assert out == b"from ipv6\n"  # the denied client's line never reached stdout


def test_allow_list_closes_others_and_keeps_listening() -> None:
    listener, port = spawn_listener(
        ["listen", "-k", "--allow", "10.0.0.0/8", "127.0.0.1", "0"], stdin=subprocess.DEVNULL
    )
    assert listener.stderr is not None
    for _ in range(2):  # still listening after the first refusal
        assert denied_at_once(port)
        assert "denied connection from 127.0.0.1:" in read_line(listener.stderr).decode()
    listener.terminate()
    out, _ = listener.communicate(timeout=30)
    assert out == b""

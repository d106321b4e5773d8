"""Abuse: allow/deny cannot be bypassed, exec runs no shell unless asked, TLS verifies,
and secrets stay out of the logs.

* ``--allow``/``--deny`` (listen's ``transport.access`` and the relay's own policy): an
  IPv4 peer must get the same answer however its address is spelled — dotted, as
  IPv4-mapped IPv6 (``::ffff:10.0.0.1``, what a dual-stack listener reports), fully
  expanded, hex-mapped, with a zone index — and rules written in IPv4-mapped form bind
  the IPv4 addresses they name.  Rules in ambiguous spellings (``10.1``, ``010.0.0.1``)
  are refused, not read some other way.  End to end: a dual-stack listener and relay
  with ``--deny 127.0.0.1`` refuse a client that connects over IPv4 (seen as
  ``::ffff:127.0.0.1``).
* ``-e CMD`` is executed without a shell (metacharacters are plain arguments); only
  ``-c`` runs ``/bin/sh -c``.
* ``--ssl`` verifies the server's certificate unless ``--ssl-no-verify`` is given.
* ``--proxy-auth`` credentials never appear in ``-v`` output.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncat_trio.errors import UsageError
from ncat_trio.modes import relay as relay_mode
from ncat_trio.transport import access
from tests.support import (
    NCAT,
    closed_without_service,
    ipv6_loopback_available,
    spawn,
    wait_for_port,
)

Policy = Callable[[tuple[str, ...], tuple[str, ...]], Callable[[str], bool]]


def listen_policy(allow: tuple[str, ...], deny: tuple[str, ...]) -> Callable[[str], bool]:
    return access.AccessPolicy.from_rules(allow, deny).permits


def relay_policy(allow: tuple[str, ...], deny: tuple[str, ...]) -> Callable[[str], bool]:
    return relay_mode.AccessPolicy(
        allow=tuple(relay_mode.parse_network(a) for a in allow),
        deny=tuple(relay_mode.parse_network(d) for d in deny),
    ).permits


POLICIES = pytest.mark.parametrize("policy", [listen_policy, relay_policy], ids=["listen", "relay"])


def spellings(v4: str) -> list[str]:
    """Ways a peer's IPv4 address can reach ``permits``."""
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    return [
        v4,
        f"::ffff:{v4}",
        f"::FFFF:{v4}",
        mapped.exploded,  # 0000:0000:0000:0000:0000:ffff:0a00:0001
        mapped.compressed,  # ::ffff:a00:1
        f"0:0:0:0:0:ffff:{v4}",
        f"::ffff:{v4}%eth0",  # a zone index is no way around a rule
    ]


@POLICIES
@pytest.mark.parametrize("peer", spellings("10.0.0.1"))
def test_deny_holds_for_every_spelling_of_an_ipv4_peer(policy: Policy, peer: str) -> None:
    assert not policy((), ("10.0.0.0/8",))(peer)
    assert not policy((), ("10.0.0.1",))(peer)
    assert not policy((), ("::ffff:10.0.0.0/104",))(peer)  # the rule in mapped form
    assert policy((), ("10.0.0.2",))(peer)


@POLICIES
@pytest.mark.parametrize("peer", spellings("192.168.1.5"))
def test_allow_admits_only_what_it_names_in_any_spelling(policy: Policy, peer: str) -> None:
    assert policy(("192.168.1.0/24",), ())(peer)
    assert policy(("::ffff:192.168.1.5/128",), ())(peer)
    assert not policy(("10.0.0.0/8",), ())(peer)
    assert not policy(("192.168.1.0/24",), ("192.168.1.5",))(peer)  # deny wins


@POLICIES
def test_ipv6_rules_and_scoped_peers(policy: Policy) -> None:
    assert not policy((), ("fe80::/10",))("fe80::1%eth0")
    assert not policy(("::1",), ())("fe80::1%lo")
    assert policy(("::1",), ())("::1")
    # An IPv4-compatible (not mapped) address is IPv6: an IPv4 allow rule does not let it in.
    assert not policy(("127.0.0.1",), ())("::127.0.0.1")


@POLICIES
@pytest.mark.parametrize("peer", ["", "localhost", "not an address", "10.0.0.1:80", "::ffff:"])
def test_a_peer_that_is_not_an_address_is_refused_when_rules_exist(
    policy: Policy, peer: str
) -> None:
    assert not policy(("0.0.0.0/0", "::/0"), ())(peer)
    assert not policy((), ("192.0.2.1",))(peer)


@pytest.mark.parametrize(
    "rule", ["10.1", "010.0.0.1", "10.0.0.0/33", "1.2.3.4.5", "::ffff:1.2.3", ""]
)
@pytest.mark.parametrize(
    "parse", [access.parse_network, relay_mode.parse_network], ids=["listen", "relay"]
)
def test_ambiguous_rule_spellings_are_refused(parse: Callable[[str], object], rule: str) -> None:
    with pytest.raises(UsageError):
        parse(rule)


@settings(max_examples=300, deadline=None)
@given(
    peer=st.ip_addresses(v=4),
    rule=st.ip_addresses(v=4),
    prefix=st.integers(0, 32),
    allow=st.booleans(),
)
def test_mapped_and_dotted_peers_always_get_the_same_answer(
    peer: ipaddress.IPv4Address, rule: ipaddress.IPv4Address, prefix: int, allow: bool
) -> None:
    network = f"{rule}/{prefix}"
    for make in (listen_policy, relay_policy):
        permits = make((network,), ()) if allow else make((), (network,))
        answers = {permits(spelling) for spelling in spellings(str(peer))}
        want = (peer in ipaddress.ip_network(network, strict=False)) == allow
        assert answers == {want}


# --- end to end -------------------------------------------------------------------------


@pytest.mark.skipif(
    not ipv6_loopback_available("::"), reason="no IPv6 here: no dual-stack listener"
)
def test_dual_stack_listener_refuses_a_denied_ipv4_client() -> None:
    proc = spawn([*NCAT, "listen", "-k", "--deny", "127.0.0.1", "0"])
    assert proc.stderr is not None
    port = wait_for_port(proc.stderr)
    assert closed_without_service(port)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert out == b""  # not one byte of the denied client reached stdout
    assert b"127.0.0.1" in err


@pytest.mark.skipif(
    not ipv6_loopback_available("::"), reason="no IPv6 here: no dual-stack listener"
)
def test_dual_stack_relay_refuses_a_denied_ipv4_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as target:
        target.settimeout(0.5)
        proc = spawn(
            [*NCAT, "relay", "--deny", "127.0.0.0/8", "0", f"127.0.0.1:{target.getsockname()[1]}"]
        )
        assert proc.stderr is not None
        port = wait_for_port(proc.stderr)
        assert closed_without_service(port)
        with pytest.raises(TimeoutError):
            target.accept()  # the relay never connected onwards for it
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert b"denied" in err


def test_exec_runs_no_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    proc = spawn(
        [*NCAT, "listen", "-e", f"echo safe; touch {marker}", "127.0.0.1", "0"], cwd=tmp_path
    )
    assert proc.stderr is not None
    port = wait_for_port(proc.stderr)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := conn.recv(100):
            got += chunk
    assert proc.wait(10) == 0
    assert got == f"safe; touch {marker}\n".encode()  # one echo, its arguments verbatim
    assert not marker.exists()


def test_sh_exec_is_the_only_way_to_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "made"
    proc = spawn([*NCAT, "listen", "-c", f"touch {marker}; echo done", "127.0.0.1", "0"])
    assert proc.stderr is not None
    port = wait_for_port(proc.stderr)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(100) == b"done\n"
    assert proc.wait(10) == 0
    assert marker.exists()


def test_tls_verifies_unless_told_not_to() -> None:
    server = spawn([*NCAT, "listen", "-k", "--ssl", "127.0.0.1", "0"])
    assert server.stderr is not None
    port = wait_for_port(server.stderr)
    strict = subprocess.run(
        [*NCAT, "connect", "--ssl", "127.0.0.1", str(port)],
        input=b"hi\n", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert strict.returncode != 0  # a self-signed certificate is refused by default
    assert b"Traceback" not in strict.stderr
    lax = subprocess.run(
        [*NCAT, "connect", "--ssl", "--ssl-no-verify", "-q", "0.5", "127.0.0.1", str(port)],
        input=b"hi\n", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert lax.returncode == 0, lax.stderr


def test_proxy_credentials_stay_out_of_the_log() -> None:
    with socket.create_server(("127.0.0.1", 0)) as proxy:
        proxy.settimeout(10)
        proc = spawn(
            [
                *NCAT,
                "connect",
                "-v",
                "--proxy",
                f"127.0.0.1:{proxy.getsockname()[1]}",
                "--proxy-auth",
                "alice:s3cr3t-pa55",
                "192.0.2.1",
                "80",
            ]
        )
        conn, _ = proxy.accept()
        with conn:
            conn.recv(4096)  # the CONNECT request (it does carry the credentials)
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode != 0
    assert b"s3cr3t-pa55" not in err
    assert b"alice:" not in err

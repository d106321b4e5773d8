"""Socket options: parsing, what ends up on the socket, and their effect on the wire.

``--ttl``/``--tos`` are read back by the receiver from the packet itself (IP_RECVTTL /
IP_RECVTOS); ``--reuseport`` is seen by a second listener sharing the port;
``--broadcast`` by a datagram to the loopback broadcast address 127.255.255.255.
"""

from __future__ import annotations

import socket
import subprocess

import pytest
import trio

from ncat_trio.errors import UsageError
from ncat_trio.transport import net
from ncat_trio.transport.sockopts import (
    Keepalive,
    SocketOptions,
    apply_socket_options,
    configure_with,
    parse_keepalive,
    parse_tos,
    parse_ttl,
)

from ..support import NCAT, finish, one_error_line, read_line, spawn

#: Python's socket module lacks IP_RECVTTL; 12 on Linux (<linux/in.h>).
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Keepalive()),
        ("60,10,5", Keepalive(60, 10, 5)),
        ("60,,5", Keepalive(60, None, 5)),
        ("30", Keepalive(30, None, None)),
    ],
)
def test_parse_keepalive(text: str, expected: Keepalive) -> None:
    assert parse_keepalive(text) == expected


@pytest.mark.parametrize("text", ["x", "0,1,1", "1,2,3,4", "1,2,128", "-1", "host.example"])
def test_parse_keepalive_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_keepalive(text)


def test_parse_tos_and_ttl() -> None:
    assert [parse_tos(t) for t in ("16", "0x10", "lowdelay", "AF41", "ef")] == [
        16,
        16,
        16,
        136,
        184,
    ]
    assert parse_ttl("64") == 64
    for bad in ("256", "-1", "fast"):
        with pytest.raises(UsageError):
            parse_tos(bad)
    for bad in ("0", "256", "x"):
        with pytest.raises(UsageError):
            parse_ttl(bad)


def test_defaults_configure_nothing() -> None:
    assert configure_with(SocketOptions()) is None


async def test_options_end_up_on_the_socket() -> None:
    options = SocketOptions(
        keepalive=Keepalive(61, 11, 5), sndbuf=65536, rcvbuf=131072, tos=0x10, ttl=9, reuseport=True
    )
    with trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        apply_socket_options(sock, options)
        get = sock.getsockopt
        assert get(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert get(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 61
        assert get(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 11
        assert get(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 5
        assert get(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 65536  # Linux doubles it
        assert get(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 131072
        assert get(socket.IPPROTO_IP, socket.IP_TOS) == 0x10
        assert get(socket.IPPROTO_IP, socket.IP_TTL) == 9
        assert get(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1


async def test_a_listener_and_a_connection_get_the_options() -> None:
    configure = configure_with(SocketOptions(keepalive=Keepalive(42), reuseport=True))
    listener = await net.open_tcp_listener(
        net.Endpoint("127.0.0.1", 0), backlog=1, configure=configure
    )
    async with listener:
        port = listener.socket.getsockname()[1]
        assert listener.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        conn = await net.connect_tcp(net.Endpoint("127.0.0.1", port), configure=configure)
        async with conn:
            assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 42


def test_reuseport_lets_two_listeners_share_a_port_and_is_never_implicit() -> None:
    first = spawn([*NCAT, "listen", "--reuseport", "127.0.0.1", "0"])
    assert first.stderr is not None
    port = read_line(first.stderr).rsplit(b":", 1)[1].strip().decode()
    second = spawn([*NCAT, "listen", "--reuseport", "127.0.0.1", port])
    assert second.stderr is not None
    assert read_line(second.stderr) == f"ncat-trio: listening on 127.0.0.1:{port}\n".encode()
    without = subprocess.run(
        [*NCAT, "listen", "127.0.0.1", port], capture_output=True, timeout=20, check=False
    )
    assert without.returncode == 1
    assert "in use" in one_error_line(without.stderr)
    for proc in (first, second):
        proc.terminate()
        assert finish(proc) == 143


@pytest.mark.parametrize(
    ("flag", "value", "recv_option", "level", "kind"),
    [
        ("--ttl", "7", IP_RECVTTL, socket.IPPROTO_IP, socket.IP_TTL),
        ("--tos", "lowdelay", socket.IP_RECVTOS, socket.IPPROTO_IP, socket.IP_TOS),
    ],
    ids=["ttl", "tos"],
)
def test_ttl_and_tos_are_on_the_packets(
    flag: str, value: str, recv_option: int, level: int, kind: int
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        receiver.setsockopt(socket.IPPROTO_IP, recv_option, 1)
        result = subprocess.run(
            [*NCAT, "connect", "-u", flag, value, "-q", "0", "127.0.0.1",
             str(receiver.getsockname()[1])],
            input=b"marked\n", capture_output=True, timeout=20, check=False,
        )  # fmt: skip
        data, ancillary, _flags, _address = receiver.recvmsg(1024, socket.CMSG_SPACE(4))
    assert (result.returncode, result.stderr) == (0, b"")
    assert data == b"marked\n"
    values = [cdata[0] for clevel, ctype, cdata in ancillary if (clevel, ctype) == (level, kind)]
    assert values == [7 if flag == "--ttl" else 0x10]


def test_broadcast_needs_the_flag() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.255.255.255", 0))  # the loopback broadcast address
        receiver.settimeout(10)
        port = str(receiver.getsockname()[1])
        refused = subprocess.run(
            [*NCAT, "connect", "-u", "-q", "0", "127.255.255.255", port],
            input=b"all\n", capture_output=True, timeout=20, check=False,
        )  # fmt: skip
        allowed = subprocess.run(
            [*NCAT, "connect", "-u", "--broadcast", "-q", "0", "127.255.255.255", port],
            input=b"all\n", capture_output=True, timeout=20, check=False,
        )  # fmt: skip
        assert receiver.recv(1024) == b"all\n"
    assert refused.returncode == 1
    assert "--broadcast" in one_error_line(refused.stderr)
    assert (allowed.returncode, allowed.stderr) == (0, b"")


@pytest.mark.parametrize(
    "args",
    [
        ["connect", "--sndbuf", "0", "127.0.0.1", "9"],
        ["connect", "--rcvbuf", "lots", "127.0.0.1", "9"],
        ["connect", "--tos", "300", "127.0.0.1", "9"],
        ["connect", "--ttl", "0", "127.0.0.1", "9"],
        ["connect", "--keepalive=1,2,3,4", "127.0.0.1", "9"],
        ["connect", "--keepalive", "127.0.0.1", "9", "--broadcast"],
    ],
)
def test_bad_socket_options_are_usage_errors(args: list[str]) -> None:
    result = subprocess.run([*NCAT, *args], capture_output=True, timeout=20, check=False)
    assert result.returncode == 2
    one_error_line(result.stderr)


def test_bare_keepalive_before_host_is_on_with_kernel_timers() -> None:
    """`--keepalive HOST PORT` must not swallow HOST as its value."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # refuses: we only care that parsing got this far
        result = subprocess.run(
            [*NCAT, "connect", "--keepalive", "127.0.0.1", str(closed.getsockname()[1])],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert "refused" in one_error_line(result.stderr)

"""Hostile class *access*: ``--allow/--deny/--allowfile/--denyfile`` hold on every
listening path, and a hostile rules file is a one-line exit 2.

Every test attacks through the real CLI with real sockets: a denied peer (127.0.0.1)
must get nothing written, nothing run, nothing relayed, nothing replied to, and a
permitted peer (127.0.0.2, also loopback on Linux, or ::1) must still be served.
Paths: UDP (lock-on, ``-k`` per datagram, ``-c``), TLS, TCP exec, relay (plain,
``--workers 2``, rules files), IPv4-mapped and IPv6 spellings through UDP.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ncat_trio.transport.access import MAX_RULES_FILE

from ..support import (
    NCAT,
    Drain,
    ServeOnce,
    closed_without_service,
    finish,
    ipv6_loopback_available,
    one_error_line,
    read_line,
    receive_all,
    spawn,
    spawn_listener,
    wait_for_port,
)

DENIED = "127.0.0.1"
PERMITTED = "127.0.0.2"  # loopback too (127/8): a second client address without a network

needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1)")


def udp_from(source: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(30)
    return sock


def tcp_from(source: str, port: int, host: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection((host, port), timeout=30, source_address=(source, 0))


def line_with(proc: subprocess.Popen[bytes], needle: bytes) -> bytes:
    """The next stderr line containing ``needle`` (the listener's own log: no sleeping)."""
    assert proc.stderr is not None
    while True:
        line = read_line(proc.stderr, timeout=30)
        if needle in line:
            return line


def nothing_waiting(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return True
    return False


# --- UDP ----------------------------------------------------------------------------


def test_udp_denied_source_never_starts_the_command(tmp_path: Path) -> None:
    """The issue's case: ``listen -u --deny 127.0.0.1 --deny ::/0 -c CMD``."""
    marker = tmp_path / "ran"
    listener, port = spawn_listener(
        ["listen", "-u", "--deny", DENIED, "--deny", "::/0",
         "-c", f"echo $NCAT_REMOTE_ADDR > {marker}; echo served", "127.0.0.1", "0"]
    )  # fmt: skip
    with udp_from(DENIED) as evil, udp_from(PERMITTED) as good:
        evil.sendto(b"id\n", ("127.0.0.1", port))
        assert b"denied datagram from 127.0.0.1:" in line_with(listener, b"denied")
        assert not marker.exists()  # no child was started for it
        good.sendto(b"hi\n", ("127.0.0.1", port))
        assert good.recv(100) == b"served\n"
        assert nothing_waiting(evil)
    assert finish(listener) == 0
    assert marker.read_text() == f"{PERMITTED}\n"  # the child ran once, for the permitted peer


def rules_pipe(text: str) -> tuple[list[str], int]:
    """``--allowfile <(echo RULES)``: a pipe read through /dev/fd (what a shell passes)."""
    read_end, write_end = os.pipe()
    os.write(write_end, text.encode())
    os.close(write_end)
    return ["--allowfile", f"/dev/fd/{read_end}"], read_end


@pytest.mark.parametrize("source", ["flag", "pipe"])
def test_udp_allow_only_hears_and_answers_only_the_permitted_peer(source: str) -> None:
    if source == "flag":
        rules, keep = ["--allow", PERMITTED], -1
    else:
        rules, keep = rules_pipe(f"# generated\n{PERMITTED}/32\n")
    try:
        listener, port = spawn_listener(
            ["listen", "-u", *rules, "127.0.0.1", "0"],
            stdin=subprocess.PIPE,
            pass_fds=() if keep < 0 else (keep,),
        )
    finally:
        if keep >= 0:
            os.close(keep)
    assert listener.stdin is not None
    with udp_from(DENIED) as evil, udp_from(PERMITTED) as good:
        evil.sendto(b"evil\n", ("127.0.0.1", port))
        line_with(listener, b"denied datagram from 127.0.0.1:")
        good.sendto(b"good\n", ("127.0.0.1", port))
        listener.stdin.write(b"reply\n")
        listener.stdin.flush()
        assert good.recv(100) == b"reply\n"
        assert nothing_waiting(evil)  # never locked onto, never answered
    listener.terminate()
    out, _err = listener.communicate(timeout=30)
    assert out == b"good\n"


def test_udp_keep_open_judges_every_datagram() -> None:
    listener, port = spawn_listener(
        ["listen", "-u", "-k", "--deny", DENIED, "127.0.0.1", "0"], stdin=subprocess.PIPE
    )
    assert listener.stdin is not None
    assert listener.stdout is not None
    out = Drain(listener.stdout)
    with udp_from(DENIED) as evil, udp_from(PERMITTED) as good:
        good.sendto(b"one\n", ("127.0.0.1", port))
        evil.sendto(b"evil-1\n", ("127.0.0.1", port))
        first = line_with(listener, b"denied datagram")
        evil.sendto(b"evil-2\n", ("127.0.0.1", port))  # same source: not logged again
        good.sendto(b"two\n", ("127.0.0.1", port))
        out.wait_count(len(b"one\ntwo\n"))
        listener.stdin.write(b"back\n")  # replies go to the last *admitted* sender
        listener.stdin.flush()
        assert good.recv(100) == b"back\n"
        assert nothing_waiting(evil)
    listener.terminate()
    finish(listener)
    assert listener.stderr is not None
    rest = listener.stderr.read()
    assert b"127.0.0.1:" in first
    assert rest.count(b"denied datagram") == 0  # logged once per source
    assert out.wait() == b"one\ntwo\n"


@needs_ipv6
@pytest.mark.parametrize(
    ("rule", "denied", "permitted"),
    [
        ("127.0.0.1", "127.0.0.1", "::1"),
        ("::ffff:127.0.0.1", "127.0.0.1", "::1"),
        ("::FFFF:7f00:1", "127.0.0.1", "::1"),
        ("0:0:0:0:0:ffff:127.0.0.1", "127.0.0.1", "::1"),
        ("::ffff:127.0.0.0/104", "127.0.0.1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1", "127.0.0.1"),
        ("::/0", "::1", "127.0.0.1"),  # all of IPv6, yet not the mapped IPv4 peers
    ],
)
def test_udp_dual_stack_rules_hold_in_every_spelling(
    rule: str, denied: str, permitted: str
) -> None:
    """On ``::`` an IPv4 sender is seen as ``::ffff:127.0.0.1``: no spelling slips past."""
    listener, port = spawn_listener(["listen", "-u", "-k", "--deny", rule, "0"])
    assert listener.stdout is not None
    out = Drain(listener.stdout)
    with udp_from(denied) as evil, udp_from(permitted) as good:
        evil.sendto(b"evil\n", (denied, port))
        line_with(listener, b"denied datagram")
        good.sendto(b"good\n", (permitted, port))
        out.wait_count(len(b"good\n"))
    listener.terminate()
    finish(listener)
    assert out.wait() == b"good\n"


# --- TCP: TLS and exec ----------------------------------------------------------------


def test_tls_listener_denies_before_the_handshake() -> None:
    listener, port = spawn_listener(
        ["listen", "-k", "--ssl", "--deny", DENIED, "127.0.0.1", "0"], stdin=subprocess.DEVNULL
    )
    assert listener.stdout is not None
    out = Drain(listener.stdout)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with tcp_from(DENIED, port) as raw, pytest.raises((ssl.SSLError, OSError)):
        context.wrap_socket(raw, server_hostname="localhost").sendall(b"evil\n")
    assert b"denied connection from 127.0.0.1:" in line_with(listener, b"denied")
    with context.wrap_socket(tcp_from(PERMITTED, port), server_hostname="localhost") as good:
        good.sendall(b"secret\n")
        out.wait_count(len(b"secret\n"))
    listener.terminate()
    finish(listener)
    assert out.wait() == b"secret\n"


def test_exec_listener_starts_no_child_for_a_denied_peer(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    listener, port = spawn_listener(
        ["listen", "-k", "--deny", DENIED,
         "-c", f"echo $NCAT_REMOTE_ADDR >> {marker}; echo served", "127.0.0.1", "0"]
    )  # fmt: skip
    assert closed_without_service(port)
    line_with(listener, b"denied connection from 127.0.0.1:")
    assert not marker.exists()
    with tcp_from(PERMITTED, port) as good:
        good.shutdown(socket.SHUT_WR)
        assert receive_all(good) == b"served\n"
    listener.terminate()
    finish(listener)
    assert marker.read_text() == f"{PERMITTED}\n"


# --- relay ----------------------------------------------------------------------------


def echo_once(conn: socket.socket) -> bytes:
    data = receive_all(conn)
    conn.sendall(b"echo:" + data)
    return data


@pytest.mark.parametrize(
    "rules",
    [
        ["--deny", DENIED],
        ["--workers", "2", "--deny", DENIED],
        ["--allowfile", "ALLOWFILE"],
        ["--denyfile", "DENYFILE"],
        ["--workers", "2", "--allowfile", "ALLOWFILE"],
    ],
    ids=["deny", "workers-deny", "allowfile", "denyfile", "workers-allowfile"],
)
def test_relay_never_dials_the_target_for_a_denied_client(rules: list[str], tmp_path: Path) -> None:
    (tmp_path / "allow").write_text(f"# the only client\n{PERMITTED}\n")
    (tmp_path / "deny").write_text(f"{DENIED}/32  # the attacker\n")
    files = {"ALLOWFILE": str(tmp_path / "allow"), "DENYFILE": str(tmp_path / "deny")}
    args = [files.get(arg, arg) for arg in rules]
    with ServeOnce(echo_once) as target:  # one connection: the permitted client's
        relay = spawn(
            [*NCAT, "relay", *args, "127.0.0.1:0", f"127.0.0.1:{target.port}"],
            stdin=subprocess.DEVNULL,
        )
        assert relay.stderr is not None
        port = wait_for_port(relay.stderr)
        assert closed_without_service(port)
        assert b"127.0.0.1" in line_with(relay, b"denied")
        with tcp_from(PERMITTED, port) as good:
            good.sendall(b"good\n")
            good.shutdown(socket.SHUT_WR)
            assert receive_all(good) == b"echo:good\n"
        assert target.result() == b"good\n"  # the denied client's bytes never got there
    relay.terminate()
    assert finish(relay) == 143


# --- hostile rules files -----------------------------------------------------------------


def make_fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


BAD_FILES: dict[str, tuple[Callable[[Path], str], str]] = {
    "dev-zero": (lambda d: "/dev/zero", "not a regular file or a pipe"),
    "directory": (lambda d: str(d), "it is a directory"),
    "oversize": (
        lambda d: _write(d / "big", b"10.0.0.1\n" * (MAX_RULES_FILE // 9 + 1)),
        f"larger than {MAX_RULES_FILE} bytes",
    ),
    "fifo-no-writer": (lambda d: make_fifo(d / "fifo"), "has no rules"),
    "empty": (lambda d: _write(d / "empty", b"# nothing\n\n"), "has no rules"),
    "not-utf8": (lambda d: _write(d / "latin1", b"10.0.0.1 # caf\xe9\n"), "not UTF-8"),
    "control-bytes": (lambda d: _write(d / "esc", b"\x1b[2J\x00evil\n"), "invalid address rule"),
    "one-huge-line": (lambda d: _write(d / "line", b"1" * 100_000 + b"\n"), "invalid address rule"),
    "missing": (lambda d: str(d / "absent"), "no such file"),
}


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize(
    "command",
    [["listen", "--allowfile", "FILE", "0"], ["listen", "-u", "--allowfile", "FILE", "0"],
     ["relay", "--allowfile", "FILE", "0", "127.0.0.1:9"]],
    ids=["listen", "listen-udp", "relay"],
)  # fmt: skip
def test_a_hostile_rules_file_is_one_line_exit_2(
    case: str, command: list[str], tmp_path: Path
) -> None:
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    done = subprocess.run(
        [*NCAT, *[path if arg == "FILE" else arg for arg in command]],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    line = one_error_line(done.stderr)
    assert done.returncode == 2, line
    assert "listening" not in line
    assert "--allowfile" in line
    assert expected in line
    assert len(line) < 300  # bounded, whatever the file held
    assert "\x1b" not in line
    assert "\x00" not in line


@pytest.mark.parametrize("case", ["dev-zero", "oversize", "directory"])
def test_a_hostile_denyfile_is_refused_too(case: str, tmp_path: Path) -> None:
    make, expected = BAD_FILES[case]
    done = subprocess.run(
        [*NCAT, "listen", "--denyfile", make(tmp_path), "0"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert expected in one_error_line(done.stderr)


def test_a_fifo_rules_file_with_a_writer_is_read_whole(tmp_path: Path) -> None:
    """A named pipe fed by another process (``mkfifo``) works; it is not a hang."""
    fifo = tmp_path / "rules"
    os.mkfifo(fifo)
    ready = threading.Event()

    def feed() -> None:
        with open(fifo, "wb") as writer:  # blocks until the listener opens it
            ready.set()
            writer.write(f"{PERMITTED}\n".encode())

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    # The writer must be there before the listener opens the FIFO, or it reads EOF at
    # once ("has no rules", the fifo-no-writer case): open our own read end first.
    keep = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert ready.wait(30)
        listener, port = spawn_listener(
            ["listen", "-u", "--allowfile", str(fifo), "127.0.0.1", "0"]
        )
    finally:
        feeder.join(30)
        os.close(keep)
    with udp_from(DENIED) as evil, udp_from(PERMITTED) as good:
        evil.sendto(b"evil\n", ("127.0.0.1", port))
        line_with(listener, b"denied datagram from 127.0.0.1:")
        good.sendto(b"good\n", ("127.0.0.1", port))
        assert listener.stdout is not None
        assert read_line(listener.stdout, timeout=30) == b"good\n"
    listener.terminate()
    finish(listener)

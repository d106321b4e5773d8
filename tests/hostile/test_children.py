"""Hostile tests, class *children*: nothing an exec child starts outlives its connection.

Issue 15: ``listen -k -c 'long command'`` signalled the shell only, so what the shell had
started was orphaned to init.  Each attack here runs the real CLI with real shells that
start children and grandchildren (``ncat-trio → sh → sh → sleep``), record every pid in a
file and say "ready" over the connection; then ncat-trio is signalled, the client goes
away, or the child ignores SIGTERM, and every recorded pid must have exited (waited for on
pidfds, bounded).  An orphan's zombie may stay (PID 1 here never reaps), so "exited" is
the claim, not "reaped".
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from ..support import (
    NCAT,
    finish,
    read_line,
    spawn,
    spawn_listener,
    still_running,
)


def family(pids: Path) -> str:
    """A shell with a background sleep and a nested shell that has its own (four pids in
    ``pids``); it says ``nested`` and ``ready`` once they are all written, then waits."""
    p = shlex.quote(str(pids))
    inner = f"sleep 300 & echo $! >> {p}; echo $$ >> {p}; echo nested; wait"
    return (
        f"echo $$ >> {p}; sleep 300 & echo $! >> {p}; sh -c {shlex.quote(inner)} & echo ready; wait"
    )


def recorded(pids: Path, count: int) -> list[int]:
    found = [int(line) for line in pids.read_text().split()]
    assert len(found) == count, found
    assert still_running(found) == found, "the family must be alive before the attack"
    return found


def await_words(client: socket.socket, *words: bytes) -> None:
    """Read lines (TCP) or datagrams (UDP) until every one of ``words`` has been seen."""
    seen: set[bytes] = set()
    while not set(words) <= seen:
        data = client.recv(65536)
        assert data, f"EOF before {words!r} (saw {seen!r})"
        seen.update(data.split())


def udp_client(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.send(b"start")  # listen -u locks onto the first sender, then starts the child
    return sock


def tcp_client(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


MODES = {
    "exec": (["listen", "-e"], True, 1),
    "sh-exec": (["listen", "-c"], False, 1),
    "keep-open": (["listen", "-k", "-c"], False, 2),
    "udp-exec": (["listen", "-u", "-e"], True, 1),
}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
@pytest.mark.parametrize("mode", MODES)
def test_a_signal_stops_every_process_the_child_started(
    mode: str, signum: signal.Signals, tmp_path: Path
) -> None:
    flags, via_exec, clients = MODES[mode]
    pids = tmp_path / "pids"
    script = family(pids)
    command = f"sh -c {shlex.quote(script)}" if via_exec else script
    listener, port = spawn_listener([*flags, command, "127.0.0.1", "0"])
    connect = udp_client if "-u" in flags else tcp_client
    sockets = [connect(port) for _ in range(clients)]
    try:
        for sock in sockets:
            await_words(sock, b"ready", b"nested")
        family_pids = recorded(pids, 4 * clients)
        listener.send_signal(signum)
        assert finish(listener, 30) == 128 + signum
    finally:
        for sock in sockets:
            sock.close()
    assert listener.stderr is not None
    assert listener.stderr.read().decode() == f"ncat-trio: interrupted by {signum.name}\n"
    assert still_running(family_pids) == []  # at once: ncat-trio waited for all of them


def test_connect_mode_stops_the_family_too(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        port = server.getsockname()[1]
        client = spawn([*NCAT, "connect", "-c", family(pids), "127.0.0.1", str(port)])
        conn, _ = server.accept()
        with conn:
            await_words(conn, b"ready", b"nested")
            family_pids = recorded(pids, 4)
            client.send_signal(signal.SIGTERM)
            assert finish(client, 30) == 143
    assert still_running(family_pids) == []


@pytest.mark.parametrize("who_ignores", ["the child", "a grandchild"])
def test_sigterm_ignored_is_sigkill_after_the_grace(who_ignores: str, tmp_path: Path) -> None:
    """``trap '' TERM`` is inherited by what the shell starts; then only SIGKILL works,
    after the 2 s grace."""
    pids = tmp_path / "pids"
    p = shlex.quote(str(pids))
    if who_ignores == "the child":
        script = (
            f"trap '' TERM; echo $$ >> {p}; sleep 300 & echo $! >> {p}; echo ready nested; wait"
        )
    else:  # the shell dies at SIGTERM, its child does not
        inner = f"trap '' TERM; echo $$ >> {p}; echo nested; exec sleep 300"
        script = f"echo $$ >> {p}; sh -c {shlex.quote(inner)} & echo $! >> {p}; echo ready; wait"
    listener, port = spawn_listener(["listen", "-c", script, "127.0.0.1", "0"])
    with tcp_client(port) as client:
        await_words(client, b"ready", b"nested")
        family_pids = recorded(pids, 2 if who_ignores == "the child" else 3)
        began = time.monotonic()
        listener.send_signal(signal.SIGTERM)
        assert finish(listener, 30) == 143
        took = time.monotonic() - began
    assert still_running(family_pids) == []
    assert 1.5 <= took < 15, f"SIGKILL after the 2 s grace, not {took:.2f} s"


def test_a_client_that_leaves_takes_only_its_own_family_along(tmp_path: Path) -> None:
    """listen -k: client A half-closes (its child's shell ends; a background sleep would
    linger), client B is reset; each time that connection's group, and only it, is
    stopped; -v logs the status once the group is gone."""
    p = shlex.quote(str(tmp_path)) + "/pids.$NCAT_REMOTE_PORT"
    script = f"echo $$ >> {p}; sleep 300 > /dev/null & echo $! >> {p}; echo ready nested; cat"
    listener, port = spawn_listener(["listen", "-k", "-v", "-c", script, "127.0.0.1", "0"])
    stderr = listener.stderr
    assert stderr is not None

    def status_line() -> str:
        while True:
            line = read_line(stderr, 30).decode()
            if line.startswith("ncat-trio: sh -c: "):
                return line

    with tcp_client(port) as a, tcp_client(port) as b:
        await_words(a, b"ready", b"nested")
        await_words(b, b"ready", b"nested")
        a_pids = recorded(tmp_path / f"pids.{a.getsockname()[1]}", 2)
        b_pids = recorded(tmp_path / f"pids.{b.getsockname()[1]}", 2)
        a.shutdown(socket.SHUT_WR)  # cat reads EOF, the shell exits, its sleep lingers
        assert a.recv(100) == b""
        assert status_line() == "ncat-trio: sh -c: exit status 0\n"
        assert still_running(a_pids) == []
        assert still_running(b_pids) == b_pids, "B's family is not A's business"
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert status_line() == "ncat-trio: sh -c: killed by SIGTERM\n"
    assert still_running(b_pids) == []
    listener.send_signal(signal.SIGTERM)
    assert finish(listener, 30) == 143


def test_a_child_that_exits_leaves_nothing_behind(tmp_path: Path) -> None:
    """The child exits at once and leaves a background job: the connection ends (its
    output is done), and the job is stopped with it."""
    p = shlex.quote(str(tmp_path / "pids"))
    script = f"sleep 300 > /dev/null & echo $! >> {p}; echo bye"
    listener, port = spawn_listener(["listen", "-c", script, "127.0.0.1", "0"])
    with tcp_client(port) as client:
        client.shutdown(socket.SHUT_WR)
        assert client.makefile("rb").read() == b"bye\n"
    assert finish(listener, 30) == 0
    assert still_running(int(pid) for pid in (tmp_path / "pids").read_text().split()) == []


def terminal_like_listener(script: str) -> tuple[subprocess.Popen[bytes], int]:
    """ncat-trio as a terminal's foreground job: a process group of its own, which
    Ctrl-C (``killpg(…, SIGINT)``) reaches as a whole."""
    return spawn_listener(["listen", "-c", script, "127.0.0.1", "0"], start_new_session=True)


def test_ctrl_c_at_a_terminal_reaches_the_child_only_as_our_sigterm(tmp_path: Path) -> None:
    """The child is in a session of its own: the terminal's SIGINT is ours alone, and
    the child learns of it as the SIGTERM of the stop (before: SIGINT from the tty too),
    once: the trap takes a while, and a second SIGTERM in that time ran it twice."""
    p, log = shlex.quote(str(tmp_path / "pids")), shlex.quote(str(tmp_path / "log"))
    slow = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"
    script = (
        f"trap 'echo INT >> {log}' INT; trap 'echo TERM >> {log}; {slow}; exit 0' TERM; "
        f"echo $$ >> {p}; sleep 300 & echo $! >> {p}; echo ready nested; wait; wait"
    )
    listener, port = terminal_like_listener(script)
    with tcp_client(port) as client:
        await_words(client, b"ready", b"nested")
        family_pids = recorded(tmp_path / "pids", 2)
        os.killpg(listener.pid, signal.SIGINT)
        assert finish(listener, 30) == 130
    assert still_running(family_pids) == []
    assert (tmp_path / "log").read_text() == "TERM\n"


def test_a_second_ctrl_c_kills_the_family_with_us(tmp_path: Path) -> None:
    """The first Ctrl-C starts the stop (SIGTERM, which this family survives); a second
    one is the hard stop: ncat-trio dies by SIGINT at once, and SIGKILLs the group first."""
    p = shlex.quote(str(tmp_path / "pids"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = (
        f"trap 'echo TERM > {shlex.quote(str(fifo))}' TERM; echo $$ >> {p}; "
        f"(trap '' TERM; exec sleep 300) & echo $! >> {p}; echo ready nested; "
        "while :; do wait; done"
    )
    listener, port = terminal_like_listener(script)
    with os.fdopen(os.open(fifo, os.O_RDWR), "rb", buffering=0) as told, tcp_client(port) as client:
        await_words(client, b"ready", b"nested")
        family_pids = recorded(tmp_path / "pids", 2)
        os.killpg(listener.pid, signal.SIGINT)
        assert read_line(told, 30) == b"TERM\n"  # the stop has begun: its grace runs
        os.killpg(listener.pid, signal.SIGINT)
        assert finish(listener, 30) == -signal.SIGINT
    assert still_running(family_pids, timeout=10) == []


def test_exec_children_are_not_in_our_session(tmp_path: Path) -> None:
    """What the two tests above rely on: pgid = sid = the child's pid."""
    listener, port = spawn_listener(["listen", "-c", "echo $$; exec sleep 300", "127.0.0.1", "0"])
    with tcp_client(port) as client:
        child = int(client.makefile("rb").readline())
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        assert (int(fields[2]), int(fields[3])) == (child, child)
        assert os.getsid(listener.pid) != child
        listener.send_signal(signal.SIGTERM)
        assert finish(listener, 30) == 143
    assert still_running([child]) == []

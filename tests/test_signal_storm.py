"""Signal storm: SIGINT/SIGTERM at random moments, many runs, always a clean exit.

Each run picks a seeded random scenario and moment — waiting for a client, just after
one connected, mid-transfer (listen, connect, relay, exec), half-closed and draining —
waits for the sign that ncat-trio got there (a readiness line, bytes arriving, EOF),
waits a further random 0-30 ms so the signal lands anywhere in that phase, and signals.
Every run must end with the documented code (130 for SIGINT, 143 for SIGTERM) within
1 s of the signal (the relay drains with ``--drain-timeout 0.2``), no traceback, the
last stderr line ``ncat-trio: interrupted by SIG…``, the O_NONBLOCK/O_APPEND flags of
the stdin/stdout pipes it shared with us unchanged, and no process left behind that
inherited the run's marker (exec children included).

CI runs ``NCAT_SIGNAL_RUNS`` (default 40) runs; ``just soak`` runs 200
(``python benchmarks/soak.py --signals 200``).
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.support import NCAT, Drain, read_line, reap_children, spawn, wait_for_port

RUNS = int(os.environ.get("NCAT_SIGNAL_RUNS", "40"))
DEADLINE = 1.0
SCENARIOS = (
    "listen: waiting for a client",
    "listen: just connected",
    "listen: mid-transfer",
    "listen: draining after stdin EOF",
    "connect: mid-transfer",
    "relay: mid-transfer",
    "relay: just accepted",
    "listen -e cat: mid-transfer",
)
_EXEC = None


def exec_supported() -> bool:
    global _EXEC
    if _EXEC is None:
        out = subprocess.run(
            [*NCAT, "listen", "--help"], capture_output=True, timeout=30, check=False
        ).stdout
        _EXEC = b"--exec" in out
    return _EXEC


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    yield
    reap_children()


def fl(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


@dataclass
class Run:
    seed: int
    scenario: str
    signum: signal.Signals
    marker: str


def survivors(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (our child and anything it started)."""
    found = []
    needle = f"NCAT_STORM={marker}".encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as env:
                    if needle in env.read().split(b"\0"):
                        found.append(int(pid))
            except OSError:
                continue
    return found


@contextmanager
def endless_server() -> Iterator[int]:
    """A TCP server that sends zeros to each client until it goes away."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=flood, args=(conn,), daemon=True).start()

    def flood(conn: socket.socket) -> None:
        with conn:
            try:
                while not stop.is_set():
                    conn.sendall(bytes(1 << 16))
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def stream_to(port: int, stop: threading.Event, *, fin: bool = False) -> socket.socket:
    """Connect; send zeros from a thread until ``stop`` (or once, then FIN, with ``fin``)."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send() -> None:
        try:
            if fin:
                conn.sendall(bytes(1 << 20))
                conn.shutdown(socket.SHUT_WR)
                return
            while not stop.is_set():
                conn.sendall(bytes(1 << 16))
        except OSError:
            pass

    threading.Thread(target=send, daemon=True).start()
    return conn


@dataclass
class Pipes:
    """The child's stdin and stdout pipes; we keep all four ends (the child's ends too,
    so their open file descriptions can be checked after it exits)."""

    stdin_r: int
    stdin_w: int
    stdout_r: int
    stdout_w: int

    @classmethod
    def open(cls) -> Pipes:
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        return cls(stdin_r, stdin_w, stdout_r, stdout_w)

    def flags(self) -> tuple[int, int]:
        return fl(self.stdin_r), fl(self.stdout_w)

    def stdout_drain(self) -> Drain:
        return Drain(os.fdopen(os.dup(self.stdout_r), "rb"), keep=False)

    def end_stdin(self) -> None:
        if self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1

    def close(self) -> None:
        self.end_stdin()
        for fd in (self.stdin_r, self.stdout_r, self.stdout_w):
            os.close(fd)


def storm_once(run: Run) -> None:
    rng = random.Random(run.seed)
    env = {**os.environ, "NCAT_STORM": run.marker}
    pipes = Pipes.open()
    flags_before = pipes.flags()
    stop = threading.Event()
    extra: list[socket.socket] = []
    try:
        with endless_server() as flood_port:
            proc, reached = start_scenario(run, env, pipes, flood_port, stop, extra)
            reached()
            time.sleep(rng.uniform(0, 0.03))  # a random moment inside the phase, on purpose
            sent = time.monotonic()
            proc.send_signal(run.signum)
            try:
                code = proc.wait(10)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{run}: no exit within 10 s of the signal") from None
            elapsed = time.monotonic() - sent
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
        flags_after = pipes.flags()
    finally:
        stop.set()
        for conn in extra:
            conn.close()
        pipes.close()
    want = {signal.SIGINT: 130, signal.SIGTERM: 143}[run.signum]
    assert code == want, f"{run}: exit {code}\n{err}"
    assert elapsed < DEADLINE, f"{run}: {elapsed:.3f} s after the signal"
    assert "Traceback" not in err, f"{run}:\n{err}"
    assert err.splitlines()[-1] == f"ncat-trio: interrupted by {run.signum.name}", f"{run}:\n{err}"
    assert flags_after == flags_before, f"{run}: stdio flags changed"
    assert survivors(run.marker) == [], f"{run}: processes left behind"


def start_scenario(
    run: Run,
    env: dict[str, str],
    pipes: Pipes,
    flood_port: int,
    stop: threading.Event,
    extra: list[socket.socket],
) -> tuple[subprocess.Popen[bytes], Callable[[], object]]:
    """Start ncat-trio for ``run.scenario``; return it and a call that blocks until the
    phase the signal should land in has been reached."""
    scenario = run.scenario
    io: dict[str, object] = {"stdin": pipes.stdin_r, "stdout": pipes.stdout_w, "env": env}
    if scenario.startswith("relay"):
        args = ["relay", "--drain-timeout", "0.2", "127.0.0.1:0", f"127.0.0.1:{flood_port}"]
    elif scenario.startswith("connect"):
        args = ["connect", "-v", "127.0.0.1", str(flood_port)]
    elif scenario.startswith("listen -e"):
        args = ["listen", "-v", "-e", "cat", "127.0.0.1", "0"]
    else:
        args = ["listen", "-v", "127.0.0.1", "0"]
    proc = spawn([*NCAT, *args], **io)
    assert proc.stderr is not None
    err = proc.stderr
    if scenario.startswith("connect"):
        drain = pipes.stdout_drain()

        def connected_and_flowing() -> None:
            read_line(err)  # connected to ...
            drain.wait_count(1)

        return proc, connected_and_flowing
    port = wait_for_port(err)
    if scenario == "listen: waiting for a client":
        return proc, lambda: None
    conn = (
        stream_to(port, stop)
        if scenario.endswith("mid-transfer")
        else socket.create_connection(("127.0.0.1", port), timeout=10)
    )
    extra.append(conn)
    if scenario == "listen: just connected":
        return proc, lambda: read_line(err)  # connection from ...
    if scenario == "listen: mid-transfer":
        drain = pipes.stdout_drain()
        return proc, lambda: drain.wait_count(1)
    if scenario == "listen -e cat: mid-transfer":
        return proc, lambda: wait_recv(conn)  # cat echoes: data went through the child
    if scenario == "listen: draining after stdin EOF":
        pipes.end_stdin()
        return proc, lambda: wait_eof(conn)  # ncat-trio sent its FIN: draining the peer
    if scenario == "relay: just accepted":
        return proc, lambda: None
    return proc, lambda: wait_recv(conn)  # relay: target bytes arrive through it


def wait_recv(conn: socket.socket) -> None:
    conn.settimeout(10)
    assert conn.recv(1 << 16)


def wait_eof(conn: socket.socket) -> None:
    conn.settimeout(10)
    while chunk := conn.recv(1 << 16):
        assert chunk is not None


def seeds() -> list[int]:
    return list(range(RUNS))


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds())
def test_signal_at_a_random_moment(seed: int) -> None:
    rng = random.Random(seed * 7919)
    choices = [s for s in SCENARIOS if not s.startswith("listen -e") or exec_supported()]
    run = Run(
        seed=seed,
        scenario=choices[seed % len(choices)] if seed < len(choices) else rng.choice(choices),
        signum=rng.choice([signal.SIGINT, signal.SIGTERM]),
        marker=f"{os.getpid()}-{seed}-{rng.getrandbits(32):08x}",
    )
    storm_once(run)

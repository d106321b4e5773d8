"""Signal storm: SIGINT/SIGTERM at random moments, many runs, always a clean exit.

Each run picks a seeded random scenario and moment — waiting for a client, just after
one connected, mid-transfer (listen, connect, relay, exec), half-closed and draining,
and in TLS: a client handshaking with a server that accepted TCP but never answers the
ClientHello, a ``listen --ssl`` server holding half a ClientHello, and mid-transfer over
TLS both ways — waits for the sign that ncat-trio got there (a readiness line, the
ClientHello arriving, bytes arriving, EOF), waits a further random 0-30 ms so the signal
lands anywhere in that phase, and signals.  Every run must end with the documented code
(130 for SIGINT, 143 for SIGTERM) within 1 s of the signal (the relay drains with
``--drain-timeout 0.2``), no traceback, every stderr line an ``ncat-trio:`` line and
exactly one of them — the last — ``ncat-trio: interrupted by SIG…``, the
O_NONBLOCK/O_APPEND flags of the stdin/stdout pipes it shared with us unchanged, and no
process left behind that inherited the run's marker (exec children included).

CI runs ``NCAT_SIGNAL_RUNS`` (default 60) runs, which cover every scenario at least
once; ``just soak`` runs 200 (``python benchmarks/soak.py --signals 200``).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support import NCAT, Drain, accept_loop, read_line, spawn, wait_for_port

RUNS = int(os.environ.get("NCAT_SIGNAL_RUNS", "60"))
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
    "connect --ssl: handshake with a silent server",
    "listen --ssl: half a ClientHello",
    "listen --ssl: mid-transfer",
    "connect --ssl: mid-transfer",
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


@dataclass(frozen=True)
class Tls:
    """A throwaway CA and a leaf for 127.0.0.1 (trustme), as files for ncat-trio and as
    contexts for the test's own TLS ends."""

    ca_file: str
    cert_file: str
    key_file: str
    server: ssl.SSLContext
    client: ssl.SSLContext

    @classmethod
    def make(cls, folder: Path) -> Tls:
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        ca_file, cert_file, key_file = (str(folder / n) for n in ("ca.pem", "cert.pem", "key.pem"))
        ca.cert_pem.write_to_path(ca_file)
        leaf.cert_chain_pems[0].write_to_path(cert_file)
        leaf.private_key_pem.write_to_path(key_file)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(server)
        client = ssl.create_default_context()
        ca.configure_trust(client)
        return cls(ca_file, cert_file, key_file, server, client)

    def client_hello(self) -> bytes:
        """The bytes of a real ClientHello (from an in-memory handshake that goes no further)."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        handshake = self.client.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with pytest.raises(ssl.SSLWantReadError):
            handshake.do_handshake()
        return outgoing.read()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return Tls.make(tmp_path_factory.mktemp("storm-tls"))


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
def endless_server(context: ssl.SSLContext | None = None) -> Iterator[int]:
    """A TCP server that sends zeros to each client until it goes away (over TLS with
    ``context``: the handshake runs in the client's thread)."""

    def flood(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            try:
                if context is not None:
                    conn.settimeout(10)
                    conn = context.wrap_socket(conn, server_side=True)
                while not stop.is_set():
                    conn.sendall(bytes(1 << 16))
            except OSError:  # ssl.SSLError included
                pass
            finally:
                conn.close()

    def start(conn: socket.socket, stop: threading.Event) -> None:
        threading.Thread(target=flood, args=(conn, stop), daemon=True).start()

    with accept_loop(start, join=5) as port:
        yield port


@contextmanager
def silent_server() -> Iterator[tuple[int, Callable[[], socket.socket]]]:
    """A TCP listener that accepts and never answers: (port, accept the next client)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        yield server.getsockname()[1], lambda: server.accept()[0]


def stream_to(
    port: int, stop: threading.Event, *, fin: bool = False, context: ssl.SSLContext | None = None
) -> socket.socket:
    """Connect (over TLS with ``context``); send zeros from a thread until ``stop`` (or
    once, then FIN, with ``fin``)."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    if context is not None:
        conn = context.wrap_socket(conn, server_hostname="127.0.0.1")

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


def storm_once(run: Run, tls: Tls) -> float:
    """One run; every check must hold.  Returns the seconds from the signal to the exit."""
    rng = random.Random(run.seed)
    env = {**os.environ, "NCAT_STORM": run.marker}
    pipes = Pipes.open()
    flags_before = pipes.flags()
    stop = threading.Event()
    extra: list[socket.socket] = []
    flood_context = tls.server if run.scenario == "connect --ssl: mid-transfer" else None
    try:
        with endless_server(flood_context) as flood_port, silent_server() as silent:
            peers = Peers(flood_port, silent, tls, rng)
            proc, reached = start_scenario(run, env, pipes, peers, stop, extra)
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
    assert elapsed < DEADLINE, f"{run}: {elapsed:.3f} s after the signal\n{err}"
    assert "Traceback" not in err, f"{run}:\n{err}"
    lines = err.splitlines()
    assert all(line.startswith("ncat-trio: ") for line in lines), f"{run}:\n{err}"
    interrupted = f"ncat-trio: interrupted by {run.signum.name}"
    assert [line for line in lines if "interrupted" in line] == [interrupted], f"{run}:\n{err}"
    assert lines[-1] == interrupted, f"{run}:\n{err}"
    assert flags_after == flags_before, f"{run}: stdio flags changed"
    assert survivors(run.marker) == [], f"{run}: processes left behind"
    return elapsed


@dataclass(frozen=True)
class Peers:
    """What a scenario can talk to: a zero-flooding server (TLS for ``connect --ssl:
    mid-transfer``), a server that never answers, the TLS material, the run's random."""

    flood_port: int
    silent: tuple[int, Callable[[], socket.socket]]
    tls: Tls
    rng: random.Random


def start_scenario(
    run: Run,
    env: dict[str, str],
    pipes: Pipes,
    peers: Peers,
    stop: threading.Event,
    extra: list[socket.socket],
) -> tuple[subprocess.Popen[bytes], Callable[[], object]]:
    """Start ncat-trio for ``run.scenario``; return it and a call that blocks until the
    phase the signal should land in has been reached."""
    scenario = run.scenario
    tls = peers.tls
    io: dict[str, object] = {"stdin": pipes.stdin_r, "stdout": pipes.stdout_w, "env": env}
    client_tls = ["--ssl", "--ssl-ca", tls.ca_file]
    server_tls = ["--ssl", "--ssl-cert", tls.cert_file, "--ssl-key", tls.key_file]
    if scenario.startswith("relay"):
        args = ["relay", "--drain-timeout", "0.2", "127.0.0.1:0", f"127.0.0.1:{peers.flood_port}"]
    elif scenario == "connect --ssl: handshake with a silent server":
        args = ["connect", "-v", *client_tls, "127.0.0.1", str(peers.silent[0])]
    elif scenario.startswith("connect --ssl"):
        args = ["connect", "-v", *client_tls, "127.0.0.1", str(peers.flood_port)]
    elif scenario.startswith("connect"):
        args = ["connect", "-v", "127.0.0.1", str(peers.flood_port)]
    elif scenario.startswith("listen -e"):
        args = ["listen", "-v", "-e", "cat", "127.0.0.1", "0"]
    elif scenario.startswith("listen --ssl"):
        args = ["listen", "-v", *server_tls, "127.0.0.1", "0"]
    else:
        args = ["listen", "-v", "127.0.0.1", "0"]
    proc = spawn([*NCAT, *args], **io)
    assert proc.stderr is not None
    err = proc.stderr
    if scenario == "connect --ssl: handshake with a silent server":

        def client_hello_arrived() -> None:
            conn = peers.silent[1]()  # TCP is up; the ClientHello is never answered
            extra.append(conn)
            conn.settimeout(10)
            assert conn.recv(1, socket.MSG_PEEK) == b"\x16"  # a TLS handshake record

        return proc, client_hello_arrived
    if scenario.startswith("connect"):
        drain = pipes.stdout_drain()

        def connected_and_flowing() -> None:
            read_line(err)  # connected to ...
            drain.wait_count(1)  # over TLS: the handshake is done, plaintext arrives

        return proc, connected_and_flowing
    port = wait_for_port(err)
    if scenario == "listen: waiting for a client":
        return proc, lambda: None
    if scenario == "listen --ssl: half a ClientHello":
        hello = tls.client_hello()
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        extra.append(conn)
        conn.sendall(hello[: peers.rng.randrange(1, len(hello))])
        return proc, lambda: read_line(err)  # connection from ...: the handshake starts
    if scenario == "listen --ssl: mid-transfer":
        conn = stream_to(port, stop, context=tls.client)  # returns once handshaken
        extra.append(conn)
        drain = pipes.stdout_drain()
        return proc, lambda: drain.wait_count(1)
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


def planned_runs() -> list[Run]:
    """``RUNS`` seeded runs; the first ones cover every scenario once, in order."""
    runs = []
    for seed in range(RUNS):
        rng = random.Random(seed * 7919)
        runs.append(
            Run(
                seed=seed,
                scenario=SCENARIOS[seed] if seed < len(SCENARIOS) else rng.choice(SCENARIOS),
                signum=rng.choice([signal.SIGINT, signal.SIGTERM]),
                marker=f"{os.getpid()}-{seed}-{rng.getrandbits(32):08x}",
            )
        )
    return runs


def record(run: Run, elapsed: float) -> None:
    """With ``NCAT_SIGNAL_REPORT=FILE`` (benchmarks/soak.py --signals), append one JSON
    line per run that held every check, for the per-scenario summary."""
    path = os.environ.get("NCAT_SIGNAL_REPORT")
    if path:
        entry = {"scenario": run.scenario, "signal": run.signum.name, "elapsed": elapsed}
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps(entry) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize(
    "run", planned_runs(), ids=lambda r: f"{r.seed}-{r.signum.name}-{r.scenario}"
)
def test_signal_at_a_random_moment(run: Run, tls: Tls) -> None:
    if run.scenario.startswith("listen -e") and not exec_supported():
        pytest.skip("this build has no listen -e")
    record(run, storm_once(run, tls))

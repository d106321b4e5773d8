"""clock mode against real peers, both ways: the reference ``roundtrip_ref`` (UDP and TCP)
and a real NTP implementation, ``chronyd``, as a server and as a client (``-Q``).

Both ends read the same clock on loopback, so a correct implementation measures an
offset of (nearly) zero: every offset is checked against 1 ms, and, where the protocol
allows, against the hard bound of half the round trip.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..ntp import ntp_answers
from ..support import NCAT, missing, require_program, require_ref_peer, spawn, wait_for_port

pytestmark = pytest.mark.interop

PROBE_TIMEOUT = 60


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[bytes, bytes]:
    """Signal a process (by its pid) and collect its output; kill it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{proc.args!r} did not stop") from None


def probe(port: int, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [*NCAT, "clock", "probe", "127.0.0.1", "-p", str(port), "-c", "5",
         "--interval", "0.02", "--json", *args],
        capture_output=True, timeout=PROBE_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def best(report: dict[str, object]) -> tuple[float, float]:
    sample = report["best"]
    assert isinstance(sample, dict)
    return float(sample["offset_s"]), float(sample["rtt_s"])


# --- roundtrip_ref ----------------------------------------------------------------------


@pytest.fixture
def roundtrip_ref() -> str:
    return require_ref_peer("roundtrip_ref")


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_probe_against_roundtrip_ref(roundtrip_ref: str, tcp: bool) -> None:
    server = spawn([roundtrip_ref, "-s", "0", "-b", "127.0.0.1", *(["-T"] if tcp else [])])
    try:
        assert server.stdout is not None
        port = wait_for_port(server.stdout)  # "port = P"
        report = probe(port, *(["--tcp"] if tcp else []))
    finally:
        stop(server)
    assert (report["probes"], report["replies"], report["lost"]) == (5, 5, 0)
    offset, rtt = best(report)
    assert abs(offset) < 0.001
    # The server stamped a time between our send and our receive, on the same clock.
    assert abs(offset) <= rtt / 2 + 1e-6


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_roundtrip_ref_client_against_our_server(roundtrip_ref: str, tcp: bool) -> None:
    server = spawn([*NCAT, "clock", "serve", "-b", "127.0.0.1", "-p", "0", "-v",
                    *(["--tcp"] if tcp else [])])  # fmt: skip
    try:
        assert server.stderr is not None
        port = wait_for_port(server.stderr)
        client = subprocess.run(
            [roundtrip_ref, "127.0.0.1", str(port), "-c", "5", "-i", "20", *(["-T"] if tcp else [])],
            capture_output=True, timeout=PROBE_TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        _, server_err = stop(server)
    assert client.returncode == 0, client.stderr
    out = client.stdout.decode()
    assert "probes 5 replies 5 timeouts 0" in out
    samples = [
        (int(r), int(e))
        for r, e in re.findall(r"^round trip (\d+) clock error (-?\d+)$", out, re.M)
    ]
    assert len(samples) == 5
    for rtt_us, error_us in samples:
        assert abs(error_us) <= rtt_us / 2 + 1  # our stamp lies inside its round trip
    best_error = re.search(r"^min round trip \d+ clock error (-?\d+)$", out, re.M)
    assert best_error is not None
    assert abs(int(best_error.group(1))) < 1000  # µs
    assert b"answered 5 requests, dropped 0" in server_err


# --- chronyd ---------------------------------------------------------------------------


def chronyd_path() -> str:
    path = require_program("chronyd")
    if os.geteuid() != 0:
        missing("chronyd as root (it refuses to start otherwise)")
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_chronyd_server(chronyd: str, folder: Path, port: int) -> subprocess.Popen[bytes] | None:
    """chronyd serving NTP on 127.0.0.1:port without touching the clock; None if the port was
    taken by someone else (a race between choosing a free port and chronyd binding it)."""
    conf = folder / "chrony.conf"
    conf.write_text(
        f"port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n"
        f"cmdport 0\nbindcmdaddress /\npidfile {folder}/chronyd.pid\n"
    )
    log_path = folder / "chronyd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [chronyd, "-x", "-d", "-u", "root", "-f", str(conf)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    # chronyd prints nothing when its NTP socket is ready, so readiness is an answer to a
    # request: ask until chronyd answers or exits (bounded: 10 s).  A refused request
    # returns at once, so each retry waits on chronyd's exit for 20 ms first.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ntp_answers(port):
            return proc
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            continue
        break
    stop(proc)
    text = log_path.read_text(errors="replace")
    if "Could not open NTP socket" in text:
        return None
    raise AssertionError(f"chronyd did not answer on port {port}: {text}")


@pytest.fixture
def chronyd_server(tmp_path: Path) -> Iterator[int]:
    """A chronyd NTP server on a loopback port; yields the port, kills it by pid after."""
    chronyd = chronyd_path()
    for _attempt in range(2):  # one retry if another process grabbed the chosen port
        port = free_udp_port()
        proc = start_chronyd_server(chronyd, tmp_path, port)
        if proc is not None:
            break
    else:
        raise AssertionError("could not start chronyd on a free port twice in a row")
    try:
        yield port
    finally:
        stop(proc)


def test_ntp_probe_against_chronyd(chronyd_server: int) -> None:
    report = probe(chronyd_server, "--proto", "ntp")
    assert (report["probes"], report["replies"], report["rejected"]) == (5, 5, 0)
    sample = report["best"]
    assert isinstance(sample, dict)
    assert sample["stratum"] == 8  # chronyd's `local stratum 8`
    offset, rtt = best(report)
    assert abs(offset) < 0.001
    assert abs(offset) <= rtt / 2 + 1e-6


def test_chronyd_client_accepts_our_ntp_server(tmp_path: Path) -> None:
    chronyd = chronyd_path()
    server = spawn([*NCAT, "clock", "serve", "--proto", "ntp", "-b", "127.0.0.1", "-p", "0", "-v"])
    try:
        assert server.stderr is not None
        port = wait_for_port(server.stderr)
        conf = tmp_path / "client.conf"
        conf.write_text(
            f"server 127.0.0.1 port {port} iburst minpoll -4 maxpoll -4\n"
            f"port 0\ncmdport 0\nbindcmdaddress /\npidfile {tmp_path}/client.pid\n"
        )
        # -Q: measure once and print the offset, never set the clock.
        client = subprocess.run(
            [chronyd, "-Q", "-u", "root", "-t", "20", "-f", str(conf)],
            capture_output=True, timeout=PROBE_TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        _, server_err = stop(server)
    output = (client.stdout + client.stderr).decode(errors="replace")
    assert client.returncode == 0, output
    wrong = re.search(r"System clock wrong by (-?[0-9.]+) seconds", output)
    assert wrong is not None, output
    assert abs(float(wrong.group(1))) < 0.001
    answered = re.search(rb"answered (\d+) requests, dropped 0", server_err)
    assert answered is not None
    assert int(answered.group(1)) >= 1

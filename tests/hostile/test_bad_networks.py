"""Bad networks: transfers both ways over loss, delay, jitter, reordering and slicing.

* netem: a network namespace made for the test, a veth pair inside it with ``tc netem``
  on both ends (loss 5%, delay 50 ms ± 20 ms, 25% reordering).  Needs root, ``ip netns``
  and the kernel's ``sch_netem``; without them the test is skipped with the reason — in
  CI too, since that is a kernel capability, not a missing package.
* The relay's own faults, which need nothing: latency 50 ms ± 20 ms, a slicer cutting
  every chunk into 1-1460 byte segments, a bandwidth cap; then a reset mid-transfer.

Each transfer moves random bytes both ways at once (connect's stdin up, listen's stdin
down) and checks: sha256 intact on both sides, exit 0 on both, and no hang beyond the
configured timeouts (``-i`` idle timeout on both ends); the reset must give exit 3.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import NCAT, Drain, spawn, wait_for_port

UP = 1 << 20
DOWN = 512 << 10
NETEM = ["loss", "5%", "delay", "50ms", "20ms", "reorder", "25%", "50%"]


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def transfer(
    tmp: Path, listen_prefix: list[str], connect_prefix: list[str], host: str
) -> tuple[int, int, bytes, bytes, bytes]:
    """Run listen and connect (each maybe inside a namespace); return both exit codes,
    what each received and connect's stderr."""
    up, down = payload(UP, 1), payload(DOWN, 2)
    (tmp / "up").write_bytes(up)
    (tmp / "down").write_bytes(down)
    with (tmp / "down").open("rb") as down_file:
        server = spawn(
            [*listen_prefix, *NCAT, "listen", "-i", "20", host, "0"],
            stdin=down_file,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert server.stderr is not None
    port = wait_for_port(server.stderr, timeout=30)
    got_up = Drain(server.stdout)  # type: ignore[arg-type]
    with (tmp / "up").open("rb") as up_file:
        client = subprocess.run(
            [*connect_prefix, *NCAT, "connect", "-i", "20", host, str(port)],
            stdin=up_file,
            capture_output=True,
            timeout=120,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
    server_code = server.wait(60)
    return server_code, client.returncode, got_up.wait(), client.stdout, client.stderr


# --- netem in a namespace ---------------------------------------------------------------


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def netem_namespace() -> Iterator[tuple[str, str]]:
    """(namespace, address of the far veth end) with netem on both ends; skips if the
    kernel or the privileges are missing, and deletes what it made."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("netem needs root, ip and tc")
    name = f"ncat-{uuid.uuid4().hex[:8]}"
    if ip("netns", "add", name).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    try:
        steps = [
            ["ip", "-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb"],
            ["ip", "-n", name, "link", "set", "lo", "up"],
            ["ip", "-n", name, "addr", "add", "10.200.0.1/24", "dev", "va"],
            ["ip", "-n", name, "addr", "add", "10.200.0.2/24", "dev", "vb"],
            ["ip", "-n", name, "link", "set", "va", "up"],
            ["ip", "-n", name, "link", "set", "vb", "up"],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=30, check=False)
            if done.returncode != 0:
                pytest.skip(f"{' '.join(step)}: {done.stderr.strip()}")
        for dev in ("va", "vb"):
            done = subprocess.run(
                ["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", dev, "root", "netem", *NETEM],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                pytest.skip(f"the kernel has no netem qdisc ({done.stderr.strip()})")
        yield name, "10.200.0.2"
    finally:
        ip("netns", "del", name)


def test_transfer_both_ways_through_netem(netem_namespace: tuple[str, str], tmp_path: Path) -> None:
    name, far = netem_namespace
    inside = ["ip", "netns", "exec", name]
    server_code, client_code, got_up, got_down, err = transfer(tmp_path, inside, inside, far)
    assert (server_code, client_code) == (0, 0), err
    assert hashlib.sha256(got_up).digest() == hashlib.sha256(payload(UP, 1)).digest()
    assert hashlib.sha256(got_down).digest() == hashlib.sha256(payload(DOWN, 2)).digest()


# --- the relay's own faults -------------------------------------------------------------


def faulty_transfer(tmp: Path, faults: list[str]) -> tuple[int, int, bytes, bytes, bytes]:
    up, down = payload(UP, 1), payload(DOWN, 2)
    (tmp / "up").write_bytes(up)
    (tmp / "down").write_bytes(down)
    with (tmp / "down").open("rb") as down_file:
        server = spawn([*NCAT, "listen", "-i", "20", "127.0.0.1", "0"], stdin=down_file)
    assert server.stderr is not None
    server_port = wait_for_port(server.stderr)
    got_up = Drain(server.stdout)  # type: ignore[arg-type]
    relay = spawn([*NCAT, "relay", *faults, "127.0.0.1:0", f"127.0.0.1:{server_port}"])
    assert relay.stderr is not None
    relay_port = wait_for_port(relay.stderr)
    with (tmp / "up").open("rb") as up_file:
        client = subprocess.run(
            [*NCAT, "connect", "-i", "20", "127.0.0.1", str(relay_port)],
            stdin=up_file, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    server_code = server.wait(60)
    relay.terminate()
    relay.wait(10)
    return server_code, client.returncode, got_up.wait(), client.stdout, client.stderr


def test_transfer_both_ways_through_relay_latency_slicer_and_bandwidth(tmp_path: Path) -> None:
    faults = [
        "--latency", "50ms/20ms", "--slicer", "1460/1459", "--bandwidth", "4M", "--seed", "7",
    ]  # fmt: skip
    server_code, client_code, got_up, got_down, err = faulty_transfer(tmp_path, faults)
    assert (server_code, client_code) == (0, 0), err
    assert got_up == payload(UP, 1)
    assert got_down == payload(DOWN, 2)


def test_a_reset_mid_transfer_is_exit_3_not_a_short_success(tmp_path: Path) -> None:
    server_code, client_code, got_up, got_down, err = faulty_transfer(
        tmp_path, ["--slicer", "1460/1000", "--reset-peer", "down:100KB"]
    )
    assert client_code == 3, err  # the reset reached the client as a reset
    assert b"Traceback" not in err
    assert len(got_down) <= 100 * 1024
    assert got_down == payload(DOWN, 2)[: len(got_down)]  # what arrived is intact
    assert server_code in (0, 3)  # the listener's side may finish first or be reset
    assert got_up == payload(UP, 1)[: len(got_up)]

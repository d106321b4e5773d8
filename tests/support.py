"""Shared helpers for end-to-end and interop tests: run ncat-trio and real peers.

* Ports are always 0; a listener's real port is read from its readiness line on
  stderr (``ncat-trio: listening on HOST:PORT``), never guessed, never slept for.
* A missing peer program skips the test on a laptop but *fails* it in CI
  (``CI`` set in the environment), so CI can never go green by skipping interop.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NCAT = [sys.executable, "-m", "ncat_trio"]
PEERS_SRC = ROOT.parent / "shared" / "peers"
PEERS_BUILD = ROOT / "build" / "peers"

_LISTENING = re.compile(rb"listening on (?:\[(?P<h6>[^\]]+)\]|(?P<h4>[^:\s]+)):(?P<port>\d+)")


def missing(what: str) -> None:
    """Skip locally, fail in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} not available")


def require_program(name: str) -> str:
    """Path of a peer program (``nc.openbsd``, ``ncat``, ``socat``, ``chronyd``)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        missing(name)
        raise AssertionError("unreachable")
    return path


def require_ref_peer(name: str) -> str:
    """Path of ``ttcp_ref`` or ``roundtrip_ref`` from ../shared/peers, built on demand."""
    binary = PEERS_BUILD / name
    if not binary.exists() and (PEERS_SRC / "Makefile").exists() and shutil.which("make"):
        subprocess.run(
            ["make", "-s", "-C", str(PEERS_SRC), f"O={PEERS_BUILD}"],
            check=False,
            capture_output=True,
            timeout=120,
        )
    if not binary.exists():
        missing(f"{name} (make -C ../shared/peers O=$PWD/build/peers)")
    return str(binary)


def read_line(stream: IO[bytes], timeout: float = 10.0) -> bytes:
    """One line from a pipe, or AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise AssertionError(f"no line within {timeout} s (got {buf!r})")
            chunk = os.read(fd, 1)
            if not chunk:
                raise AssertionError(f"EOF before a full line (got {buf!r})")
            buf += chunk
    return buf


def wait_for_port(stream: IO[bytes], timeout: float = 10.0) -> int:
    """Read stderr lines until the readiness line; return the port it names."""
    deadline = time.monotonic() + timeout
    while True:
        line = read_line(stream, max(0.1, deadline - time.monotonic()))
        match = _LISTENING.search(line) or re.search(rb"^port = (\d+)", line)
        if match is not None:
            return int(match.group("port") if "port" in match.re.groupindex else match.group(1))


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(args, **kwargs)


def start_ncat_listener(args: list[str], **kwargs: Any) -> tuple[subprocess.Popen[bytes], int]:
    """``ncat-trio listen … 0`` (args include the port 0); returns (process, real port)."""
    proc = popen([*NCAT, *args], **kwargs)
    try:
        assert proc.stderr is not None
        port = wait_for_port(proc.stderr)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, port


def finish(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """Wait for a process, killing it (and failing) if it overstays."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args!r} did not exit within {timeout} s") from None

"""Shared plumbing for the benchmarks: free ports, readiness, timed runs with rusage.

Benchmarks are plain scripts, never tests: they print figures and same-run ratios.
Peers that cannot report the port they listen on get one found by binding port 0 and
closing it (a benchmark may race another program for it; it then fails loudly).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NCAT = [sys.executable, "-m", "ncat_trio"]
PEERS_BUILD = ROOT / "build" / "peers"
if str(ROOT) not in sys.path:  # the benchmarks share small helpers with tests/ (tests/ntp.py)
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    """Kernel release, CPU model and core count (and Python): what every RESULTS.md
    section names, because the same code measured differently on two kernel builds
    (DESIGN.md §5)."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"Linux {platform.release()}, {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Poll /proc/net/tcp until 127.0.0.1:port is in LISTEN state (benchmarks only)."""
    needle = f"0100007F:{port:04X} 00000000:0000 0A"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            if needle in f.read():
                return
        time.sleep(0.005)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def wait_established(port: int, timeout: float = 10.0) -> float:
    """Poll /proc/net/tcp until a connection to 127.0.0.1:port is established; return
    ``time.perf_counter()`` at that moment.  This is where a transfer's clock starts: a
    sender's start-up (Python's imports, for ncat-trio) is reported by its own row in
    the start-up table and is not counted as transfer time."""
    local = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            for row in f:
                fields = row.split()
                # ESTABLISHED, or already half-closed: a receiver whose stdin is
                # /dev/null sends its FIN at once (FIN_WAIT1/2, CLOSE_WAIT).
                if fields[1] == local and fields[3] in _CONNECTED:
                    return time.perf_counter()
        time.sleep(0.0005)
    raise RuntimeError(f"no connection to 127.0.0.1:{port} after {timeout} s")


_CONNECTED = {"01", "04", "05", "08"}
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_so_far(pid: int) -> float:
    """User + system CPU seconds a live process has used (``/proc/PID/stat``; 0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True)
class ProcStats:
    wall: float
    cpu: float  # user + system seconds
    maxrss_kib: int
    code: int


def wait_with_rusage(
    proc: subprocess.Popen[bytes], started: float, cpu_before: float = 0.0
) -> ProcStats:
    """Reap ``proc`` with wait4 to get its own CPU time (minus ``cpu_before``, what it
    had used when the transfer started) and peak RSS."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ProcStats(
        wall=time.perf_counter() - started,
        cpu=usage.ru_utime + usage.ru_stime - cpu_before,
        maxrss_kib=usage.ru_maxrss,
        code=proc.returncode,
    )


def have(program: str) -> bool:
    return shutil.which(program) is not None


@dataclass
class Series:
    name: str
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)

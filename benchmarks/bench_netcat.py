"""Throughput of connect/listen against nc.openbsd, socat and ncat, in the same run.

Scenarios (each tool at both ends unless named otherwise):
  pipe   head -c N /dev/zero | SENDER   →TCP→   RECEIVER | wc -c
  file   SENDER < N-byte file           →TCP→   RECEIVER > file
  mixed  ncat-trio → nc.openbsd and nc.openbsd → nc.openbsd
  startup  `ncat-trio --version` vs `python3 -c 'import trio'`

Tools run alternately (A B C A B C …) for --rounds rounds; the table shows the median
GB/s, min–max, CPU seconds per GB at each end, peak RSS, and the ratio to nc.openbsd
measured in the same run.  Usage: python benchmarks/bench_netcat.py [--size 1G] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from common import NCAT, free_port, have, table, wait_listening, wait_with_rusage

from ncat_trio.parse import parse_size

Argv = Callable[[int], list[str]]


@dataclass(frozen=True)
class Tool:
    name: str
    listen: Argv
    connect: Argv


TOOLS = {
    "ncat-trio": Tool(
        "ncat-trio",
        lambda p: [*NCAT, "listen", "127.0.0.1", str(p)],
        lambda p: [*NCAT, "127.0.0.1", str(p)],
    ),
    "nc.openbsd": Tool(
        "nc.openbsd",
        lambda p: ["nc.openbsd", "-l", "127.0.0.1", str(p)],
        lambda p: ["nc.openbsd", "-N", "127.0.0.1", str(p)],
    ),
    "socat": Tool(
        "socat",
        lambda p: ["socat", "-u", f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr", "STDOUT"],
        lambda p: ["socat", "-u", "STDIN", f"TCP:127.0.0.1:{p}"],
    ),
    "socat -b256K": Tool(
        "socat -b256K",
        lambda p: [
            "socat",
            "-b",
            "262144",
            "-u",
            f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr",
            "STDOUT",
        ],
        lambda p: ["socat", "-b", "262144", "-u", "STDIN", f"TCP:127.0.0.1:{p}"],
    ),
    "ncat": Tool(
        "ncat",
        lambda p: ["ncat", "--recv-only", "-l", "127.0.0.1", str(p)],
        lambda p: ["ncat", "--send-only", "127.0.0.1", str(p)],
    ),
}


@dataclass(frozen=True)
class Sample:
    gbps: float
    cpu_send: float  # CPU seconds per GB
    cpu_recv: float
    rss_mib: float


def transfer(sender: Tool, receiver: Tool, nbytes: int, mode: str, src_file: str | None) -> Sample:
    port = free_port()
    with tempfile.TemporaryFile() as out:
        recv_stdout = subprocess.PIPE if mode == "pipe" else out
        recv = subprocess.Popen(
            receiver.listen(port),
            stdin=subprocess.DEVNULL,
            stdout=recv_stdout,
            stderr=subprocess.DEVNULL,
        )
        counter = None
        if mode == "pipe":
            assert recv.stdout is not None
            counter = subprocess.Popen(["wc", "-c"], stdin=recv.stdout, stdout=subprocess.PIPE)
            recv.stdout.close()
        wait_listening(port)
        started = time.perf_counter()
        if mode == "pipe":
            gen = subprocess.Popen(["head", "-c", str(nbytes), "/dev/zero"], stdout=subprocess.PIPE)
            send = subprocess.Popen(
                sender.connect(port),
                stdin=gen.stdout,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            assert gen.stdout is not None
            gen.stdout.close()
        else:
            assert src_file is not None
            with open(src_file, "rb") as f:
                send = subprocess.Popen(
                    sender.connect(port),
                    stdin=f,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
        s = wait_with_rusage(send, started)
        r = wait_with_rusage(recv, started)
        if mode == "pipe":
            assert counter is not None
            got = int(counter.communicate()[0])
            gen.wait()
        else:
            got = os.fstat(out.fileno()).st_size
    if got != nbytes or s.code or r.code:
        raise RuntimeError(
            f"{sender.name}→{receiver.name}: got {got} of {nbytes} bytes, exit {s.code}/{r.code}"
        )
    gb = nbytes / 1e9
    return Sample(gb / r.wall, s.cpu / gb, r.cpu / gb, max(s.maxrss_kib, r.maxrss_kib) / 1024)


def scenario(
    title: str,
    pairs: list[tuple[str, Tool, Tool]],
    nbytes: int,
    rounds: int,
    mode: str,
    baseline: str,
) -> None:
    src_file = None
    if mode == "file":
        fd, src_file = tempfile.mkstemp(prefix="bench-")
        with os.fdopen(fd, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(nbytes >> 20):
                f.write(block)
    try:
        samples: dict[str, list[Sample]] = {name: [] for name, _, _ in pairs}
        for _ in range(rounds):
            for name, s, r in pairs:
                samples[name].append(transfer(s, r, nbytes, mode, src_file))
    finally:
        if src_file:
            os.unlink(src_file)
    base = (
        statistics.median(x.gbps for x in samples[baseline])
        if samples.get(baseline)
        else float("nan")
    )
    rows = [
        [
            "tool",
            "GB/s median",
            "min–max",
            "CPU s/GB send",
            "CPU s/GB recv",
            "peak RSS MiB",
            f"× {baseline}",
        ]
    ]
    for name, got in samples.items():
        g = [x.gbps for x in got]
        med = statistics.median(g)
        rows.append([
            name, f"{med:.2f}", f"{min(g):.2f}–{max(g):.2f}",
            f"{statistics.median(x.cpu_send for x in got):.2f}", f"{statistics.median(x.cpu_recv for x in got):.2f}",
            f"{max(x.rss_mib for x in got):.0f}", f"{med / base:.2f}",
        ])  # fmt: skip
    print(f"\n### {title} ({nbytes / 2**30:.2f} GiB, {rounds} rounds)\n")
    print(table(rows))


def startup(rounds: int) -> None:
    def timed(argv: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return time.perf_counter() - t

    cases = {
        "ncat-trio --version": [*NCAT, "--version"],
        "python3 -c 'import trio'": [sys.executable, "-c", "import trio"],
        "ncat-trio connect (refused)": [*NCAT, "127.0.0.1", str(free_port())],
        "nc.openbsd (refused)": ["nc.openbsd", "127.0.0.1", str(free_port())],
    }
    results = {k: [timed(v) for _ in range(rounds)] for k, v in cases.items()}
    base = statistics.median(results["python3 -c 'import trio'"])
    rows = [["command", "median ms", "× import trio"]]
    for k, v in results.items():
        rows.append([k, f"{statistics.median(v) * 1000:.0f}", f"{statistics.median(v) / base:.2f}"])
    print(f"\n### startup ({rounds} runs each)\n")
    print(table(rows))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="1 GiB, 3 rounds")
    args = ap.parse_args()
    nbytes, rounds = (1 << 30, 3) if args.quick else (parse_size(args.size), args.rounds)
    tools = [t for t in TOOLS.values() if have(t.listen(0)[0]) or t.name == "ncat-trio"]
    missing = sorted(set(TOOLS) - {t.name for t in tools})
    if missing:
        print(f"(not installed, skipped: {', '.join(missing)})")
    both = [(t.name, t, t) for t in tools]
    scenario(
        "pipe → TCP → pipe, same tool at both ends", both, nbytes, rounds, "pipe", "nc.openbsd"
    )
    scenario(
        "regular file → TCP → file, same tool at both ends",
        both,
        nbytes,
        rounds,
        "file",
        "nc.openbsd",
    )
    if have("nc.openbsd"):
        nc, ours = TOOLS["nc.openbsd"], TOOLS["ncat-trio"]
        mixed = [
            ("nc.openbsd → nc.openbsd", nc, nc),
            ("ncat-trio → nc.openbsd", ours, nc),
            ("nc.openbsd → ncat-trio", nc, ours),
        ]
        scenario(
            "pipe → TCP → pipe, mixed ends",
            mixed,
            nbytes,
            rounds,
            "pipe",
            "nc.openbsd → nc.openbsd",
        )
    startup(max(rounds, 5))


if __name__ == "__main__":
    main()

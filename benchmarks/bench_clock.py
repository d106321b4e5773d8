"""Clock accuracy on loopback: ncat-trio vs roundtrip_ref vs chrony, in the same run.

Both ends of every pair read the same clock, so the true offset is 0 and whatever a tool
reports is its error.  Pairs (client → server), run alternately for --rounds rounds:

  roundtrip_ref → roundtrip_ref      the C reference against itself (the baseline)
  ncat-trio     → roundtrip_ref      our roundtrip client
  roundtrip_ref → ncat-trio          our roundtrip server
  ncat-trio     → ncat-trio          roundtrip, ours both ends
  ncat-trio     → chronyd            our SNTP client against a real NTP server
  chronyd -Q    → chronyd            chrony's own measurement (kernel timestamps both ways)
  chronyd -Q    → ncat-trio          our SNTP server, measured by chrony
  ncat-trio     → ncat-trio          SNTP, ours both ends

Per run, each tool's best sample (the smallest round trip) is taken; the table shows the
median and worst |offset| of those over the rounds, and the median best round trip.
roundtrip's round trip includes the server's hold time; NTP's delay excludes it.
chrony's figures come from its measurements log (offset, peer delay), best by delay.

Usage: python benchmarks/bench_clock.py [--rounds 5] [--count 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import NCAT, PEERS_BUILD, free_port, have, table

from tests.ntp import ntp_answers  # common.py puts the repository root on sys.path

CHRONYD = "/usr/sbin/chronyd" if Path("/usr/sbin/chronyd").exists() else "chronyd"
LISTENING = re.compile(rb"listening on [^\s:]+:(\d+)|^port = (\d+)")


@dataclass(frozen=True)
class Best:
    """A run's best sample: offset and round trip in µs."""

    offset_us: float
    rtt_us: float


def read_port(stream: object) -> int:
    assert hasattr(stream, "readline")
    for _ in range(20):
        line = stream.readline()
        match = LISTENING.search(line)
        if match:
            return int(match.group(1) or match.group(2))
    raise RuntimeError("no readiness line")


class Servers:
    """The four servers, started once and stopped (by pid) at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> None:
        ref = self._start([str(PEERS_BUILD / "roundtrip_ref"), "-s", "0", "-b", "127.0.0.1"])
        assert ref.stdout is not None
        self.ref = read_port(ref.stdout)
        ours = self._start([*NCAT, "clock", "serve", "-b", "127.0.0.1", "-p", "0"])
        assert ours.stderr is not None
        self.ours_roundtrip = read_port(ours.stderr)
        ours_ntp = self._start(
            [*NCAT, "clock", "serve", "--proto", "ntp", "-b", "127.0.0.1", "-p", "0"]
        )
        assert ours_ntp.stderr is not None
        self.ours_ntp = read_port(ours_ntp.stderr)
        self.chronyd = free_port(socket.SOCK_DGRAM)
        conf = self.folder / "server.conf"
        conf.write_text(
            f"port {self.chronyd}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n"
            f"cmdport 0\nbindcmdaddress /\npidfile {self.folder}/server.pid\n"
        )
        chrony = self._start([CHRONYD, "-x", "-d", "-u", "root", "-f", str(conf)])
        deadline = time.monotonic() + 10
        while not ntp_answers(self.chronyd):
            if time.monotonic() > deadline:
                raise RuntimeError("chronyd did not answer within 10 s")
            try:
                chrony.wait(timeout=0.02)  # a pause that also notices chronyd's exit
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError("chronyd exited (port taken? not root?)")

    def _start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def ncat_probe(port: int, proto: str, count: int) -> Best:
    out = subprocess.run(
        [*NCAT, "clock", "probe", "127.0.0.1", "-p", str(port), "--proto", proto,
         "-c", str(count), "--interval", "0.02", "--json"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    best = json.loads(out)["best"]
    return Best(best["offset_s"] * 1e6, best["rtt_s"] * 1e6)


def ref_client(port: int, count: int) -> Best:
    out = subprocess.run(
        [str(PEERS_BUILD / "roundtrip_ref"), "127.0.0.1", str(port), "-c", str(count), "-i", "20"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    match = re.search(r"^min round trip (\d+) clock error (-?\d+)$", out, re.M)
    assert match is not None, out
    return Best(float(match.group(2)), float(match.group(1)))


def chrony_client(port: int, folder: Path) -> Best:
    logdir = Path(tempfile.mkdtemp(dir=folder))
    conf = logdir / "client.conf"
    conf.write_text(
        f"server 127.0.0.1 port {port} iburst minpoll -4 maxpoll -4\nport 0\ncmdport 0\n"
        f"bindcmdaddress /\npidfile {logdir}/client.pid\nlogdir {logdir}\nlog measurements\n"
    )
    subprocess.run(
        [CHRONYD, "-Q", "-u", "root", "-t", "20", "-f", str(conf)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    samples = []
    for line in (logdir / "measurements.log").read_text().splitlines():
        fields = line.split()
        if len(fields) > 13 and fields[2] == "127.0.0.1":
            # Offset: positive = our (local) clock is slow of the source, as ours.
            samples.append(Best(float(fields[11]) * 1e6, float(fields[12]) * 1e6))
    return min(samples, key=lambda b: b.rtt_us)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--count", type=int, default=20, help="probes per run (ours, roundtrip_ref)"
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 8 probes")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.count = 2, 8
    if not (PEERS_BUILD / "roundtrip_ref").exists():
        print("build the peers first: make -C peers", file=sys.stderr)
        return 2
    if not have(CHRONYD):
        print("chronyd is required", file=sys.stderr)
        return 2
    n = args.count
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        servers = Servers(folder)
        try:
            pairs: list[tuple[str, str, str, Callable[[], Best]]] = [
                ("roundtrip_ref", "roundtrip_ref", "roundtrip", lambda: ref_client(servers.ref, n)),
                ("ncat-trio", "roundtrip_ref", "roundtrip", lambda: ncat_probe(servers.ref, "roundtrip", n)),
                ("roundtrip_ref", "ncat-trio", "roundtrip", lambda: ref_client(servers.ours_roundtrip, n)),
                ("ncat-trio", "ncat-trio", "roundtrip", lambda: ncat_probe(servers.ours_roundtrip, "roundtrip", n)),
                ("ncat-trio", "chronyd", "ntp", lambda: ncat_probe(servers.chronyd, "ntp", n)),
                ("chronyd -Q", "chronyd", "ntp", lambda: chrony_client(servers.chronyd, folder)),
                ("chronyd -Q", "ncat-trio", "ntp", lambda: chrony_client(servers.ours_ntp, folder)),
                ("ncat-trio", "ncat-trio", "ntp", lambda: ncat_probe(servers.ours_ntp, "ntp", n)),
            ]  # fmt: skip
            results: dict[int, list[Best]] = {i: [] for i in range(len(pairs))}
            started = time.monotonic()
            for _round in range(args.rounds):
                for index, (*_names, run) in enumerate(pairs):
                    results[index].append(run())
            elapsed = time.monotonic() - started
        finally:
            servers.stop()
    baseline = statistics.median(b.rtt_us for b in results[0])
    rows = [
        [
            "client → server",
            "proto",
            "median |offset| µs",
            "worst |offset| µs",
            "median offset µs",
            "median rtt µs",
            "rtt / C baseline",
        ]
    ]
    for index, (client, server, proto, _run) in enumerate(pairs):
        bests = results[index]
        offsets = [abs(b.offset_us) for b in bests]
        rtt = statistics.median(b.rtt_us for b in bests)
        rows.append(
            [
                f"{client} → {server}",
                proto,
                f"{statistics.median(offsets):.1f}",
                f"{max(offsets):.1f}",
                f"{statistics.median(b.offset_us for b in bests):+.1f}",
                f"{rtt:.1f}",
                f"{rtt / baseline:.2f}",
            ]
        )
    print(
        f"clock accuracy on loopback: {args.rounds} rounds, best of {n} probes per run "
        f"(chronyd -Q: its iburst samples), {elapsed:.0f} s"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

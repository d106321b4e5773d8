"""``ncat-trio toxiproxy`` benchmarks: the latency toxic's precision, and the no-toxic
throughput of an API-created proxy against the CLI relay.

1. Latency precision: over one connection through an API-created proxy to an echo
   server, N round trips of 64 bytes without a toxic (the baseline), then N with a
   ``latency`` toxic of D ms downstream (jitter 0).  Reported: configured D, the baseline
   p50, the measured round trip p50/p99, and the added delay (measured − baseline p50).
2. Throughput without toxics: SIZE bytes from a client to a discarding sink through an
   API-created proxy vs through ``ncat-trio relay`` (the same relay underneath, splice(2)
   on Linux), rounds alternated, medians reported with their ratio.

Everything on 127.0.0.1, ports 0.
Usage:  python benchmarks/bench_toxiproxy.py [--quick] [--round-trips N] [--mib N] [--rounds N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

NCAT = [sys.executable, "-m", "ncat_trio"]
_READY = re.compile(rb"listening on \S+:(\d+)")
CHUNK = 1 << 20


@contextmanager
def ncat(*args: str) -> Iterator[int]:
    """Run ``ncat-trio ARGS`` until the block ends; yields the port of its readiness line."""
    proc = subprocess.Popen([*NCAT, *args], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = _READY.search(line)
        if match is None:
            raise RuntimeError(f"{args}: {line!r}")
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()


def call(api: int, method: str, path: str, body: object = None) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", api, timeout=30)
    try:
        conn.request(method, path, None if body is None else json.dumps(body))
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data!r}")
    return json.loads(data) if data else {}


@contextmanager
def server(handle: str) -> Iterator[int]:
    """A one-thread-per-client TCP server on 127.0.0.1: ``echo`` or ``discard``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def client(conn: socket.socket) -> None:
        buffer = bytearray(CHUNK)
        with conn:
            while n := conn.recv_into(buffer):
                if handle == "echo":
                    conn.sendall(buffer[:n])

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=client, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def round_trips(port: int, count: int) -> list[float]:
    data = b"x" * 64
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            start = time.perf_counter()
            conn.sendall(data)
            got = 0
            while got < len(data):
                got += len(conn.recv(1024))
            times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_precision(count: int, delay_ms: int) -> None:
    with server("echo") as echo, ncat("toxiproxy", "--port", "0") as api:
        proxy = call(api, "POST", "/proxies",
                     {"name": "echo", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo}"})  # fmt: skip
        port = int(str(proxy["listen"]).rpartition(":")[2])
        base = round_trips(port, count)
        call(api, "POST", "/proxies/echo/toxics",
             {"type": "latency", "attributes": {"latency": delay_ms, "jitter": 0}})  # fmt: skip
        timed = round_trips(port, count)
    base50 = statistics.median(base) * 1000
    p50, p99 = percentile(timed, 50) * 1000, percentile(timed, 99) * 1000
    print(f"latency toxic {delay_ms} ms, {count} round trips of 64 B:")
    print(f"  baseline (no toxic) p50 {base50:.3f} ms, p99 {percentile(base, 99) * 1000:.3f} ms")
    print(f"  with toxic          p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    print(f"  added delay         p50 {p50 - base50:.3f} ms, p99 {p99 - base50:.3f} ms "
          f"(configured {delay_ms} ms)")  # fmt: skip


def push(port: int, size: int) -> float:
    block = bytes(CHUNK)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        sent = 0
        while sent < size:
            conn.sendall(block)
            sent += len(block)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # the relay passes the sink's close back once all has arrived
    return size / (time.perf_counter() - start)


def throughput(size: int, rounds: int) -> None:
    api_rates: list[float] = []
    cli_rates: list[float] = []
    with server("discard") as sink, ncat("toxiproxy", "--port", "0") as api:
        proxy = call(api, "POST", "/proxies",
                     {"name": "bulk", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{sink}"})  # fmt: skip
        api_port = int(str(proxy["listen"]).rpartition(":")[2])
        with ncat("relay", "127.0.0.1:0", f"127.0.0.1:{sink}") as relay_port:
            push(api_port, CHUNK * 8)  # warm up both
            push(relay_port, CHUNK * 8)
            for index in range(rounds):  # who goes first alternates too
                if index % 2:
                    cli_rates.append(push(relay_port, size))
                api_rates.append(push(api_port, size))
                if not index % 2:
                    cli_rates.append(push(relay_port, size))
    a, c = statistics.median(api_rates), statistics.median(cli_rates)
    print(f"no-toxic throughput, {size >> 20} MiB x {rounds} rounds (medians):")
    print(
        f"  API-created proxy {a / 1e9:.3f} GB/s, CLI relay {c / 1e9:.3f} GB/s, ratio {a / c:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer round trips, less data")
    parser.add_argument("--latency-ms", type=int, default=10)
    parser.add_argument("--round-trips", type=int, help="default 1000 (--quick: 200)")
    parser.add_argument("--mib", type=int, help="MiB per throughput round (1024; --quick 256)")
    parser.add_argument("--rounds", type=int, help="throughput rounds (5; --quick 3)")
    args = parser.parse_args()
    print(f"kernel {os.uname().release}")
    latency_precision(args.round_trips or (200 if args.quick else 1000), args.latency_ms)
    size = (args.mib or (256 if args.quick else 1024)) << 20
    throughput(size, args.rounds or (3 if args.quick else 5))


if __name__ == "__main__":
    main()

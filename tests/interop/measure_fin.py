"""Measure the FIN policies against real servers: the table in README, "Differences".

    .venv/bin/python -m tests.interop.measure_fin [RUNS]

For each server and each ``--shutdown`` choice (plus nc.openbsd with and without -N), the
share of a 52 MB HTTP/1.0 body that arrived (min / median / max over RUNS) and, for the
read-to-EOF server, the seconds until its answer.  Not a test: numbers for the README.
"""

from __future__ import annotations

import contextlib
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..support import NCAT
from . import servers

SIZE = 52_000_000
REQUEST = b"GET /big.bin HTTP/1.0\r\n\r\n"
POLICIES = {
    "--shutdown=now (-N)": ["--shutdown=now"],
    "--shutdown=idle (default)": [],
    "--shutdown=never": ["--shutdown=never"],
}


def body_share(cmd: list[str]) -> float:
    out = subprocess.run(cmd, input=REQUEST, capture_output=True, timeout=120, check=False)
    return len(out.stdout.partition(b"\r\n\r\n")[2]) / SIZE


def row(name: str, cmd: list[str], runs: int) -> None:
    shares = sorted(body_share(cmd) for _ in range(runs))
    print(
        f"| {name} | {shares[0]:.0%} / {statistics.median(shares):.0%} / {shares[-1]:.0%} |",
        flush=True,
    )


@contextlib.contextmanager
def site() -> Iterator[int]:
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        (tmp / "www").mkdir()
        (tmp / "www" / "big.bin").write_bytes(bytes(range(256)) * (SIZE // 256) + b"\0" * 64)
        with servers.nginx(tmp / "www", tmp) as port:
            yield port


def main(runs: int) -> None:
    print("| server, FIN policy | body received: min / median / max |\n|---|---|")
    with site() as port, tempfile.TemporaryDirectory() as tmp:
        target = ["127.0.0.1", str(port)]
        with servers.tinyproxy(Path(tmp), port) as tiny, servers.ncat_http_proxy() as ncp:
            for name, flags in POLICIES.items():
                row(f"nginx, {name}", [*NCAT, *flags, *target], runs)
                for proxy_name, proxy in (("tinyproxy", tiny), ("ncat --proxy-type http", ncp)):
                    cmd = [*NCAT, "connect", *flags, "--proxy", f"127.0.0.1:{proxy}", *target]
                    row(f"{proxy_name} → nginx, {name}", cmd, runs)
        row("nginx, nc.openbsd", ["nc.openbsd", *target], runs)
        row("nginx, nc.openbsd -N", ["nc.openbsd", "-N", *target], runs)
    print("\n| read-to-EOF server (socat EXEC:sha256sum), 10 MB up | answer after (s) |")
    print("|---|---|")
    data = bytes(range(250)) * 40_000
    with servers.socat_sha256() as port:
        for name, flags in POLICIES.items():
            took = []
            for _ in range(runs):
                start = time.monotonic()
                try:
                    out = subprocess.run(
                        [*NCAT, *flags, "127.0.0.1", str(port)],
                        input=data, capture_output=True, timeout=5, check=False,
                    )  # fmt: skip
                except subprocess.TimeoutExpired:
                    took.append(float("inf"))
                    continue
                assert out.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
                took.append(time.monotonic() - start)
            median = statistics.median(took)
            shown = (
                "no answer (waits for ever; 5 s cut)" if median == float("inf") else f"{median:.2f}"
            )
            print(f"| {name} | {shown} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

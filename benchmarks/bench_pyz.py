"""Start-up of the single-file zipapp against the installed entry point, same run.

Rows (each command run ROUNDS times, interleaved, median wall time):

  python3 -I ncat-trio.pyz --version      the zipapp (imports from inside the archive)
  ncat-trio --version                      the venv's console script
  python3 -c 'import trio'                 the floor: Python plus Trio
  … connect (refused)                      a whole short run: parse, resolve, connect, exit 1

The zipapp is built first (tools/build_pyz.py) unless --pyz names one.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, free_port, table

VENV_BIN = Path(sys.executable).parent
#: The interpreter the venv was made from: the zipapp runs on a Python without the venv.
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    parser.add_argument("--pyz", type=Path, help="an existing ncat-trio.pyz")
    args = parser.parse_args()
    rounds = 5 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        pyz = args.pyz or Path(tmp) / "ncat-trio.pyz"
        if args.pyz is None:
            subprocess.run(
                [sys.executable, str(ROOT / "tools" / "build_pyz.py"), "--output", str(pyz)],
                check=True, capture_output=True,
            )  # fmt: skip
        closed = str(free_port())
        cases = {
            "python3 -I ncat-trio.pyz --version": [BASE_PYTHON, "-I", str(pyz), "--version"],
            "ncat-trio --version (venv entry point)": [str(VENV_BIN / "ncat-trio"), "--version"],
            "python3 -c 'import trio'": [sys.executable, "-c", "import trio"],
            "python3 -I ncat-trio.pyz 127.0.0.1 PORT (refused)": [
                BASE_PYTHON, "-I", str(pyz), "127.0.0.1", closed,
            ],
            "ncat-trio 127.0.0.1 PORT (refused)": [str(VENV_BIN / "ncat-trio"), "127.0.0.1", closed],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):  # interleaved, so drift hits every row alike
            for name, argv in cases.items():
                times[name].append(timed(argv))
        size = pyz.stat().st_size
    base = statistics.median(times["python3 -c 'import trio'"])
    rows = [["command", "median ms", "min ms", "x import trio"]]
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(
            [name, f"{median * 1000:.0f}", f"{min(values) * 1000:.0f}", f"{median / base:.2f}"]
        )
    print(
        f"### zipapp start-up ({rounds} interleaved runs each; ncat-trio.pyz "
        f"{size / 2**20:.1f} MiB; Linux {platform.release()}, Python {platform.python_version()})\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

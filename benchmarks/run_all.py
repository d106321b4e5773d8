"""Run every benchmark and write benchmarks/RESULTS.md (figures, command, machine, date).

Usage: python benchmarks/run_all.py [--quick] [--only NAME ...]
Each ``bench_*.py`` prints its own tables with same-run ratios against the real peers;
this script only runs them one after another (never in parallel: they would skew each
other on a 2-core machine) and collects their output.  Every section names the kernel,
CPU and core count it ran on.

``--quick`` (under 2 minutes) runs only the ratios that say whether the fast paths hold
on this machine: ``bench_netcat.py --quick`` (pipe → TCP → pipe against nc.openbsd and
socat, and our sender into their receivers) and ``bench_ttcp.py --quick``; it writes
benchmarks/RESULTS-quick.md, leaving RESULTS.md to full runs.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
QUICK = ("bench_netcat", "bench_ttcp")  # --quick without --only: < 2 minutes together


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", nargs="*", default=None, help="benchmark names, e.g. netcat ttcp")
    args = ap.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.quick and not args.only:
        scripts = [s for s in scripts if s.stem in QUICK]
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + " ".join(args.only)
    sections = []
    failed = 0
    for script in scripts:
        argv = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"== {script.name}", flush=True)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        print(proc.stdout, end="", flush=True)
        if proc.returncode:
            failed += 1
            print(proc.stderr, file=sys.stderr)
        body = proc.stdout.strip() or "(no output)"
        status = (
            ""
            if proc.returncode == 0
            else f"\n\n**exit {proc.returncode}**: {proc.stderr.strip()[-500:]}"
        )
        sections.append(
            f"## {script.stem.removeprefix('bench_')}\n\n`python benchmarks/{script.name}"
            f"{' --quick' if args.quick else ''}` on {machine()}, "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC\n\n{body}{status}\n"
        )
    header = (
        "# Benchmark results\n\n"
        f"Command: `{command}` (or `just bench`)  \n"
        f"Machine: {machine()}  \n"
        f"Date: {datetime.date.today().isoformat()}\n\n"
        "Every figure is a median over alternating rounds, and every ratio compares tools measured "
        "in the same run on the same machine. The machine is a shared 2-core VM: read the ratios, "
        "not the absolute GB/s.\n\n"
    )
    results = HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    results.write_text(header + "\n".join(sections))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

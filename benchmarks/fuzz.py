"""Fuzz every decoder and parser at length: hypothesis (100k+ inputs), then atheris.

The targets and the rule ("only the documented error types may escape") live in
``tests/proto/test_fuzz.py``; CI runs them with a quick hypothesis profile.  This script runs
the same hypothesis tests under the ``fuzz`` profile, counting every input each target
was given, then (if ``atheris`` is installed: ``pip install -e '.[fuzz]'``, which ``just
fuzz`` does; PyPI has wheels for Linux x86-64) a coverage-guided libFuzzer run over all
targets at once, the first byte choosing the target.  Without atheris the hypothesis
run stands alone and the script says so.

    python benchmarks/fuzz.py                      # ~280k hypothesis inputs + 100k atheris runs
    python benchmarks/fuzz.py --examples 2000 --atheris-runs 0   # quick

Exit status 0 when no target raised an undocumented error.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_hypothesis(examples: int) -> tuple[dict[str, int], list[str], float]:
    os.environ["NCAT_FUZZ_PROFILE"] = "fuzz"
    os.environ["NCAT_FUZZ_EXAMPLES"] = str(examples)
    sys.path.insert(0, str(ROOT))
    from tests.proto import test_fuzz  # the profile is read at import

    failures = []
    started = time.perf_counter()
    for test in (
        test_fuzz.test_garbage_raises_only_documented_errors,
        test_fuzz.test_mutated_messages_raise_only_documented_errors,
        test_fuzz.test_parsers_take_any_text,
    ):
        try:
            test()
        except Exception as exc:  # a falsifying example: report it, go on
            failures.append(f"{test.__name__}: {type(exc).__name__}: {exc}")
    return dict(test_fuzz.TRIED), failures, time.perf_counter() - started


def atheris_worker(runs: int) -> None:
    """Run inside a child process: libFuzzer exits the process when it is done."""
    import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["ncat_trio"]):
        from tests.proto import test_fuzz
    names = sorted(test_fuzz.TARGETS)

    def one_input(data: bytes) -> None:
        if not data:
            return
        test_fuzz.run_target(names[data[0] % len(names)], data[1:])

    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=2048", "-seed=1"], one_input)
    atheris.Fuzz()


def run_atheris(runs: int) -> tuple[str, int | None, float]:
    """(status line, runs done or None, seconds)."""
    try:
        import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
    except ImportError:
        return "atheris is not installed (pip install -e '.[fuzz]'): hypothesis only", None, 0.0
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--atheris-worker", str(runs)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - started
    match = re.search(r"Done (\d+) runs", done.stderr)
    if done.returncode != 0 or match is None:
        tail = "\n".join(done.stderr.splitlines()[-25:])
        return f"atheris FAILED (exit {done.returncode}):\n{tail}", None, seconds
    return "atheris: no undocumented error", int(match[1]), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=40000, help="hypothesis examples per test")
    parser.add_argument("--atheris-runs", type=int, default=100_000)
    parser.add_argument("--atheris-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.atheris_worker is not None:
        atheris_worker(args.atheris_worker)
        return 0
    tried, failures, seconds = run_hypothesis(args.examples)
    total = sum(tried.values())
    from tests.proto.test_fuzz import PARSERS

    decoders = sum(n for name, n in tried.items() if name not in PARSERS)
    print(
        f"hypothesis: {total} inputs in {seconds:.1f} s across {len(tried)} targets "
        f"({decoders} to the wire-format decoders)"
    )
    for name, count in sorted(tried.items()):
        print(f"  {name:<48} {count:>8}")
    for failure in failures:
        print(f"  FAILED {failure}")
    ok = not failures
    if args.atheris_runs:
        status, runs, seconds = run_atheris(args.atheris_runs)
        if runs is not None:
            print(f"atheris: {runs} runs in {seconds:.1f} s over the same targets; {status}")
        else:
            print(status)
            ok = ok and status.startswith("atheris is not installed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

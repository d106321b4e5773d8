"""The port scan's argv fast path (cli/scan_options.from_argv: no typer, no Trio) against
typer's ``scan`` command: one meaning for every line, or the fast path steps aside.

A second parser is a copy that can drift (issue 17); this walks random scan lines built
from every flag the scan has, the nc spellings people type and malformed values, and
requires the same options and exit code both ways.  Nothing is scanned: ``scan_main``
is replaced by a recorder.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncat_trio.cli import root, run_cli
from ncat_trio.cli.argv import spelled_out
from ncat_trio.cli.scan_options import from_argv
from ncat_trio.modes import scan as scan_mode
from ncat_trio.modes.scan import ScanOptions

FLAGS = ["-v", "--verbose", "-n", "--numeric", "-4", "-6", "--json", "-vn", "-4v", "-zv"]
VALUED = ["-w", "--timeout", "--concurrency", "--json-file"]
VALUES = ["1", "0.5", "100ms", "3", "0", "-1", "soon", "10001", "20", "/dev/null", ""]
WORDS = ["127.0.0.1", "::1", "localhost", "22", "80,443", "8000-8003", "0", "70000", "a-b"]
EXTRA = ["--", "-u", "-p", "-x", "--bogus", "-w5", "--timeout=2", "--concurrency=7", "-"]


def token() -> st.SearchStrategy[list[str]]:
    valued = st.tuples(st.sampled_from(VALUED), st.sampled_from(VALUES)).map(list)
    equals = st.tuples(st.sampled_from(VALUED[1:]), st.sampled_from(VALUES)).map(
        lambda pair: [f"{pair[0]}={pair[1]}"]
    )
    single = st.sampled_from(FLAGS + WORDS + EXTRA).map(lambda word: [word])
    return st.one_of(single, valued, equals)


def record(monkeypatch: pytest.MonkeyPatch) -> list[ScanOptions]:
    calls: list[ScanOptions] = []

    def fake(options: ScanOptions) -> int:
        calls.append(options)
        return 0

    monkeypatch.setattr(scan_mode, "scan_main", fake)
    return calls


@settings(max_examples=400, deadline=None)
@given(
    st.lists(token(), max_size=6).map(lambda parts: [w for part in parts for w in part]),
    st.booleans(),
)
def test_the_fast_path_and_typer_agree(words: list[str], nc_spelling: bool) -> None:
    argv = ["-z", *words] if nc_spelling else ["scan", *words]
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = record(monkeypatch)
        fast_code = run_cli(argv)
        fast = list(calls)
        calls.clear()
        typer_code = root.run_cli(argv)  # typer alone, as before the fast path
        slow = list(calls)
    assert fast_code == typer_code, argv
    assert fast == slow, argv
    if from_argv(spelled_out(argv)) is not None:  # the fast path took it: it ran
        assert len(fast) == 1, argv


def test_the_fast_path_takes_the_lines_a_z_loop_types() -> None:
    """The lines a shell loop types are parsed without typer (else the start-up gain is
    gone without a test noticing)."""
    for argv in (
        ["-z", "127.0.0.1", "5432"],
        ["-zv", "-w", "1", "db.example", "5432"],
        ["-z", "-n", "-w2", "::1", "80,443"],
        ["scan", "--concurrency", "8", "--timeout=0.5", "10.0.0.1", "1-1024"],
    ):
        assert from_argv(spelled_out(argv)) is not None, argv

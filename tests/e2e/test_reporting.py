"""--progress, --stats, --json and --rate on connect/listen, end to end.

Stdout must be byte-identical with and without the reporting flags: they write to
stderr (or a file) only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ncat_trio import report_schema
from ncat_trio.report_schema import validate
from tests.support import NCAT, spawn_listener

PAYLOAD = os.urandom(1 << 20)


def check_schema(record: dict[str, object]) -> None:
    """The documented schema (ncat_trio/report_schema.py, README "JSON summaries")."""
    assert validate(record, report_schema.NETCAT) == []


def transfer(tmp_path: Path, *flags: str) -> tuple[bytes, bytes, bytes]:
    """ncat-trio listen (sending PAYLOAD) ← ncat-trio connect FLAGS; returns (stdout, stderr, listener stderr)."""
    src = tmp_path / "payload"
    src.write_bytes(PAYLOAD)
    with src.open("rb") as stdin:
        listener, port = spawn_listener(["listen", "127.0.0.1", "0"], stdin=stdin)
    client = subprocess.run(
        [*NCAT, "127.0.0.1", str(port), "-d", *flags], capture_output=True, timeout=60, check=False
    )
    _out, listener_err = listener.communicate(timeout=30)
    assert listener.returncode == 0, listener_err
    assert client.returncode == 0, client.stderr
    return client.stdout, client.stderr, listener_err


@pytest.mark.parametrize(
    "flags",
    [["-P"], ["--progress=auto"], ["--stats"], ["--json"], ["--no-zerocopy", "-P", "--stats"]],
)
def test_stdout_is_identical_with_reporting_flags(tmp_path: Path, flags: list[str]) -> None:
    out, err, _ = transfer(tmp_path, *flags)
    assert hashlib.sha256(out).digest() == hashlib.sha256(PAYLOAD).digest()
    if "--stats" in flags:
        assert b"received 1.0 MiB" in err
    if flags == ["--progress=auto"]:
        assert err == b""  # stderr is not a terminal here


def test_json_summary_on_stderr_matches_the_schema(tmp_path: Path) -> None:
    _out, err, _ = transfer(tmp_path, "--json")
    record = json.loads(err.decode().strip().splitlines()[-1])
    check_schema(record)
    assert record["mode"] == "connect"
    assert record["bytes_received"] == len(PAYLOAD)
    assert record["ended"] == "peer closed"
    assert record["exit_code"] == 0


def test_json_and_json_file_together_write_both(tmp_path: Path) -> None:
    """The one rule: --json-file adds the file, it no longer replaces --json's stream
    (changed deliberately: connect/listen used to write only the file)."""
    summary = tmp_path / "summary.json"
    out, err, _ = transfer(tmp_path, "--json", "--json-file", str(summary))
    assert hashlib.sha256(out).digest() == hashlib.sha256(PAYLOAD).digest()  # stdout: data only
    on_stderr = json.loads(err.decode().strip().splitlines()[-1])
    check_schema(on_stderr)
    assert [json.loads(line) for line in summary.read_text().splitlines()] == [on_stderr]
    assert (on_stderr["mode"], on_stderr["peer"].startswith("127.0.0.1:")) == ("connect", True)


def test_json_file_records_a_failure(tmp_path: Path) -> None:
    out_file = tmp_path / "summary.json"
    proc = subprocess.run(
        [*NCAT, "127.0.0.1", "1", "--json-file", str(out_file)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1  # refused: no session, so no summary either
    assert not out_file.exists()
    listener, port = spawn_listener(["listen", "127.0.0.1", "0", "--json-file", str(out_file)])
    client = subprocess.run(
        [*NCAT, "127.0.0.1", str(port)], input=b"hi", capture_output=True, timeout=30, check=False
    )
    listener.communicate(timeout=30)
    assert client.returncode == 0
    record = json.loads(out_file.read_text())
    check_schema(record)
    assert (record["mode"], record["bytes_received"], record["exit_code"]) == ("listen", 2, 0)


def test_rate_limit_paces_the_upload(tmp_path: Path) -> None:
    """512 KiB at --rate 1M takes about half a second (real time: lenient bounds)."""
    data = tmp_path / "data"
    data.write_bytes(os.urandom(512 * 1024))
    listener, port = spawn_listener(["listen", "127.0.0.1", "0", "--recv-only"])
    started = time.monotonic()
    with data.open("rb") as stdin:
        client = subprocess.run(
            [*NCAT, "127.0.0.1", str(port), "--rate", "1M"],
            stdin=stdin,
            capture_output=True,
            timeout=30,
            check=False,
        )
    elapsed = time.monotonic() - started
    out, _ = listener.communicate(timeout=30)
    assert client.returncode == 0
    assert out == data.read_bytes()
    assert 0.35 < elapsed < 5.0


@pytest.mark.parametrize("bad", ["0", "fast", "-5"])
def test_bad_rate_is_a_usage_error(bad: str) -> None:
    proc = subprocess.run(
        [*NCAT, "127.0.0.1", "9", f"--rate={bad}"], capture_output=True, timeout=30, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.count(b"\n") == 1

"""Every mode's ``--json`` / ``--json-file`` object matches its documented schema.

The schemas live in ``ncat_trio/report_schema.py``; the field tables of docs/json.md are rendered
from them (a test here keeps the two in step).  Each mode is run for real and what it
wrote is validated; a ``--json-file`` that can't be written is refused before anything
touches the network.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from ncat_trio import report_schema
from ncat_trio.cli import run_cli
from ncat_trio.errors import LocalIOError
from ncat_trio.json_summary import Summary
from ncat_trio.report_schema import schema_for, validate
from tests.relay_ends import connect, echo, receive_all, relay_process, start_server
from tests.support import NCAT, finish, ncat_server

JSON_DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"

GOOD_NETCAT = {
    "mode": "connect", "peer": "127.0.0.1:9000", "bytes_sent": 4, "bytes_received": 0,
    "seconds": 0.5, "stdin_eof": True, "peer_eof": True, "ended": "peer closed",
    "exit_code": 0, "error": None,
}  # fmt: skip


def records(path: Path) -> list[dict[str, Any]]:
    """The objects in a --json-file, each checked against its mode's schema."""
    lines = path.read_text().splitlines()
    found = [json.loads(line) for line in lines]
    for record in found:
        assert validate(record, schema_for(record)) == [], record
    return found


# --- the validator and the schemas themselves ---------------------------------------


def test_a_conforming_object_passes() -> None:
    assert validate(GOOD_NETCAT, report_schema.NETCAT) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"bytes_sent": "4"}, "is not integer"),
        ({"bytes_sent": True}, "is not integer"),  # JSON true is not a number
        ({"bytes_sent": -1}, "is below 0"),
        ({"seconds": None}, "is not number"),
        ({"ended": "finished"}, "is not one of"),
        ({"mode": "relay"}, "is not one of"),
        ({"exit_code": 1.5}, "is not integer or null"),
        ({"surprise": 1}, "unexpected field 'surprise'"),
    ],
)
def test_the_validator_names_each_fault(change: dict[str, object], complaint: str) -> None:
    problems = validate({**GOOD_NETCAT, **change}, report_schema.NETCAT)
    assert len(problems) == 1
    assert complaint in problems[0]


def test_a_missing_field_and_a_bad_nested_item_are_found() -> None:
    record = {k: v for k, v in GOOD_NETCAT.items() if k != "peer"}
    assert validate(record, report_schema.NETCAT) == ["$: 'peer' is missing"]
    sample = {"probe": 0, "rtt_s": 1e-4, "offset_s": "0"}
    problems = validate(
        [sample], {"type": "array", "items": report_schema.CLOCK_PROBE["properties"]["best"]}
    )
    assert problems == ["$[0].offset_s: '0' is not number"]


@pytest.mark.parametrize(("heading", "schema"), report_schema.SECTIONS)
def test_every_schema_is_closed_and_documents_every_field(
    heading: str, schema: dict[str, Any]
) -> None:
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    assert "mode" in schema["properties"], heading  # one --json-file can mix modes
    for name, field in schema["properties"].items():
        assert field.get("description"), name
        assert field.get("type"), name


def test_doc_tables_are_rendered_from_the_schemas() -> None:
    """docs/json.md ("JSON summaries") holds exactly ``report_schema.markdown()``."""
    assert report_schema.markdown() in JSON_DOC.read_text()


# --- the one builder (report_schema.record) and the one writer (json_summary.Summary) --


def test_record_fills_the_constants_and_keeps_the_documented_order() -> None:
    fields = {k: v for k, v in GOOD_NETCAT.items() if k != "mode"}
    built = report_schema.record(
        report_schema.NETCAT, **dict(reversed(fields.items())), mode="listen"
    )
    assert list(built) == list(report_schema.NETCAT["properties"])
    assert built == {**GOOD_NETCAT, "mode": "listen"}
    scan = report_schema.record(
        report_schema.SCAN, host="h", address="::1", ports=0, open=[], closed=[], filtered=[],
        concurrency=1, timeout=1.0, seconds=0.0, exit_code=1,
    )  # fmt: skip
    assert scan["mode"] == "scan"  # the const, not parsed from anything
    assert validate(scan, report_schema.SCAN) == []


def test_record_refuses_a_missing_or_unknown_field() -> None:
    fields = {k: v for k, v in GOOD_NETCAT.items() if k != "peer"}
    with pytest.raises(ValueError, match=r"missing \['peer'\], unknown \['command'\]"):
        report_schema.record(report_schema.NETCAT, **fields, command="connect")


def test_summary_writes_the_file_then_the_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.json"
    Summary(json=True, json_file=str(out)).write(GOOD_NETCAT)
    Summary(json_file=str(out)).write({"n": 2})  # no --json: the file only
    captured = capsys.readouterr()
    assert captured.out == json.dumps(GOOD_NETCAT) + "\n"
    assert captured.err == ""
    assert out.read_text().splitlines() == [json.dumps(GOOD_NETCAT), '{"n": 2}']
    assert not Summary().wanted
    assert Summary(json_file=str(out)).wanted
    assert Summary(json=True).wanted


def test_summary_at_the_end_reports_a_failed_file_and_does_not_raise(tmp_path: Path) -> None:
    said: list[str] = []
    gone = tmp_path / "gone" / "s.json"
    Summary(json_file=str(gone)).write_at_end(GOOD_NETCAT, said.append)
    assert said == [f"--json-file {gone}: no such file or directory"]
    with pytest.raises(LocalIOError, match="no such file or directory"):
        Summary(json_file=str(gone)).write(GOOD_NETCAT)


def test_a_stdout_that_is_gone_is_local_io_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gone(io.StringIO):
        def write(self, _text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Gone())
    with pytest.raises(LocalIOError) as caught:
        Summary(json=True).write(GOOD_NETCAT)
    assert str(caught.value) == "stdout: broken pipe"


# --- --json-file that can't be written: exit 5 before any network activity ----------

COMMANDS = [
    ["connect", "127.0.0.1", "9"],
    ["listen", "127.0.0.1", "0"],
    ["relay", "127.0.0.1:0", "127.0.0.1:9"],
    ["scan", "127.0.0.1", "9"],
    ["ttcp", "receive", "-p", "0"],
    ["ttcp", "transmit", "127.0.0.1", "-p", "9"],
    ["clock", "probe", "127.0.0.1", "-p", "9"],
    ["send", "127.0.0.1", "9", "-"],
    ["receive", "127.0.0.1", "0"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("where", ["no such directory", "is a directory"])
def test_unwritable_json_file_is_exit_5_with_one_line(
    command: list[str], where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "missing" / "out.json" if where == "no such directory" else tmp_path
    assert run_cli([*command, "--json-file", str(bad)]) == 5
    err = capsys.readouterr().err
    assert err == f"ncat-trio: --json-file {bad}: {where}\n"
    assert not (tmp_path / "missing").exists()


def test_unwritable_json_file_never_connects(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        proc = subprocess.run(
            [*NCAT, "127.0.0.1", str(port), "--json-file", str(tmp_path / "no" / "f")],
            input=b"x", capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert proc.returncode == 5, proc.stderr
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody ever connected
            server.accept()


# --- each mode, for real --------------------------------------------------------------


def test_listen_and_connect_share_one_file(tmp_path: Path) -> None:
    out = tmp_path / "all.json"
    with ncat_server(["listen", "127.0.0.1", "0", "--json-file", str(out)]) as (listener, port):
        client = subprocess.run(
            [*NCAT, "127.0.0.1", str(port), "--json-file", str(out)],
            input=b"hello", capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        assert finish(listener) == 0
    by_mode = {r["mode"]: r for r in records(out)}
    assert by_mode["connect"]["bytes_sent"] == by_mode["listen"]["bytes_received"] == 5


def test_scan_json_on_stdout_is_the_json_file_object(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    with socket.socket() as listening, socket.socket() as refusing:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        refusing.bind(("127.0.0.1", 0))  # bound, not listening: refuses
        open_port, closed_port = listening.getsockname()[1], refusing.getsockname()[1]
        proc = subprocess.run(
            [*NCAT, "scan", "127.0.0.1", f"{open_port},{closed_port}", "--json",
             "--json-file", str(out)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (record,) = records(out)
    assert json.loads(proc.stdout) == record  # --json: one object, no `open` lines
    assert proc.stdout.count(b"\n") == 1
    assert (record["open"], record["closed"], record["filtered"]) == (
        [open_port],
        [closed_port],
        [],
    )
    assert (record["host"], record["address"], record["ports"]) == ("127.0.0.1", "127.0.0.1", 2)


def test_scan_json_file_keeps_the_lines_and_records_none_open(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        port = refusing.getsockname()[1]
        proc = subprocess.run(
            [*NCAT, "-z", "127.0.0.1", str(port), "--json-file", str(out)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (1, b"")
    (record,) = records(out)
    assert (record["open"], record["closed"], record["exit_code"]) == ([], [port], 1)


def test_ttcp_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "ttcp.json"
    receive = ["ttcp", "receive", "-p", "0", "-b", "127.0.0.1", "--json-file", str(out)]
    with ncat_server(receive) as (receiver, port):
        sent = subprocess.run(
            [*NCAT, "ttcp", "transmit", "127.0.0.1", "-p", str(port), "-l", "1K", "-n", "10",
             "--json-file", str(out)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert b"MiB/s" in sent.stdout  # without --json the lines stay
        assert finish(receiver) == 0
    roles = {r["role"]: r for r in records(out)}
    assert roles["transmit"]["bytes"] == roles["receive"]["bytes"] == 10240


def test_clock_probe(tmp_path: Path) -> None:
    out = tmp_path / "clock.json"
    with ncat_server(["clock", "serve", "-p", "0", "-b", "127.0.0.1"]) as (_server, port):
        probe = subprocess.run(
            [*NCAT, "clock", "probe", "127.0.0.1", "-p", str(port), "-c", "2", "--interval", "0",
             "--json", "--json-file", str(out)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    (record,) = records(out)
    assert json.loads(probe.stdout) == record
    assert (record["mode"], record["probes"], record["replies"]) == ("clock", 2, 2)


def test_send_and_receive_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "transfer.json"
    data = tmp_path / "data.bin"
    data.write_bytes(b"0123456789" * 1000)
    receive = ["receive", "127.0.0.1", "0", "-o", "-", "--json-file", str(out)]
    with ncat_server(receive) as (receiver, port):
        sent = subprocess.run(
            [*NCAT, "send", "127.0.0.1", str(port), str(data), "--json", "--json-file", str(out)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        got, _ = receiver.communicate(timeout=30)
        assert receiver.returncode == 0
    assert got == data.read_bytes()  # stdout still carries only the data
    modes = {r["mode"]: r for r in records(out)}
    assert json.loads(sent.stdout) == modes["send"]
    assert modes["receive"]["path"] is None
    assert modes["send"]["sha256"] == modes["receive"]["sha256"]


async def _one_exchange(port: int) -> bytes:
    stream = await connect(port)
    async with stream:
        await stream.send_all(b"ping")
        await stream.send_eof()
        return await receive_all(stream)


async def test_relay_summary_after_sigterm_drain(tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            target = await start_server(nursery, echo)
            args = ["-v", "--json-file", str(out), "127.0.0.1:0", f"127.0.0.1:{target}"]
            async with relay_process(*args) as relay:
                assert await _one_exchange(relay.port) == b"ping"
                await relay.line_starting("ncat-trio: 127.0.0.1:")  # its -v line: it ended
                relay.signal(signal.SIGTERM)
                assert await relay.process.wait() == 143
            nursery.cancel_scope.cancel()
    (record,) = records(out)
    assert (record["ended"], record["exit_code"], record["worker"]) == ("drained", 143, None)
    assert (record["accepted"], record["connections"], record["endings"]) == (1, 1, {"closed": 1})
    assert (record["bytes_up"], record["bytes_down"]) == (4, 4)
    assert record["targets"] == [f"127.0.0.1:{target}"]


def test_relay_json_on_stdout_after_sigint() -> None:
    """The one rule: --json is stdout where stdout is not the data (relay's stderr is its
    log).  Changed deliberately: relay's object used to go to stderr."""
    with ncat_server(["relay", "--json", "127.0.0.1:0", "127.0.0.1:9"]) as (relay, port):
        relay.send_signal(signal.SIGINT)
        out, err = relay.communicate(timeout=30)
        assert relay.returncode == 130, err
    record = json.loads(out)
    assert out.count(b"\n") == 1
    assert b"{" not in err  # the summary is not in the log
    assert validate(record, report_schema.RELAY) == []
    assert (record["ended"], record["exit_code"], record["accepted"]) == ("cancelled", None, 0)
    assert record["listen"] == f"127.0.0.1:{port}"


def test_relay_workers_each_write_one_whole_line_on_stdout() -> None:
    args = ["relay", "--workers", "2", "--json", "127.0.0.1:0", "127.0.0.1:9"]
    with ncat_server(args) as (relay, port):
        relay.send_signal(signal.SIGTERM)
        out, err = relay.communicate(timeout=30)
        assert relay.returncode == 143, err
    found = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["worker"] for r in found) == [1, 2], out
    for record in found:
        assert validate(record, report_schema.RELAY) == []
        assert (record["listen"], record["ended"]) == (f"127.0.0.1:{port}", "drained")


def test_relay_summary_into_a_gone_stdout_keeps_the_exit_code() -> None:
    """At the end of a service the summary is reported, never fatal: 143 stays 143."""
    reader, writer = os.pipe()
    os.close(reader)  # stdout's reader is gone before the summary is written
    try:
        with ncat_server(["relay", "--json", "127.0.0.1:0", "127.0.0.1:9"], stdout=writer) as (
            relay,
            _port,
        ):
            relay.send_signal(signal.SIGTERM)
            _out, err = relay.communicate(timeout=30)
            assert relay.returncode == 143, err
    finally:
        os.close(writer)
    assert err.decode().splitlines()[-1] == "ncat-trio: stdout: broken pipe"

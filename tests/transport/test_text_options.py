"""``-C/--crlf`` (LF → CRLF on send) and ``-o/--output`` (hex dump of both directions)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import trio
import trio.testing

from ncat_trio.transport.crlf import CrlfReceiveStream, CrlfTranslator
from ncat_trio.transport.hexdump import RECEIVED, SENT, HexDumpFile, TappedStream, format_lines
from ncat_trio.transport.zerocopy import classify

from ..support import NCAT, ServeOnce, one_error_line, receive_all

# --- CRLF -----------------------------------------------------------------------------


def test_crlf_translates_bare_line_feeds_only() -> None:
    assert CrlfTranslator().translate(b"a\nb\r\nc\n\n") == b"a\r\nb\r\nc\r\n\r\n"
    assert CrlfTranslator().translate(b"") == b""
    assert CrlfTranslator().translate(b"no newline") == b"no newline"


def test_crlf_remembers_a_cr_at_the_end_of_a_chunk() -> None:
    translator = CrlfTranslator()
    assert translator.translate(b"line\r") == b"line\r"
    assert translator.translate(b"\nnext\n") == b"\nnext\r\n"  # not \r\r\n
    assert translator.translate(b"x") == b"x"
    assert translator.translate(b"\n") == b"\r\n"


def test_every_split_gives_the_same_bytes() -> None:
    text = b"GET / HTTP/1.0\nHost: x\r\n\nbody\r\r\n"
    whole = CrlfTranslator().translate(text)
    for cut in range(len(text) + 1):
        translator = CrlfTranslator()
        assert translator.translate(text[:cut]) + translator.translate(text[cut:]) == whole


# --- hex dump --------------------------------------------------------------------------


def test_hex_dump_lines_follow_ncat_layout_with_a_direction_column() -> None:
    lines = format_lines(SENT, 0, b"hello from server, this is a longer line\n")
    assert lines == [
        "> 00000000  68 65 6c 6c 6f 20 66 72  6f 6d 20 73 65 72 76 65  hello.from.serve",
        "> 00000010  72 2c 20 74 68 69 73 20  69 73 20 61 20 6c 6f 6e  r,.this.is.a.lon",
        "> 00000020  67 65 72 20 6c 69 6e 65  0a                       ger.line.",
    ]
    assert format_lines(RECEIVED, 0x30, b"\x00\xff~") == [
        "< 00000030  00 ff 7e                                          ..~"
    ]


async def test_tapped_stream_records_both_directions_with_running_offsets(tmp_path: Path) -> None:
    path = tmp_path / "dump"
    left, right = trio.testing.memory_stream_pair()
    tapped = TappedStream(left, HexDumpFile(str(path)))
    with trio.fail_after(5):
        await tapped.send_all(b"abc")
        await tapped.send_all(b"defghijklmnopqrstu")
        assert await right.receive_some() == b"abcdefghijklmnopqrstu"
        await right.send_all(b"xy")
        assert await tapped.receive_some() == b"xy"
        await tapped.aclose()
    assert path.read_text().splitlines() == [
        "> 00000000  61 62 63" + " " * 42 + "abc",
        "> 00000003  64 65 66 67 68 69 6a 6b  6c 6d 6e 6f 70 71 72 73  defghijklmnopqrs",
        "> 00000013  74 75" + " " * 45 + "tu",
        "< 00000000  78 79" + " " * 45 + "xy",
    ]


async def test_text_streams_never_take_the_zero_copy_path(tmp_path: Path) -> None:
    left, _ = trio.testing.memory_stream_pair()
    with trio.socket.socket() as sock:
        stream = trio.SocketStream(sock)
        assert classify(stream) is not None  # the bare socket would be spliced
        dump = HexDumpFile(str(tmp_path / "d"))
        assert classify(TappedStream(stream, dump)) is None
        dump.close()
    assert classify(CrlfReceiveStream(left)) is None


# --- end to end -------------------------------------------------------------------------


def echo_upper(conn: socket.socket) -> bytes:
    request = receive_all(conn)
    conn.sendall(request.upper())
    return request


def run(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*NCAT, *args], input=data, capture_output=True, timeout=30, check=False)


def test_crlf_on_the_wire() -> None:
    with ServeOnce(echo_upper) as server:
        done = run(["connect", "-C", "127.0.0.1", str(server.port)], b"HELO x\nQUIT\n")
        assert server.result() == b"HELO x\r\nQUIT\r\n"
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == b"HELO X\r\nQUIT\r\n"  # what arrives is not translated


def test_output_dumps_both_directions_and_append_keeps_the_old(tmp_path: Path) -> None:
    dump = tmp_path / "session.hex"
    with ServeOnce(echo_upper) as server:
        done = run(["connect", "-o", str(dump), "127.0.0.1", str(server.port)], b"hi\n")
        server.result()
    assert done.returncode == 0, done.stderr
    first = ["> 00000000  68 69 0a" + " " * 42 + "hi.", "< 00000000  48 49 0a" + " " * 42 + "HI."]
    assert dump.read_text().splitlines() == first
    with ServeOnce(echo_upper) as server:
        again = run(
            ["connect", "-o", str(dump), "--append-output", "127.0.0.1", str(server.port)], b"hi\n"
        )
        server.result()
    assert again.returncode == 0, again.stderr
    assert dump.read_text().splitlines() == first + first


def test_a_megabyte_through_the_dump_arrives_whole(tmp_path: Path) -> None:
    payload = os.urandom(1 << 20)
    dump = tmp_path / "big.hex"
    with ServeOnce(receive_all) as server:
        done = run(["connect", "-o", str(dump), "127.0.0.1", str(server.port)], payload)
        assert server.result() == payload
    assert done.returncode == 0, done.stderr
    with dump.open() as lines:
        assert sum(1 for _ in lines) == len(payload) // 16


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["-o", "/nonexistent/dir/dump"], 5),
        (["--append-output"], 2),
    ],
    ids=["unwritable", "append-without-output"],
)
def test_bad_output_flags(args: list[str], code: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        probe.listen(1)
        port = probe.getsockname()[1]
        done = run(["connect", *args, "127.0.0.1", str(port)], b"")
    assert done.returncode == code
    one_error_line(done.stderr)

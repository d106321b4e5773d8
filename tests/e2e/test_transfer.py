"""send / receive: a file arrives whole and verified, or both ends say it did not.

In-process tests run both sessions over ``trio.testing`` memory streams; end-to-end
tests run ``python -m ncat_trio send|receive`` with port 0 and the readiness line.
Faults are made by a tiny proxy written here (flip a byte, cut the connection) and
by a fake receiver that never acknowledges.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import socket
import subprocess
import threading
from collections.abc import Awaitable
from pathlib import Path

import pytest
import trio
import trio.testing

from ncat_trio.cli import run_cli
from ncat_trio.errors import ExitCode, LocalIOError, NcatError, RemoteProtocolError
from ncat_trio.modes import transfer
from ncat_trio.modes.transfer_session import (
    FileSource,
    ReceiveTarget,
    Source,
    StreamSource,
    TransferResult,
    receive_session,
    send_session,
)
from ncat_trio.proto import transfer_wire as wire
from ncat_trio.proto.transfer import TransferReceiver

from ..support import NCAT, record_mains, spawn, spawn_listener

MiB = 1 << 20
TIMEOUT = 60


def make_file(path: Path, size: int, seed: int = 1) -> bytes:
    """A file of ``size`` pseudo-random bytes (fast: a random MiB, varied per block)."""
    block = hashlib.shake_256(seed.to_bytes(4, "big")).digest(min(size, MiB) or 1)
    with path.open("wb") as out:
        done = 0
        index = 0
        while done < size:
            piece = index.to_bytes(8, "big") + block[8:]
            piece = piece[: size - done]
            out.write(piece)
            done += len(piece)
            index += 1
    return path.read_bytes() if size <= 16 * MiB else b""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary or partial files the receiver left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- command line


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    return record_mains(monkeypatch, transfer, "send_main", "receive_main")


def _send(host: str | None, port: int, path: str, listen: bool) -> dict[str, object]:
    return {"endpoint.host": host, "endpoint.port": port, "path": path, "listen": listen}


def _receive(host: str | None, port: int, listen: bool, target: ReceiveTarget) -> dict[str, object]:
    return {"endpoint.host": host, "endpoint.port": port, "listen": listen, "target": target}


@pytest.mark.parametrize(
    ("argv", "kind", "want"),
    [
        (["send", "h", "9"], transfer.SendOptions, _send("h", 9, "-", False)),
        (["send", "h", "9", "f.bin"], transfer.SendOptions, _send("h", 9, "f.bin", False)),
        (["send", "--listen", "0"], transfer.SendOptions, _send(None, 0, "-", True)),
        (["send", "--listen", "9", "f.bin"], transfer.SendOptions, _send(None, 9, "f.bin", True)),
        (["send", "--listen", "::1", "9", "-"], transfer.SendOptions, _send("::1", 9, "-", True)),
        (["receive", "0"], transfer.ReceiveOptions, _receive(None, 0, True, ReceiveTarget())),
        (
            ["receive", "127.0.0.1", "9", "-o", "d/"],
            transfer.ReceiveOptions,
            _receive("127.0.0.1", 9, True, ReceiveTarget("d/")),
        ),
        (
            ["receive", "--connect", "h", "9", "--resume"],
            transfer.ReceiveOptions,
            _receive("h", 9, False, ReceiveTarget(resume=True)),
        ),
        (
            ["receive", "9", "--force", "-o", "-"],
            transfer.ReceiveOptions,
            _receive(None, 9, True, ReceiveTarget("-", force=True)),
        ),
    ],
)
def test_send_and_receive_arguments(
    recorded: list[object], argv: list[str], kind: type, want: dict[str, object]
) -> None:
    assert run_cli(argv) == 0
    (opts,) = recorded
    assert isinstance(opts, kind)
    assert {name: operator.attrgetter(name)(opts) for name in want} == want


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "h"],
        ["send", "h", "9", "f", "extra"],
        ["send", "h", "0"],  # port 0 only to listen
        ["send", "h", "9", "--name", "../x"],
        ["receive", "--connect", "9"],
        ["receive", "h", "9", "x"],
        ["receive", "9", "-o", "-", "--json"],
        ["receive", "9", "-o", "-", "--resume"],
    ],
)
def test_usage_errors(recorded: list[object], argv: list[str]) -> None:
    assert run_cli(argv) == ExitCode.USAGE
    assert recorded == []


# ---------------------------------------------------------------- in-process sessions


Outcome = TransferResult | NcatError


async def outcome_of(session: Awaitable[TransferResult], end: trio.abc.AsyncResource) -> Outcome:
    """The session's result or its error (as a separate process would report it); then
    ``end``, the session's stream, is closed."""
    try:
        return await session
    except NcatError as exc:
        return exc
    finally:
        await end.aclose()


async def transfer_in_memory(
    source: Source, target: ReceiveTarget, *, stdout: trio.abc.SendStream | None = None
) -> tuple[Outcome, Outcome]:
    """Run both ends; each end's result or error (like two processes: no shared fate)."""
    send_end, receive_end = trio.testing.memory_stream_pair()
    outcomes: dict[str, Outcome] = {}

    async def sender() -> None:
        outcomes["send"] = await outcome_of(
            send_session(send_end, source, chunk_size=64 * 1024), send_end
        )

    async def receiver() -> None:
        outcomes["receive"] = await outcome_of(
            receive_session(receive_end, target, stdout=stdout), receive_end
        )

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            nursery.start_soon(receiver)
    return outcomes["send"], outcomes["receive"]


async def transfer_ok(
    source: Source, target: ReceiveTarget, *, stdout: trio.abc.SendStream | None = None
) -> tuple[TransferResult, TransferResult]:
    sent, received = await transfer_in_memory(source, target, stdout=stdout)
    assert isinstance(sent, TransferResult), sent
    assert isinstance(received, TransferResult), received
    return sent, received


def header_named(name: bytes, size: int = 4) -> bytes:
    """A Header as a (possibly malicious) sender would put it on the wire, any name."""
    good = wire.encode_header(wire.Header("x", size))
    return good[:-3] + len(name).to_bytes(2, "big") + name


def file_source(path: Path, name: str | None = None) -> FileSource:
    fd = os.open(path, os.O_RDONLY)
    st = os.fstat(fd)
    return FileSource(fd, name or path.name, st.st_size, st.st_mode & 0o7777, st.st_mtime_ns)


@pytest.mark.parametrize("size", [0, 1, MiB + 1])
async def test_file_arrives_verified_with_its_mode_and_mtime(tmp_path: Path, size: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    payload = make_file(src / "data.bin", size)
    os.chmod(src / "data.bin", 0o640)
    os.utime(src / "data.bin", ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9 + 123))
    source = file_source(src / "data.bin")
    try:
        sent, received = await transfer_ok(source, ReceiveTarget(str(out)))
    finally:
        os.close(source.fd)
    assert (out / "data.bin").read_bytes() == payload
    assert sent.sha256 == received.sha256 == hashlib.sha256(payload).hexdigest()
    assert received.size == sent.size == size
    assert received.path == str(out / "data.bin")
    st = os.stat(out / "data.bin")
    assert st.st_mtime_ns == 1_600_000_000 * 10**9 + 123
    assert st.st_mode & 0o777 == 0o640 & ~current_umask()
    assert leftovers(out) == []


def current_umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


async def test_stream_of_unknown_size_arrives_verified(tmp_path: Path) -> None:
    payload = os.urandom(300_001)
    writer, reader = trio.testing.memory_stream_one_way_pair()

    async def feed() -> None:
        for i in range(0, len(payload), 7_777):
            await writer.send_all(payload[i : i + 7_777])
        await writer.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        _, received = await transfer_ok(
            StreamSource(reader, "piped"), ReceiveTarget(str(tmp_path / "out.bin"))
        )
    assert (tmp_path / "out.bin").read_bytes() == payload
    assert received.size == len(payload)


async def test_to_stdout(tmp_path: Path) -> None:
    payload = make_file(tmp_path / "f", 5000)
    sink = trio.testing.MemorySendStream()
    source = file_source(tmp_path / "f")
    try:
        _, received = await transfer_ok(source, ReceiveTarget("-"), stdout=sink)
    finally:
        os.close(source.fd)
    assert sink.get_data_nowait() == payload
    assert received.path is None


@pytest.mark.parametrize(
    "same_prefix",
    [False, True],
    ids=["different-prefix-starts-again", "same-prefix-sends-the-rest"],
)
async def test_resume_sends_only_what_the_partial_file_lacks(
    tmp_path: Path, same_prefix: bool
) -> None:
    payload = make_file(tmp_path / "f.bin", 200_000)
    out = tmp_path / "out"
    out.mkdir()
    partial = payload[:123_456] if same_prefix else b"not the same bytes" * 100
    (out / ".f.bin.ncat-trio-partial").write_bytes(partial)
    kept = len(partial) if same_prefix else 0
    source = file_source(tmp_path / "f.bin")
    try:
        sent, received = await transfer_ok(source, ReceiveTarget(str(out), resume=True))
    finally:
        os.close(source.fd)
    assert sent.resumed_from == received.resumed_from == kept
    assert sent.bytes_moved == received.bytes_moved == 200_000 - kept
    assert (out / "f.bin").read_bytes() == payload
    assert leftovers(out) == []


async def test_unwritable_destination_fails_both_ends_with_local_io(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    make_file(tmp_path / "f", 10)
    source = file_source(tmp_path / "f")
    try:
        # -o plain/f.out: the "directory" is a regular file (ENOTDIR, even as root)
        sent, received = await transfer_in_memory(
            source, ReceiveTarget(str(tmp_path / "plain" / "f.out"))
        )
    finally:
        os.close(source.fd)
    assert isinstance(received, LocalIOError)
    assert isinstance(sent, LocalIOError)  # the receiver's Failure carried its code
    assert "Not a directory".lower() in sent.why.lower()


async def test_receiver_refuses_a_traversal_name_and_tells_the_sender(tmp_path: Path) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    send_end, receive_end = trio.testing.memory_stream_pair()
    reply = bytearray()
    failure: list[Outcome] = []

    async def fake_sender() -> None:
        await send_end.send_all(header_named(b"../../etc"))
        await send_end.send_eof()
        while chunk := await send_end.receive_some():
            reply.extend(chunk)

    async def receiver() -> None:
        failure.append(
            await outcome_of(receive_session(receive_end, ReceiveTarget(str(inner))), receive_end)
        )

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake_sender)
            nursery.start_soon(receiver)
    assert isinstance(failure[0], RemoteProtocolError)
    assert "traversal" in str(failure[0])
    assert reply[:2] == b"F\x06"  # a Failure with the PROTOCOL code
    assert list(inner.iterdir()) == []
    assert not (tmp_path / "etc").exists()


# ---------------------------------------------------------------- a proxy that breaks things


class Proxy:
    """One connection, forwarded both ways; can flip a byte or cut the sender's direction.

    ``flip_at``: XOR the byte at that offset of the sender→receiver stream.
    ``cut_after``: forward that many bytes, then EOF to the receiver and RST to the sender.
    """

    def __init__(
        self, target_port: int, *, flip_at: int | None = None, cut_after: int | None = None
    ) -> None:
        self._target = target_port
        self._flip_at = flip_at
        self._cut_after = cut_after
        self.forwarded = 0
        self._progress = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def wait_forwarded(self, count: int, timeout: float = 20) -> None:
        with self._progress:
            ok = self._progress.wait_for(lambda: self.forwarded >= count, timeout)
        assert ok, f"only {self.forwarded} bytes went through the proxy"

    def join(self) -> None:
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self._listener.settimeout(30)
        try:
            client, _ = self._listener.accept()
        finally:
            self._listener.close()
        upstream = socket.create_connection(("127.0.0.1", self._target))
        back = threading.Thread(target=self._copy, args=(upstream, client, False))
        back.start()
        self._copy(client, upstream, True)
        back.join(timeout=30)
        client.close()
        upstream.close()

    def _copy(self, src: socket.socket, dst: socket.socket, forward: bool) -> None:
        try:
            while data := src.recv(65536):
                if forward:
                    data = self._tamper(data)
                    if (
                        self._cut_after is not None
                        and self.forwarded + len(data) >= self._cut_after
                    ):
                        dst.sendall(data[: self._cut_after - self.forwarded])
                        self._count(self._cut_after - self.forwarded)
                        dst.shutdown(socket.SHUT_WR)
                        src.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                        src.shutdown(socket.SHUT_RDWR)
                        return
                dst.sendall(data)
                if forward:
                    self._count(len(data))
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _tamper(self, data: bytes) -> bytes:
        at = self._flip_at
        if at is not None and self.forwarded <= at < self.forwarded + len(data):
            flipped = bytearray(data)
            flipped[at - self.forwarded] ^= 0x01
            return bytes(flipped)
        return data

    def _count(self, n: int) -> None:
        with self._progress:
            self.forwarded += n
            self._progress.notify_all()


# ---------------------------------------------------------------- end to end


def start_receiver(*args: str, cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    return spawn_listener(["receive", *args, "127.0.0.1", "0"], cwd=cwd)


def sender(port: int, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return spawn([*NCAT, "send", "127.0.0.1", str(port), *args], **kwargs)


def outcome(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{proc.args!r} did not finish") from None
    return proc.returncode, out, err


@pytest.mark.parametrize("size", [0, 1, MiB + 1])
def test_cli_file_sizes(tmp_path: Path, size: int) -> None:
    payload = make_file(tmp_path / "data.bin", size)
    out = tmp_path / "out"
    out.mkdir()
    receiver, port = start_receiver("-o", str(out), "--json", cwd=tmp_path)
    code, sent_json, sent_err = outcome(sender(port, str(tmp_path / "data.bin"), "--json"))
    assert code == 0, sent_err
    rcode, received_json, rerr = outcome(receiver)
    assert rcode == 0, rerr
    assert (out / "data.bin").read_bytes() == payload
    digest = hashlib.sha256(payload).hexdigest()
    assert json.loads(sent_json)["sha256"] == json.loads(received_json)["sha256"] == digest
    assert json.loads(received_json)["size"] == size
    assert b"acknowledged by the receiver" in sent_err


def test_cli_256_mib(tmp_path: Path) -> None:
    make_file(tmp_path / "big.bin", 256 * MiB)
    receiver, port = start_receiver("-o", str(tmp_path / "copy.bin"), cwd=tmp_path)
    code, _, err = outcome(sender(port, str(tmp_path / "big.bin")))
    assert code == 0, err
    assert outcome(receiver)[0] == 0
    assert sha256_of(tmp_path / "copy.bin") == sha256_of(tmp_path / "big.bin")


def test_cli_stream_from_a_pipe(tmp_path: Path) -> None:
    payload = os.urandom(3 * MiB + 17)
    receiver, port = start_receiver("--json", cwd=tmp_path)  # into the current directory
    proc = sender(port, "-", "--name", "piped.bin", stdin=subprocess.PIPE)
    _, err = proc.communicate(payload, timeout=TIMEOUT)
    assert proc.returncode == 0, err
    rcode, received_json, rerr = outcome(receiver)
    assert rcode == 0, rerr
    assert (tmp_path / "piped.bin").read_bytes() == payload
    assert json.loads(received_json)["size"] == len(payload)


def test_cli_stdin_redirected_from_a_file_sends_from_its_current_offset(tmp_path: Path) -> None:
    payload = make_file(tmp_path / "f.bin", 100_000)
    receiver, port = start_receiver("-o", str(tmp_path / "copy.bin"), cwd=tmp_path)
    with open(tmp_path / "f.bin", "rb") as stdin:
        stdin.seek(1000)  # like `(read -n 1000; ncat-trio send …) < f`
        code, _, err = outcome(sender(port, stdin=stdin))
    assert code == 0, err
    assert outcome(receiver)[0] == 0
    assert (tmp_path / "copy.bin").read_bytes() == payload[1000:]


def test_cli_reverse_direction_send_listens_receive_connects(tmp_path: Path) -> None:
    payload = make_file(tmp_path / "f.bin", 100_000)
    out = tmp_path / "out"
    out.mkdir()
    proc, port = spawn_listener(["send", "--listen", "0", str(tmp_path / "f.bin")])
    receiver = spawn([*NCAT, "receive", "--connect", "127.0.0.1", str(port), "-o", str(out)])
    rcode, _, rerr = outcome(receiver)
    assert rcode == 0, rerr
    assert outcome(proc)[0] == 0
    assert (out / "f.bin").read_bytes() == payload


def test_cli_to_stdout(tmp_path: Path) -> None:
    payload = make_file(tmp_path / "f.bin", 70_000)
    receiver, port = start_receiver("-o", "-", cwd=tmp_path)
    proc = sender(port, str(tmp_path / "f.bin"))
    rcode, data, rerr = outcome(receiver)  # read its stdout first: more than a pipe holds
    assert rcode == 0, rerr
    assert data == payload
    assert outcome(proc)[0] == 0


def test_flipped_byte_in_transit_is_a_digest_mismatch_on_both_ends(tmp_path: Path) -> None:
    make_file(tmp_path / "f.bin", MiB)
    out = tmp_path / "out"
    out.mkdir()
    receiver, port = start_receiver("-o", str(out), cwd=tmp_path)
    header = len(wire.encode_header(wire.Header("f.bin", MiB)))
    proxy = Proxy(port, flip_at=header + 9 + 500_000)  # inside the data, after Start
    code, _, err = outcome(sender(proxy.port, str(tmp_path / "f.bin")))
    rcode, _, rerr = outcome(receiver)
    proxy.join()
    assert rcode == ExitCode.INTEGRITY, rerr
    assert b"sha256 mismatch" in rerr
    assert code == ExitCode.INTEGRITY, err  # the receiver's Failure reached the sender
    assert b"sha256 mismatch" in err
    assert list(out.iterdir()) == []  # no file under the real name, no temporary left


def test_sender_killed_mid_transfer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    receiver, port = start_receiver("-o", str(out), cwd=tmp_path)
    proxy = Proxy(port)
    proc = sender(proxy.port, "-", "--name", "f.bin", stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(2 * MiB))
    proc.stdin.flush()
    proxy.wait_forwarded(MiB)  # the transfer is under way, and stdin stays open
    proc.kill()
    assert outcome(proc)[0] == -9
    rcode, _, rerr = outcome(receiver)
    proxy.join()
    assert rcode in (ExitCode.INTEGRITY, ExitCode.RESET), rerr
    assert not (out / "f.bin").exists()
    assert leftovers(out) == []


@pytest.mark.parametrize("resume", [False, True], ids=["plain", "resume"])
def test_receiver_interrupted_mid_transfer(tmp_path: Path, resume: bool) -> None:
    """SIGTERM: exit 143, nothing under the real name; a partial is kept only with --resume."""
    out = tmp_path / "out"
    out.mkdir()
    receiver, port = start_receiver("-o", str(out), *(["--resume"] if resume else []), cwd=tmp_path)
    proxy = Proxy(port)
    payload = os.urandom(2 * MiB)
    proc = sender(proxy.port, "-", "--name", "f.bin", stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(payload)
    proc.stdin.flush()
    proxy.wait_forwarded(MiB)
    receiver.terminate()
    rcode, _, rerr = outcome(receiver)
    code, _, err = outcome(proc)  # its stdin closes now; the connection is gone
    proxy.join()
    assert rcode == ExitCode.SIGTERM, rerr
    assert code != 0, err
    assert not (out / "f.bin").exists()
    if resume:
        assert leftovers(out) == [".f.bin.ncat-trio-partial"]
        partial = (out / ".f.bin.ncat-trio-partial").read_bytes()
        assert partial == payload[: len(partial)]
    else:
        assert leftovers(out) == []


def test_receiver_that_never_acknowledges_fails_the_sender(tmp_path: Path) -> None:
    """A receiver that reads everything and closes without an Ack (it "died")."""
    make_file(tmp_path / "f.bin", 200_000)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got_trailer = threading.Event()

    def fake_receiver() -> None:
        conn, _ = server.accept()
        server.close()
        proto = TransferReceiver()
        with conn:
            while True:
                event = proto.next_event()
                if event is wire.NEED_DATA:
                    proto.receive_data(conn.recv(65536))
                elif isinstance(event, wire.Header):
                    conn.sendall(proto.send(wire.Offer()))
                elif isinstance(event, wire.Trailer):
                    got_trailer.set()
                    return  # dies: no Ack

    thread = threading.Thread(target=fake_receiver, daemon=True)
    thread.start()
    code, _, err = outcome(sender(port, str(tmp_path / "f.bin")))
    thread.join(timeout=10)
    assert got_trailer.is_set()
    assert code == ExitCode.RESET, err
    assert b"before acknowledging" in err


def test_resume_after_a_cut(tmp_path: Path) -> None:
    size = 8 * MiB
    payload = make_file(tmp_path / "f.bin", size)
    out = tmp_path / "out"
    out.mkdir()
    header = len(wire.encode_header(wire.Header("f.bin", size)))
    cut = 3 * MiB
    receiver, port = start_receiver("-o", str(out), "--resume", cwd=tmp_path)
    proxy = Proxy(port, cut_after=header + 9 + cut)
    code, _, err = outcome(sender(proxy.port, str(tmp_path / "f.bin")))
    rcode, _, rerr = outcome(receiver)
    proxy.join()
    assert code != 0, err
    assert rcode == ExitCode.INTEGRITY, rerr
    assert not (out / "f.bin").exists()
    partial = out / ".f.bin.ncat-trio-partial"
    assert partial.read_bytes() == payload[:cut]

    receiver, port = start_receiver("-o", str(out), "--resume", "--json", cwd=tmp_path)
    code, sent_json, err = outcome(sender(port, str(tmp_path / "f.bin"), "--json"))
    assert code == 0, err
    rcode, received_json, rerr = outcome(receiver)
    assert rcode == 0, rerr
    assert json.loads(sent_json)["resumed_from"] == cut
    assert json.loads(received_json)["bytes_moved"] == size - cut
    assert (out / "f.bin").read_bytes() == payload
    assert leftovers(out) == []


@pytest.mark.parametrize("name", [b"../evil", b"/tmp/evil-ncat-trio"])
def test_cli_refuses_traversal_names(tmp_path: Path, name: bytes) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    receiver, port = start_receiver(cwd=work)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.sendall(header_named(name))
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    rcode, _, rerr = outcome(receiver)
    assert rcode == ExitCode.PROTOCOL, rerr
    assert b"refused" in rerr
    assert reply[:2] == b"F\x06"
    assert list(work.iterdir()) == []
    assert not (tmp_path / "a" / "evil").exists()
    assert not Path("/tmp/evil-ncat-trio").exists()


def test_cli_never_overwrites_without_force(tmp_path: Path) -> None:
    payload = make_file(tmp_path / "f.bin", 10_000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin").write_bytes(b"precious")
    receiver, port = start_receiver("-o", str(out), cwd=tmp_path)
    code, _, err = outcome(sender(port, str(tmp_path / "f.bin")))
    rcode, _, rerr = outcome(receiver)
    assert rcode == ExitCode.LOCAL_IO, rerr
    assert code == ExitCode.LOCAL_IO, err
    assert b"--force" in err
    assert (out / "f.bin").read_bytes() == b"precious"

    receiver, port = start_receiver("-o", str(out), "--force", cwd=tmp_path)
    assert outcome(sender(port, str(tmp_path / "f.bin")))[0] == 0
    assert outcome(receiver)[0] == 0
    assert (out / "f.bin").read_bytes() == payload
    assert leftovers(out) == []


def test_nothing_listening_is_a_connect_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    make_file(tmp_path / "f", 1)
    code, _, err = outcome(sender(port, str(tmp_path / "f")))
    assert code == ExitCode.CONNECT, err

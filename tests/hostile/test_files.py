"""Hostile tests, class *files*: what ``receive`` writes, names and reports.

Issue 15.  Each attack runs the real CLI with real files and sockets:

* something planted at the fixed partial name that ``--resume`` continues (a hard link
  or symlink to a file elsewhere, someone else's file, a FIFO, a directory): refused
  with exit 5, the planted thing and what it points to left as they were;
* something planted at the final name (a symlink, a hard link): never written through;
* a signal once the file is under its real name (the name appearing, the Ack read, the
  ``received`` line read): exit 0, because non-zero means "not under its real name";
* bytes after the trailer, from a sender made by hand over a raw socket: refused (exit 6)
  before the file gets its name, as PROTOCOL.md says; a reset or silence instead of the
  FIN after the trailer: no file either.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import select
import signal
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from ncat_trio.proto import transfer as wire

from ..support import (
    NCAT,
    finish,
    one_error_line,
    read_line,
    spawn,
    spawn_listener,
)

PARTIAL = ".f.bin.ncat-trio-partial"
PRECIOUS = b"precious: must never be written through\n"


def receiver(out: Path, *flags: str) -> tuple[subprocess.Popen[bytes], int]:
    return spawn_listener(["receive", "-o", str(out), *flags, "127.0.0.1", "0"])


def send(port: int, path: Path) -> subprocess.Popen[bytes]:
    return spawn([*NCAT, "send", "127.0.0.1", str(port), str(path)])


def rest_of_stderr(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    return proc.stderr.read().decode()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(out: the receiver's directory, victim: a file elsewhere, source: f.bin to send)."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim"
    victim.write_bytes(PRECIOUS)
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(100_000))
    return out, victim, source


# ---------------------------------------------------------------- the partial file

PLANTS = {
    "hard link to a file elsewhere": "has 2 names",
    "symlink to a file elsewhere": "symbolic link",
    "dangling symlink": "symbolic link",
    "file of another user": "owned by uid 65534",
    "FIFO": "not a regular file",
    "directory": "is a directory",
}


def plant(kind: str, partial: Path, victim: Path) -> None:
    if kind == "hard link to a file elsewhere":
        os.link(victim, partial)
    elif kind == "symlink to a file elsewhere":
        partial.symlink_to(victim)
    elif kind == "dangling symlink":
        partial.symlink_to(victim.parent / "created-through-the-link")
    elif kind == "file of another user":
        if os.geteuid() != 0:
            pytest.skip("needs root to give a file to uid 65534")
        partial.write_bytes(PRECIOUS)
        os.chown(partial, 65534, 65534)
    elif kind == "FIFO":
        os.mkfifo(partial)
    else:
        partial.mkdir()


@pytest.mark.parametrize("kind", PLANTS)
def test_a_planted_partial_is_refused_and_left_alone(
    kind: str, dirs: tuple[Path, Path, Path]
) -> None:
    out, victim, source = dirs
    partial = out / PARTIAL
    plant(kind, partial, victim)
    before = os.lstat(partial)
    listener, port = receiver(out, "--resume")
    sender = send(port, source)
    assert finish(listener, 30) == 5
    line = one_error_line(rest_of_stderr(listener).encode())
    assert PLANTS[kind] in line, line
    assert "refused" in line or kind == "directory", line
    assert finish(sender, 30) == 5  # the receiver's Failure
    after = os.lstat(partial)
    assert (after.st_ino, after.st_mode, after.st_nlink) == (
        before.st_ino,
        before.st_mode,
        before.st_nlink,
    )
    assert victim.read_bytes() == PRECIOUS
    assert not (out / "f.bin").exists()
    assert not (victim.parent / "created-through-the-link").exists()
    if kind == "file of another user":
        assert partial.read_bytes() == PRECIOUS


@pytest.mark.parametrize("force", [False, True], ids=["no-force", "force"])
@pytest.mark.parametrize("kind", ["symlink", "hard link"])
def test_a_planted_final_name_is_never_written_through(
    kind: str, force: bool, dirs: tuple[Path, Path, Path]
) -> None:
    """Without --force it is "file exists" (5); with it the name is replaced (rename),
    so the symlink's target or the other name of the hard link keeps its bytes."""
    out, victim, source = dirs
    final = out / "f.bin"
    if kind == "symlink":
        final.symlink_to(victim)
    else:
        os.link(victim, final)
    listener, port = receiver(out, *(["--force"] if force else []))
    sender = send(port, source)
    assert finish(listener, 30) == (0 if force else 5), rest_of_stderr(listener)
    assert finish(sender, 30) == (0 if force else 5)
    assert victim.read_bytes() == PRECIOUS
    if force:
        assert not final.is_symlink()
        assert final.read_bytes() == source.read_bytes()
    elif kind == "symlink":
        assert final.is_symlink()
    else:
        assert os.lstat(final).st_ino == os.lstat(victim).st_ino


# ---------------------------------------------------------------- a late signal


class RawSender:
    """The sending end made by hand: real socket, wire messages from proto.transfer."""

    def __init__(self, port: int, payload: bytes, *, known: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.proto = wire.TransferSender()
        self.payload = payload
        header = wire.Header("f.bin", len(payload) if known else None, 0o644)
        self.sock.sendall(self.proto.send(header))
        offer = self.next_event()
        assert isinstance(offer, wire.Offer), offer

    def next_event(self) -> object:
        while (event := self.proto.next_event()) is wire.NEED_DATA:
            self.proto.receive_data(self.sock.recv(65536))
        return event

    def body(self) -> bytes:
        """Start, the data and the trailer, as one piece."""
        digest = hashlib.sha256(self.payload).digest()
        return (
            self.proto.send(wire.Start(0))
            + self.proto.send(wire.Data(self.payload))
            + self.proto.send(wire.Trailer(len(self.payload), digest))
        )

    def close(self) -> None:
        self.sock.close()


class NameWatch:
    """inotify on a directory: when a name appears there (link or rename), at once."""

    IN_CREATE, IN_MOVED_TO = 0x100, 0x80

    def __init__(self, directory: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        mask = self.IN_CREATE | self.IN_MOVED_TO
        assert self._libc.inotify_add_watch(self.fd, bytes(directory), mask) >= 0

    def wait_for(self, name: str, timeout: float = 30) -> None:
        while True:
            assert select.select([self.fd], [], [], timeout)[0], f"{name} did not appear"
            data = os.read(self.fd, 65536)
            while data:
                _wd, _mask, _cookie, size = struct.unpack_from("iIII", data)
                if data[16 : 16 + size].rstrip(b"\0") == name.encode():
                    return
                data = data[16 + size :]

    def close(self) -> None:
        os.close(self.fd)


def assert_in_place_and_zero(listener: subprocess.Popen[bytes], out: Path, data: bytes) -> str:
    code = finish(listener, 30)
    err = rest_of_stderr(listener)
    assert code == 0, err
    assert (out / "f.bin").read_bytes() == data
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("run", range(3))
def test_a_signal_once_the_name_appears_is_still_exit_0(run: int, tmp_path: Path) -> None:
    """The earliest moment the outside can see: the real name appears (link/rename);
    from then on the file is in place, so the exit code must be 0."""
    payload = os.urandom(50_000 + run)
    watch = NameWatch(tmp_path)
    try:
        listener, port = receiver(tmp_path)
        peer = RawSender(port, payload)
        peer.sock.sendall(peer.body())
        peer.sock.shutdown(socket.SHUT_WR)
        watch.wait_for("f.bin")
        listener.send_signal(signal.SIGTERM)
        err = assert_in_place_and_zero(listener, tmp_path, payload)
        assert "received 'f.bin'" in err, err
        peer.close()
    finally:
        watch.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_after_the_ack_is_exit_0(signum: signal.Signals, tmp_path: Path) -> None:
    payload = os.urandom(70_000)
    listener, port = receiver(tmp_path)
    peer = RawSender(port, payload)
    peer.sock.sendall(peer.body())
    peer.sock.shutdown(socket.SHUT_WR)
    ack = peer.next_event()
    assert isinstance(ack, wire.Ack), ack
    listener.send_signal(signum)
    err = assert_in_place_and_zero(listener, tmp_path, payload)
    assert all(
        line.startswith(("ncat-trio: received 'f.bin'", f"ncat-trio: {signum.name} after "))
        for line in err.splitlines()
    ), err
    peer.close()


def test_a_signal_after_the_ack_to_stdout_is_exit_0() -> None:
    """-o -: once the data is verified (all of it written), exit 0 too."""
    payload = os.urandom(30_000)  # less than a pipe holds: stdout is read at the end
    listener, port = spawn_listener(["receive", "-o", "-", "127.0.0.1", "0"])
    peer = RawSender(port, payload)
    peer.sock.sendall(peer.body())
    peer.sock.shutdown(socket.SHUT_WR)
    assert isinstance(peer.next_event(), wire.Ack)
    listener.send_signal(signal.SIGTERM)
    out, err = listener.communicate(timeout=30)
    assert listener.returncode == 0, err
    assert out == payload
    assert all(
        line.startswith(("ncat-trio: received 'f.bin'", "ncat-trio: SIGTERM after "))
        for line in err.decode().splitlines()
    ), err
    peer.close()


@pytest.mark.parametrize("run", range(3))
def test_sigterm_after_the_received_line_is_exit_0(run: int, dirs: tuple[Path, Path, Path]) -> None:
    out, _, source = dirs
    listener, port = receiver(out)
    sender = send(port, source)
    assert listener.stderr is not None
    line = read_line(listener.stderr, 30).decode()
    assert line.startswith("ncat-trio: received 'f.bin'"), line
    listener.send_signal(signal.SIGTERM)
    err = assert_in_place_and_zero(listener, out, source.read_bytes())
    assert err in (
        "",
        f"ncat-trio: SIGTERM after {str(out / 'f.bin')!r} was verified and in place: exit 0\n",
    )
    assert finish(sender, 30) == 0


# ---------------------------------------------------------------- after the trailer

JUNK = {
    "a byte in the trailer's segment": (True, b"x", False),
    "a second trailer, sent later": (True, b"T" + bytes(40), True),
    "a chunk after a chunked stream's trailer": (False, b"\0\0\0\1z", False),
}


@pytest.mark.parametrize("case", JUNK)
def test_bytes_after_the_trailer_are_refused(case: str, tmp_path: Path) -> None:
    known, junk, later = JUNK[case]
    payload = os.urandom(30_000)
    listener, port = receiver(tmp_path)
    peer = RawSender(port, payload, known=known)
    body = peer.body()
    if later:
        peer.sock.sendall(body)
        peer.sock.sendall(junk)
    else:
        peer.sock.sendall(body + junk)
    peer.sock.shutdown(socket.SHUT_WR)
    failure = peer.next_event()
    assert isinstance(failure, wire.Failure), failure
    assert failure.code == 6
    assert "after the trailer" in failure.reason
    assert finish(listener, 30) == 6
    line = one_error_line(rest_of_stderr(listener).encode())
    assert line == "ncat-trio: sender: sent bytes after the trailer", line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no temporary
    peer.close()


def test_a_reset_instead_of_the_fin_after_the_trailer_leaves_no_file(tmp_path: Path) -> None:
    listener, port = receiver(tmp_path)
    peer = RawSender(port, os.urandom(30_000))
    peer.sock.sendall(peer.body())
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    assert finish(listener, 30) == 3
    assert "reset" in one_error_line(rest_of_stderr(listener).encode())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_silence_instead_of_the_fin_after_the_trailer_is_an_idle_timeout(tmp_path: Path) -> None:
    listener, port = receiver(tmp_path, "-i", "1")
    peer = RawSender(port, os.urandom(30_000))
    peer.sock.sendall(peer.body())
    assert finish(listener, 30) == 4
    assert "-i" in one_error_line(rest_of_stderr(listener).encode())
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    peer.close()


def test_the_fin_right_after_the_trailer_is_acknowledged(tmp_path: Path) -> None:
    """The control case for the raw sender: as PROTOCOL.md says, all is well."""
    payload = os.urandom(30_000)
    listener, port = receiver(tmp_path)
    peer = RawSender(port, payload)
    peer.sock.sendall(peer.body())
    peer.sock.shutdown(socket.SHUT_WR)
    ack = peer.next_event()
    assert ack == wire.Ack(len(payload), hashlib.sha256(payload).digest())
    assert isinstance(peer.next_event(), wire.Closed)
    assert_in_place_and_zero(listener, tmp_path, payload)
    peer.close()

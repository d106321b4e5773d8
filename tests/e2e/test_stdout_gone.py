"""Stdout's reader goes away: exit 0 when nothing received was lost, 5 when it was.

Issue 16 §1: the server sends 1000 bytes and closes a moment later, and
``ncat-trio HOST PORT | head -c 1000`` exited 5 on the splice path ("stdout: broken
pipe"), because splicing socket → pipe reports the pipe's EPIPE before the socket's end
of data.  The rule now (README, "Exit codes"): when the reader of stdout has gone and no
byte we received was left unwritten, that is a normal end (exit 0); exit 5 only when
received data could not be delivered.  Checked for every stdout kind a reader can leave
(pipe, socket, pty) on both copy paths, for connect and listen.

When nothing is lost, the server waits until the reader has *left* before it closes, so
the order of events is fixed, not raced.  When something is, the server sends far more
than the pipes and socket buffers between us hold, so received bytes are certainly
waiting when the reader leaves.  (Bytes that arrive *after* we saw the reader leave are
never received: like nc.openbsd, we stop reading the network then.)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import tty
from collections.abc import Callable

import pytest

from ncat_trio import report_schema
from ncat_trio.report_schema import validate

from ..support import NCAT, ServeOnce, finish, one_error_line, reaped, spawn_listener

COPY_PATHS = pytest.mark.parametrize(
    "copy", [[], ["--no-zerocopy"]], ids=["zerocopy", "user-space"]
)
FIRST = b"a" * 1000


class Reader:
    """Something that takes stdout, reads exactly 1000 bytes from it and leaves."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.left = threading.Event()
        self.got = b""
        self._thread: threading.Thread | None = None
        self._head: subprocess.Popen[bytes] | None = None
        if kind == "pipe":
            self.stdout_fd, self._ours = os.pipe()[::-1]
        elif kind == "socket":
            ours, theirs = socket.socketpair()
            self.stdout_fd, self._ours = theirs.detach(), ours.detach()
        else:  # pty, raw so that no byte is translated
            self._ours, self.stdout_fd = os.openpty()
            tty.setraw(self.stdout_fd)

    def start(self) -> None:
        """Call once ncat-trio holds ``stdout_fd`` (it is closed here)."""
        os.close(self.stdout_fd)
        if self.kind == "pipe":  # the real thing: head(1) reads and exits
            self._head = subprocess.Popen(
                ["head", "-c", "1000"], stdin=self._ours, stdout=subprocess.PIPE
            )
            os.close(self._ours)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        if self._head is not None:
            self.got, _ = self._head.communicate(timeout=30)
        else:
            while len(self.got) < len(FIRST):
                chunk = os.read(self._ours, len(FIRST) - len(self.got))
                if not chunk:
                    break
                self.got += chunk
            os.close(self._ours)
        self.left.set()

    def wait_left(self) -> None:
        assert self.left.wait(30), f"the {self.kind} reader never left"


READERS = pytest.mark.parametrize("kind", ["pipe", "socket", "pty"])


MORE = b"b" * (16 << 20)  # more than every buffer between the server and the reader


def _server(reader: Reader, extra: bytes) -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        if extra:  # more than the reader takes: some of it cannot be delivered
            with contextlib.suppress(OSError):  # ncat-trio's close may reset us
                conn.sendall(FIRST + extra)
            return
        conn.sendall(FIRST)
        reader.wait_left()
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):  # until ncat-trio closes
            pass

    return serve


def run_into(reader: Reader, args: list[str]) -> tuple[int, bytes]:
    """``ncat-trio ARGS`` with ``reader`` on its stdout, to the end: (exit code, stderr)."""
    proc = subprocess.Popen(
        [*NCAT, *args], stdin=subprocess.DEVNULL, stdout=reader.stdout_fd, stderr=subprocess.PIPE
    )
    reader.start()
    with reaped(proc):
        code = finish(proc, 30)
        assert proc.stderr is not None
        return code, proc.stderr.read()


@READERS
@COPY_PATHS
def test_connect_reader_left_after_everything_exits_0(copy: list[str], kind: str) -> None:
    reader = Reader(kind)
    with ServeOnce(_server(reader, b"")) as server:
        code, err = run_into(reader, [*copy, "--json", "127.0.0.1", str(server.port)])
        assert code == 0, err
        server.result()
    reader.wait_left()
    assert reader.got == FIRST
    record = json.loads(err)  # nothing else on stderr
    assert validate(record, report_schema.NETCAT) == [], record
    # the splice path learns the reader left; the portable one sees the peer's FIN first
    assert record["ended"] in ({"peer closed"} if copy else {"stdout closed", "peer closed"})
    assert record["exit_code"] == 0


@READERS
@COPY_PATHS
def test_connect_data_after_reader_left_exits_5(copy: list[str], kind: str) -> None:
    reader = Reader(kind)
    with ServeOnce(_server(reader, MORE)) as server:
        code, err = run_into(reader, [*copy, "127.0.0.1", str(server.port)])
        assert code == 5, err
        assert "stdout" in one_error_line(err)
        server.result()
    assert reader.got == FIRST


@COPY_PATHS
@pytest.mark.parametrize("extra", [b"", MORE], ids=["nothing-lost", "lost"])
def test_listen_into_head(copy: list[str], extra: bytes) -> None:
    """``ncat-trio -l PORT | head -c 1000``, the other spelling in the issue."""
    reader = Reader("pipe")
    listener, port = spawn_listener([*copy, "-l", "127.0.0.1", "0"], stdout=reader.stdout_fd)
    reader.start()
    with reaped(listener), socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        _server(reader, extra)(client)
        code = finish(listener, 30)
        assert listener.stderr is not None
        err = listener.stderr.read()
    assert reader.got == FIRST
    assert code == (5 if extra else 0), err

"""Shared helpers for end-to-end and interop tests: run ncat-trio and real peers.

* Ports are always 0; a listener's real port is read from its readiness line on
  stderr (``ncat-trio: listening on HOST:PORT``), never guessed, never slept for.
* A missing peer program skips the test on a laptop but *fails* it in CI
  (``CI`` set in the environment), so CI can never go green by skipping interop.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, cast

import pytest
import trio
import trustme

ROOT = Path(__file__).resolve().parent.parent
NCAT = [sys.executable, "-m", "ncat_trio"]
PEERS_SRC = ROOT / "peers"
PEERS_BUILD = ROOT / "build" / "peers"

T = TypeVar("T")

_LISTENING = re.compile(rb"listening on (?:\[(?P<h6>[^\]]+)\]|(?P<h4>[^:\s]+)):(?P<port>\d+)")


def missing(what: str) -> None:
    """Skip locally, fail in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} not available")


def require_program(name: str) -> str:
    """Path of a peer program (``nc.openbsd``, ``ncat``, ``socat``, ``chronyd``)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        missing(name)
        raise AssertionError("unreachable")
    return path


def require_ref_peer(name: str) -> str:
    """Path of ``ttcp_ref`` or ``roundtrip_ref`` (the project's C peers, ``peers/``), built on demand."""
    binary = PEERS_BUILD / name
    if not binary.exists() and (PEERS_SRC / "Makefile").exists() and shutil.which("make"):
        subprocess.run(
            ["make", "-s", "-C", str(PEERS_SRC), f"O={PEERS_BUILD}"],
            check=False,
            capture_output=True,
            timeout=120,
        )
    if not binary.exists():
        missing(f"{name} (make -C peers)")
    return str(binary)


def read_line(stream: IO[bytes], timeout: float = 10.0) -> bytes:
    """One line from a pipe, or AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise AssertionError(f"no line within {timeout} s (got {buf!r})")
            chunk = os.read(fd, 1)
            if not chunk:
                raise AssertionError(f"EOF before a full line (got {buf!r})")
            buf += chunk
    return buf


def wait_for_port(stream: IO[bytes], timeout: float = 10.0) -> int:
    """Read stderr lines until the readiness line; return the port it names.  On failure
    the message includes the lines read before it (a child's error, say)."""
    deadline = time.monotonic() + timeout
    seen: list[bytes] = []
    while True:
        try:
            line = read_line(stream, max(0.1, deadline - time.monotonic()))
        except AssertionError as exc:
            before = b"".join(seen).decode("utf-8", "replace")
            raise AssertionError(f"no readiness line: {exc}; before it:\n{before}") from None
        seen.append(line)
        match = _LISTENING.search(line) or re.search(rb"^port = (\d+)", line)
        if match is not None:
            return int(match.group("port") if "port" in match.re.groupindex else match.group(1))


#: Processes started with :func:`spawn` / :func:`spawn_listener` and not yet reaped.
_CHILDREN: list[subprocess.Popen[bytes]] = []


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``args`` (stdin /dev/null, stdout and stderr pipes, unless given).

    After the test, whatever still runs is killed, waited for and its pipes closed
    (:func:`reap_children`, tests/conftest.py's autouse fixture), even when an assertion
    failed first; :func:`outlives_test` exempts one."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen(args, **kwargs)
    _CHILDREN.append(proc)
    return proc


def outlives_test(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """``proc`` (from :func:`spawn`) is not reaped after this test: a module-scoped server
    that its test module stops itself."""
    _CHILDREN.remove(proc)
    return proc


@contextlib.contextmanager
def ncat_server(args: list[str], **kwargs: Any) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``ncat-trio ARGS`` (:func:`spawn`'s ``kwargs``) and the port of its readiness line;
    killed if still running at the end (and reaped after the test in any case)."""
    proc = spawn([*NCAT, *args], **kwargs)
    try:
        assert proc.stderr is not None
        yield proc, wait_for_port(proc.stderr)
    finally:
        if proc.poll() is None:
            proc.kill()


def spawn_listener(args: list[str], **kwargs: Any) -> tuple[subprocess.Popen[bytes], int]:
    """``ncat-trio listen … 0`` (args include the port 0), spawned; returns (process, real
    port), read from its readiness line (a failure shows the child's stderr)."""
    proc = spawn([*NCAT, *args], **kwargs)
    with failure_shows_stderr(proc):
        assert proc.stderr is not None
        port = wait_for_port(proc.stderr)
    return proc, port


def run_ncat(
    args: list[str], input: bytes | None = None, timeout: float = 30.0, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    """``python -m ncat_trio ARGS`` to its end, stdout and stderr captured; no check of
    the exit code (the test asserts it, with the stderr in the message)."""
    return subprocess.run(
        [*NCAT, *args], input=input, capture_output=True, timeout=timeout, check=False, **kwargs
    )


def send_until_stopped(conn: socket.socket, limit: int, stop: type[OSError]) -> int:
    """Send 64 KiB chunks until ``stop`` is raised (the reader went away, or stopped
    reading: a send timeout) or ``limit`` bytes went; how much was sent (< ``limit``
    if and only if ``stop`` ended it)."""
    sent = 0
    chunk = b"x" * 65536
    try:
        while sent < limit:
            conn.sendall(chunk)
            sent += len(chunk)
    except stop:
        pass
    return sent


def finish(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """Wait for a process, killing it (and failing, with its stderr) if it overstays."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        report = child_stderr(proc)
        with proc:  # closes its pipes
            pass
        raise AssertionError(f"did not exit within {timeout} s; {report}") from None


def child_stderr(proc: subprocess.Popen[bytes], limit: int = 8000) -> str:
    """``ARGS exit N, stderr: …`` for a failure message: a child still running is killed
    first; the rest of its stderr pipe is read (at most 5 s: a grandchild may hold it)."""
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    text = "(not captured)"
    stream = proc.stderr
    if stream is not None and not stream.closed:
        chunks = []
        deadline = time.monotonic() + 5
        with selectors.DefaultSelector() as sel:
            sel.register(stream.fileno(), selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0 and sel.select(left):
                chunk = os.read(stream.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", "replace")[-limit:] or "(empty)"
    return f"{proc.args!r} exit {code}, stderr:\n{text}"


@contextlib.contextmanager
def failure_shows_stderr(*procs: subprocess.Popen[bytes]) -> Iterator[None]:
    """On any failure inside: kill ``procs`` and fail with their exit codes and stderr.

    For end-to-end tests: when a child misbehaves, its own words (an error line, a
    traceback) are in the test report, not only the symptom seen from outside."""
    try:
        yield
    except Exception as exc:
        reports = "\n".join(child_stderr(proc) for proc in procs)
        for proc in procs:
            with proc:  # dead now: close its pipes
                pass
        raise AssertionError(f"{exc!r}\n--- the children:\n{reports}") from exc


# --- Background pipe I/O, one-connection servers, peers' ports (e2e and interop) ---


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


class Drain:
    """Reads a pipe to EOF in a thread, so the process writing it never blocks on us.

    ``keep=False`` keeps only the sha256 and the count (for payloads of many MiB).
    """

    def __init__(self, stream: IO[bytes], *, keep: bool = True) -> None:
        self._stream = stream
        self._keep = keep
        self._chunks: list[bytes] = []
        self._digest = hashlib.sha256()
        self._count = 0
        self._error: BaseException | None = None
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fd = self._stream.fileno()
            while chunk := os.read(fd, 1 << 20):
                self._digest.update(chunk)
                if self._keep:
                    self._chunks.append(chunk)
                with self._progress:
                    self._count += len(chunk)
                    self._progress.notify_all()
        except BaseException as exc:  # reported by wait(), never lost in the thread
            self._error = exc
        finally:
            self._stream.close()
            with self._progress:
                self._progress.notify_all()

    def wait_count(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` bytes have arrived (AssertionError on timeout/EOF)."""
        with self._progress:
            arrived = self._progress.wait_for(
                lambda: self._count >= count or not self._thread.is_alive(), timeout
            )
            if not arrived or self._count < count:
                raise AssertionError(f"{self._count} of {count} bytes arrived")

    def wait_for(self, needle: bytes, timeout: float = 30.0) -> None:
        """Block until ``needle`` has arrived (needs ``keep=True``; AssertionError on
        timeout/EOF)."""
        with self._progress:
            found = self._progress.wait_for(
                lambda: needle in b"".join(self._chunks) or not self._thread.is_alive(),
                timeout,
            )
            if not found or needle not in b"".join(self._chunks):
                raise AssertionError(f"{needle[:60]!r} not among {self._count} bytes read")

    def snapshot(self) -> bytes:
        """What has arrived so far (``keep=True``)."""
        with self._progress:
            return b"".join(self._chunks)

    def wait(self, timeout: float = 30.0) -> bytes:
        """Wait for EOF; return the bytes (``b""`` when ``keep=False``)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"no EOF within {timeout} s ({self._count} bytes so far)")
        if self._error is not None:
            raise self._error
        return b"".join(self._chunks)

    @property
    def count(self) -> int:
        return self._count

    @property
    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class Feed:
    """Writes ``data`` to a pipe in a thread, then closes it (after ``close_after``, if given)."""

    def __init__(
        self,
        stream: IO[bytes],
        data: bytes,
        *,
        close_after: threading.Event | None = None,
        chunk: int = 1 << 20,
    ) -> None:
        self._stream = stream
        self._data = data
        self._close_after = close_after
        self._chunk = chunk
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fd = self._stream.fileno()
            with memoryview(self._data) as view:
                for start in range(0, len(view), self._chunk):
                    piece = view[start : start + self._chunk]
                    while piece:
                        piece = piece[os.write(fd, piece) :]
            if self._close_after is not None and not self._close_after.wait(60):
                raise AssertionError("close_after was never set")
        except BaseException as exc:
            self._error = exc
        finally:
            self._stream.close()

    def wait(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"stdin feed not written within {timeout} s")
        if self._error is not None:
            raise self._error


def reply_after_eof(
    eof_side: subprocess.Popen[bytes], replier: subprocess.Popen[bytes], up: bytes, down: bytes
) -> None:
    """``eof_side`` sends ``up`` and its stdin ends; ``replier`` sends ``down`` only once
    all of ``up`` has arrived, so the reply crosses ``eof_side``'s EOF.  Both must arrive
    whole.  (Both processes were started with stdin and stdout pipes.)"""
    assert eof_side.stdin is not None
    assert eof_side.stdout is not None
    assert replier.stdin is not None
    assert replier.stdout is not None
    with failure_shows_stderr(eof_side, replier):
        at_replier = Drain(replier.stdout)
        at_eof_side = Drain(eof_side.stdout)
        Feed(eof_side.stdin, up).wait()  # written and closed: eof_side reaches EOF
        at_replier.wait_count(len(up))
        Feed(replier.stdin, down)  # the reply, after that EOF
        assert sha256(at_replier.wait()) == sha256(up)
        assert sha256(at_eof_side.wait()) == sha256(down)


def feed_until_received(
    proc: subprocess.Popen[bytes], data: bytes, expect: int, *, keep: bool = True
) -> Drain:
    """Write ``data`` to ``proc``'s stdin while its stdout is read; the stdin is closed
    only once ``expect`` bytes have come out (so a peer that cuts its reply at our FIN
    is not provoked).  Returns the stdout's :class:`Drain`."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    everything_in = threading.Event()
    feed = Feed(proc.stdin, data, close_after=everything_in)
    received = Drain(proc.stdout, keep=keep)
    received.wait_count(expect)
    everything_in.set()
    feed.wait()
    return received


def random_files(
    folder: Path, size: int, names: tuple[str, str] = ("ours.bin", "theirs.bin")
) -> tuple[Path, Path]:
    """Two files of ``size`` random bytes in ``folder``: one for each direction."""
    first, second = folder / names[0], folder / names[1]
    first.write_bytes(os.urandom(size))
    second.write_bytes(os.urandom(size))
    return first, second


@contextlib.contextmanager
def accept_loop(
    handle: Callable[[socket.socket, threading.Event], None], *, join: float = 10
) -> Iterator[int]:
    """A TCP server on 127.0.0.1 port 0 whose thread calls ``handle(conn, stop)`` for each
    client until the block ends (``stop`` is set then); yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            handle(conn, stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(join)
        server.close()


class ServeOnce(Generic[T]):
    """A Python TCP server for one connection on ``host`` port 0; ``handler`` runs in a thread.

    The handler gets the accepted socket (30 s timeout on every call) and its return
    value (or exception) comes back from :meth:`result`.  Use as a context manager.
    """

    def __init__(self, handler: Callable[[socket.socket], T], host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(1)
        self._listener.settimeout(30)
        self.port: int = self._listener.getsockname()[1]
        self._handler = handler
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                conn.settimeout(30)
                self._value = self._handler(conn)
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float = 30.0) -> T:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"server handler still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return cast(T, self._value)

    def __enter__(self) -> ServeOnce[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()


def receive_all(conn: socket.socket) -> bytes:
    """Everything the peer sends until its FIN."""
    chunks = []
    while chunk := conn.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a blocking socket; an EOF before them fails the test."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {len(data)} of the {n} bytes expected"
        data += chunk
    return data


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything a Trio stream delivers until its EOF."""
    out = bytearray()
    while chunk := await stream.receive_some():
        out += chunk
    return bytes(out)


def run_watching_imports(args: list[str]) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    """Run ncat-trio under ``python -X importtime``: the finished process (stderr without
    the import lines) and every module it imported."""
    done = subprocess.run(
        [NCAT[0], "-X", "importtime", *NCAT[1:], *args], capture_output=True, timeout=60
    )
    lines = done.stderr.decode().splitlines()
    imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    rest = "".join(f"{line}\n" for line in lines if not line.startswith("import time:"))
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout, rest.encode()
    ), imported


def heavy(imported: set[str]) -> set[str]:
    """The modules of Trio, typer and click among ``imported``."""
    return {m for m in imported if m.split(".")[0] in ("trio", "typer", "click")}


def one_error_line(stderr: bytes) -> str:
    """Assert stderr is exactly one ``ncat-trio: …`` line and no traceback; return it."""
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("ncat-trio: "), text
    return lines[0]


def listening_port_of(pid: int) -> int:
    """The TCP port a process listens on, read from /proc (Linux).

    For peers that bind port 0 but print the port they were *asked* for (ncat prints
    ``Listening on 127.0.0.1:0``): the socket inode under /proc/PID/fd is looked up in
    /proc/net/tcp{,6}, so tests keep using port 0 instead of guessing a free port.
    """
    return _port_of(pid, "tcp")


def peer_port(proc: subprocess.Popen[bytes], ready: bytes) -> int:
    """The port a peer (ncat, socat -d -d) listens on, once a stderr line holds ``ready``:
    socat's ``listening on AF=… ADDR:PORT`` says it, else it is read from /proc."""
    assert proc.stderr is not None
    while True:
        line = read_line(proc.stderr)
        if ready in line:
            match = re.search(rb"listening on AF=\d+ \S+:(\d+)", line)
            return int(match.group(1)) if match else listening_port_of(proc.pid)


def udp_port_of(pid: int) -> int:
    """The UDP port a process has bound, as :func:`listening_port_of` finds TCP ones."""
    return _port_of(pid, "udp")


def _port_of(pid: int, protocol: str) -> int:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
            if match is not None:
                inodes.add(match.group(1))
    for table in (f"/proc/net/{protocol}", f"/proc/net/{protocol}6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                listening = protocol == "udp" or fields[3] == "0A"  # 0A = TCP_LISTEN
                if listening and fields[9] in inodes:
                    return int(fields[1].rsplit(":", 1)[1], 16)
    kind = "listening TCP" if protocol == "tcp" else "UDP"
    raise AssertionError(f"process {pid} has no {kind} socket")


def pid_gone(pid: int) -> bool:
    """True once no process ``pid`` exists (an exec child reaped after its session)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def still_running(pids: Iterable[int], timeout: float = 0.0) -> list[int]:
    """Those of ``pids`` that have not exited within ``timeout`` s, waited for on pidfds.

    For processes that are not ours (an exec child's own children): once orphaned, their
    zombie stays until init reaps it (here PID 1 never does), so "exited" is what can be
    asserted, not "gone" as :func:`pid_gone` checks for our own children.
    """
    deadline = time.monotonic() + timeout
    running = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    running.append(pid)
        finally:
            os.close(fd)
    return running


def ipv6_loopback_available(address: str = "::1") -> bool:
    """True if ::1 (or another IPv6 ``address``, e.g. ``::`` for a dual-stack listener)
    can be bound here (some containers have IPv6 disabled)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def closed_without_service(port: int, source: str = "127.0.0.1") -> bool:
    """Connect to 127.0.0.1:``port`` from ``source`` and send; True if the server closed
    (FIN or RST) without sending a byte.  The RST may even beat ``connect`` back to us on
    loopback, or arrive before ``shutdown`` (ENOTCONN)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), 30, source_address=(source, 0))
    except ConnectionResetError:
        return True
    with sock:
        try:
            sock.sendall(b"let me in\n")
            sock.shutdown(socket.SHUT_WR)
            return sock.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except OSError as exc:
            if exc.errno == errno.ENOTCONN:
                return True
            raise


@contextlib.contextmanager
def reaped(*procs: subprocess.Popen[bytes]) -> Iterator[None]:
    """On leaving, even by a failed assertion: kill what still runs, wait, close its pipes."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            with proc:  # Popen.__exit__ closes the pipes and waits
                pass


def reap_children() -> None:
    """Kill, wait for and close the pipes of every spawned process (call after each test)."""
    leftovers, _CHILDREN[:] = list(_CHILDREN), []
    with reaped(*leftovers):
        pass


# --- TLS ---------------------------------------------------------------------------


class Pki:
    """A trustme CA and a server certificate, written out as PEM files."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        leaf = self.ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        leaf.private_key_pem.write_to_path(str(self.key_file))
        leaf.cert_chain_pems[0].write_to_path(str(self.cert_file))
        for extra in leaf.cert_chain_pems[1:]:
            extra.write_to_path(str(self.cert_file), append=True)
        self.leaf = leaf

    def server_args(self) -> list[str]:
        return ["--ssl", "--ssl-cert", str(self.cert_file), "--ssl-key", str(self.key_file)]

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)
        return context


# --- the command line alone --------------------------------------------------------


def record_mains(monkeypatch: pytest.MonkeyPatch, module: object, *names: str) -> list[Any]:
    """Replace the async entry points ``module.NAME(opts)`` with one that records ``opts``
    and returns 0: what the command line made of an argv, with nothing run."""
    calls: list[Any] = []

    async def fake(opts: object) -> int:
        calls.append(opts)
        return 0

    for name in names:
        monkeypatch.setattr(module, name, fake)
    return calls

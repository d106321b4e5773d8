"""connect/listen end to end: real processes, real loopback sockets, nothing lost.

Every test runs ``python -m ncat_trio`` in subprocesses with explicit stdio, port 0
and the ``listening on`` readiness line, and bounds every wait.  The promises checked
(DESIGN.md §3): every byte arrives both ways (sha256), a half-close in either
direction loses nothing, and each failure is its documented exit code plus exactly one
``ncat-trio: what: why`` line on stderr.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support import (
    NCAT,
    Drain,
    Feed,
    ServeOnce,
    finish,
    ipv6_loopback_available,
    one_error_line,
    random_files,
    read_line,
    reaped,
    receive_all,
    send_until_stopped,
    sha256,
    sha256_file,
    spawn,
    spawn_listener,
    wait_for_port,
)

BIG = 64 << 20  # each way, in the both-directions test
REPLY = 8 << 20  # the listener's reply to a request-then-FIN client

#: The kernel-copy fast paths (splice/sendfile) and the portable user-space pump.
COPY_PATHS = pytest.mark.parametrize(
    "copy", [[], ["--no-zerocopy"]], ids=["zerocopy", "user-space"]
)

needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1)")


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different 64 MiB random files: one for each direction."""
    return random_files(tmp_path_factory.mktemp("payloads"), BIG, ("up.bin", "down.bin"))


def outcome(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> tuple[int, bytes, bytes]:
    """Wait for exit; return (code, stdout, stderr) and close every pipe.

    Pipes still open are drained concurrently (no deadlock on a full pipe).  A pipe
    given to a :class:`Feed` or :class:`Drain` counts as empty here: wait for that
    Drain first, so that it has closed the pipe.
    """
    with proc:
        drains = [
            Drain(pipe) if pipe is not None and not pipe.closed else None
            for pipe in (proc.stdout, proc.stderr)
        ]
        code = finish(proc, timeout)
        out, err = (b"" if drain is None else drain.wait(timeout) for drain in drains)
    return code, out, err


def run_ncat(
    args: list[str], *, stdin: bytes = b"", timeout: float = 20.0
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*NCAT, *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )


# --- everything arrives, both ways at once ---------------------------------------------


@COPY_PATHS
def test_64_mib_each_way_from_and_to_files(
    copy: list[str], payloads: tuple[Path, Path], tmp_path: Path
) -> None:
    """Regular files on stdin and stdout of both ends (sendfile, or plain reads/writes)."""
    up, down = payloads
    listener_out, client_out = tmp_path / "listener.out", tmp_path / "client.out"
    with down.open("rb") as stdin, listener_out.open("wb") as stdout:
        listener, port = spawn_listener(
            ["listen", *copy, "127.0.0.1", "0"], stdin=stdin, stdout=stdout
        )
    with up.open("rb") as stdin, client_out.open("wb") as stdout:
        client = spawn(
            [*NCAT, "connect", *copy, "127.0.0.1", str(port)], stdin=stdin, stdout=stdout
        )
    for proc in (client, listener):
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (0, b"")
    assert sha256_file(client_out) == sha256_file(down)
    assert sha256_file(listener_out) == sha256_file(up)


@COPY_PATHS
def test_64_mib_each_way_through_pipes(copy: list[str], payloads: tuple[Path, Path]) -> None:
    """Pipes on stdin and stdout of both ends (splice, or plain reads/writes), written and
    read concurrently by the test.

    Uses the nc spellings (``-l HOST PORT``, ``HOST PORT``) that nc users type.
    """
    up, down = (path.read_bytes() for path in payloads)
    listener, port = spawn_listener(
        ["-l", *copy, "127.0.0.1", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    client = spawn([*NCAT, *copy, "127.0.0.1", str(port)], stdin=subprocess.PIPE)
    with reaped(listener, client):
        assert listener.stdin
        assert listener.stdout
        assert client.stdin
        assert client.stdout
        feeds = [Feed(listener.stdin, down), Feed(client.stdin, up)]
        at_client = Drain(client.stdout, keep=False)
        at_listener = Drain(listener.stdout, keep=False)
        for feed in feeds:
            feed.wait(60)
        at_client.wait(60)
        at_listener.wait(60)
        assert outcome(client) == (0, b"", b"")  # stdin and stdout belong to Feed/Drain
        assert outcome(listener) == (0, b"", b"")
    assert (at_client.count, at_client.hexdigest) == (len(down), sha256(down))
    assert (at_listener.count, at_listener.hexdigest) == (len(up), sha256(up))


# --- half-close: whoever finishes first, nothing is cut off ----------------------------


def test_request_then_fin_client_gets_the_whole_reply(tmp_path: Path) -> None:
    """The case every common nc gets wrong in listen mode (it stops at the client's FIN)."""
    reply = os.urandom(REPLY)
    (tmp_path / "reply").write_bytes(reply)
    with (tmp_path / "reply").open("rb") as stdin:
        listener, port = spawn_listener(["listen", "127.0.0.1", "0"], stdin=stdin)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(b"GET /big\r\n")
        client.shutdown(socket.SHUT_WR)
        received = receive_all(client)
    out, err = listener.communicate(timeout=30)
    assert listener.returncode == 0, err
    assert (len(received), sha256(received)) == (len(reply), sha256(reply))
    assert out == b"GET /big\r\n"


def test_request_then_fin_ncat_trio_client_gets_the_whole_reply() -> None:
    """The same with ncat-trio on both ends (listener stdin is a pipe this time)."""
    reply = os.urandom(REPLY)
    listener, port = spawn_listener(["listen", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    assert listener.stdin is not None
    feed = Feed(listener.stdin, reply)
    client = run_ncat(["connect", "127.0.0.1", str(port)], stdin=b"GET /big\r\n", timeout=30)
    feed.wait()
    code, out, err = outcome(listener)
    assert (client.returncode, client.stderr) == (0, b"")
    assert (code, err) == (0, b"")
    assert (len(client.stdout), sha256(client.stdout)) == (len(reply), sha256(reply))
    assert out == b"GET /big\r\n"


@pytest.mark.parametrize(
    "flags", [[], ["--connect-timeout", "1"]], ids=["plain", "connect-timeout-1s"]
)
def test_reply_two_seconds_after_our_eof_is_still_heard(flags: list[str]) -> None:
    """socat gives up 0.5 s after EOF; we wait for the peer's FIN however long it takes.
    ``--connect-timeout`` bounds connecting only: a 1 s one changes nothing.  (``-w`` is
    nc.openbsd's connect *and* idle limit since issue 16: tests/e2e/test_nc_compat.py.)

    The server's 2 s pause is the scenario under test (a slow server), not synchronisation.
    """
    reply = os.urandom(1 << 20)

    def slow_server(conn: socket.socket) -> bytes:
        request = receive_all(conn)
        time.sleep(2)
        conn.sendall(reply)
        return request

    with ServeOnce(slow_server) as server:
        client = run_ncat(["connect", *flags, "127.0.0.1", str(server.port)], stdin=b"PING\r\n")
        assert server.result() == b"PING\r\n"
    assert (client.returncode, client.stderr) == (0, b"")
    assert sha256(client.stdout) == sha256(reply)


@COPY_PATHS
def test_peer_eof_while_stdin_still_flows_does_not_truncate_the_upload(copy: list[str]) -> None:
    """The server half-closes right after the first bytes; the rest of stdin still goes."""
    upload = os.urandom(16 << 20)
    first = 1 << 20
    server_closed = threading.Event()

    def early_closer(conn: socket.socket) -> bytes:
        head = b""
        while len(head) < first:
            head += conn.recv(first - len(head))
        conn.sendall(b"bye\n")
        conn.shutdown(socket.SHUT_WR)
        server_closed.set()
        return head + receive_all(conn)

    with ServeOnce(early_closer) as server:
        client = spawn(
            [*NCAT, "connect", *copy, "127.0.0.1", str(server.port)], stdin=subprocess.PIPE
        )
        assert client.stdin is not None
        assert client.stdout is not None
        # The first MiB goes out, the peer's FIN comes back, and only then the other 15
        # MiB are written: stdin is a pipe that is still open at the peer's EOF.
        os.write(client.stdin.fileno(), upload[:first])
        assert read_line(client.stdout) == b"bye\n"
        assert server_closed.wait(30)
        feed = Feed(client.stdin, upload[first:])
        feed.wait()
        received = server.result()
    assert outcome(client) == (0, b"", b"")  # "bye\n" was read above
    assert (len(received), sha256(received)) == (len(upload), sha256(upload))


# --- stdout closed downstream: `| head -c 10` ------------------------------------------


def _endless_sender(conn: socket.socket) -> int:
    """Send until the reader goes away; return how much was sent."""
    # the reset of a client that stopped reading (an OSError) is the expected end
    sent = send_until_stopped(conn, 1 << 30, OSError)
    if sent >= 1 << 30:
        raise AssertionError("the client never stopped reading")
    return sent


class _FillingSender:
    """Sends until the reader goes away, and says when the pipeline is full.

    A 64 KiB send that makes no progress for 2 s means ncat-trio's socket buffer and
    stdout pipe are full while nobody reads stdout yet.  Only then does the test start
    ``head``: whatever ``head`` leaves behind is then *received* data that cannot be
    delivered, so exit 5 is certain on every copy path.  (Started earlier, ``head`` could
    leave while the socket happened to be empty: by the rule of issue 16 §1 that is a
    normal end, exit 0, and the test would depend on the scheduler.)"""

    def __init__(self) -> None:
        self.full = threading.Event()

    def __call__(self, conn: socket.socket) -> int:
        conn.settimeout(2)
        sent = send_until_stopped(conn, 1 << 30, TimeoutError)
        self.full.set()
        conn.settimeout(30)
        return sent + _endless_sender(conn)


def _pipe_into_head(
    args: list[str], full: threading.Event
) -> tuple[subprocess.Popen[bytes], bytes]:
    """``ncat-trio ARGS | head -c 10``, ``head`` started once the sender says the
    pipeline is ``full``; returns the ncat-trio process and head's output."""
    ncat = spawn([*NCAT, *args])
    assert full.wait(30), "the sender never filled the pipeline"
    head = subprocess.Popen(["head", "-c", "10"], stdin=ncat.stdout, stdout=subprocess.PIPE)
    assert ncat.stdout is not None
    ncat.stdout.close()  # only head holds the read end now
    out, _ = head.communicate(timeout=20)
    return ncat, out


@COPY_PATHS
def test_connect_into_head_exits_promptly_with_local_io_error(copy: list[str]) -> None:
    sender = _FillingSender()
    with ServeOnce(sender) as server:
        ncat, out = _pipe_into_head(["connect", *copy, "127.0.0.1", str(server.port)], sender.full)
        with ncat:
            assert out == b"x" * 10
            assert finish(ncat, 10) == 5  # LOCAL_IO
            assert ncat.stderr is not None
            assert "stdout" in one_error_line(ncat.stderr.read())
        assert server.result() > 0


def test_listen_into_head_exits_promptly_with_local_io_error() -> None:
    listener, port = spawn_listener(["listen", "127.0.0.1", "0"])
    assert listener.stdout is not None
    assert listener.stderr is not None
    sender = _FillingSender()
    with (
        listener,
        socket.create_connection(("127.0.0.1", port), timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        sent = pool.submit(sender, client)
        assert sender.full.wait(30), "the sender never filled the pipeline"
        head = subprocess.Popen(["head", "-c", "10"], stdin=listener.stdout, stdout=subprocess.PIPE)
        listener.stdout.close()
        out, _ = head.communicate(timeout=20)
        assert out == b"x" * 10
        assert finish(listener, 10) == 5
        assert sent.result(30) > 0
        assert "stdout" in one_error_line(listener.stderr.read())


def test_bash_pipeline_into_head_reports_exit_5(tmp_path: Path) -> None:
    """The way scripts meet it: `set -o pipefail` and ${PIPESTATUS[0]}.  The reader
    waits on a FIFO until the sender has filled the pipeline (see _FillingSender)."""
    go = tmp_path / "go"
    os.mkfifo(go)
    sender = _FillingSender()
    with ServeOnce(sender) as server:
        script = (
            "set -o pipefail; "
            f'"$@" connect 127.0.0.1 {server.port} </dev/null'
            f' | {{ read -r _ < "{go}"; head -c 10 >/dev/null; }}; '
            "echo ${PIPESTATUS[0]}"
        )
        shell = spawn(["bash", "-c", script, "bash", *NCAT])
        assert sender.full.wait(30), "the sender never filled the pipeline"
        go.write_bytes(b"go\n")  # blocks until the reader's read opens the FIFO
        out, err = shell.communicate(timeout=20)
        server.result()
    assert out == b"5\n", err
    one_error_line(err)


# --- failures: exit code and one line ----------------------------------------------------


def test_refused() -> None:
    with socket.socket() as closed:  # bound, never listening: the port refuses
        closed.bind(("127.0.0.1", 0))
        result = run_ncat(["connect", "127.0.0.1", str(closed.getsockname()[1])])
    assert result.returncode == 1
    assert "refused" in one_error_line(result.stderr)


@pytest.mark.parametrize(
    ("args", "host"),
    [(["no-such-host.invalid"], "no-such-host.invalid"), (["-n", "localhost"], "localhost")],
    ids=["invalid-tld", "name-with-numeric-only"],
)
def test_unknown_host(args: list[str], host: str) -> None:
    """``.invalid`` never resolves (RFC 6761); RES_OPTIONS bounds the wait when DNS is
    unreachable.  With -n a name is refused without any lookup at all."""
    result = subprocess.run(
        [*NCAT, "connect", *args, "80"],
        capture_output=True,
        timeout=30,
        check=False,
        env={**os.environ, "RES_OPTIONS": "timeout:1 attempts:1"},
    )
    assert result.returncode == 1
    assert f"cannot resolve {host}" in one_error_line(result.stderr)


def test_peer_reset_mid_transfer_is_exit_3() -> None:
    """A reset loses data in flight: never exit 0 for it."""

    def resetter(conn: socket.socket) -> bytes:
        head = conn.recv(65536)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return head  # leaving the handler closes: SO_LINGER 0 turns that into RST

    with ServeOnce(resetter) as server:
        client = spawn([*NCAT, "connect", "127.0.0.1", str(server.port)], stdin=subprocess.PIPE)
        with reaped(client):
            assert client.stdin is not None
            client.stdin.write(b"partial upload")
            client.stdin.flush()
            assert server.result() == b"partial upload"
            code, out, err = outcome(client)  # stdin still open: only the RST can end it
        assert (code, out) == (3, b"")
        assert "reset" in one_error_line(err)


def test_source_address() -> None:
    """-s binds the local address (127.0.0.2 is loopback too on Linux)."""

    def peer_of(conn: socket.socket) -> str:
        host: str = conn.getpeername()[0]
        conn.sendall(b"ok\n")
        conn.shutdown(socket.SHUT_WR)
        receive_all(conn)
        return host

    with ServeOnce(peer_of) as server:
        client = run_ncat(["connect", "-s", "127.0.0.2", "127.0.0.1", str(server.port)])
        assert server.result() == "127.0.0.2"
    assert (client.returncode, client.stdout, client.stderr) == (0, b"ok\n", b"")


@pytest.mark.parametrize(
    "args",
    [
        ["connect", "127.0.0.1", "0x"],
        ["connect", "127.0.0.1", "70000"],
        ["connect", "--", "127.0.0.1", "-1"],
        ["connect", "127.0.0.1", "-1"],  # looks like an option to the parser: still usage
        ["connect", "-p", "70000", "127.0.0.1", "80"],
        ["listen", "0x"],
        ["listen", "70000"],
        ["listen", "--", "-1"],
        ["-l", "-p", "-1"],
    ],
)
def test_bad_port_is_a_usage_error(args: list[str]) -> None:
    result = run_ncat(args)
    assert result.returncode == 2
    one_error_line(result.stderr)


@pytest.mark.parametrize("host", [["127.0.0.1"], []], ids=["ipv4", "dual-stack"])
def test_address_in_use(host: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = run_ncat(["listen", *host, str(taken.getsockname()[1])])
    assert result.returncode == 1
    assert "in use" in one_error_line(result.stderr)


def test_connect_timeout() -> None:
    """A listener with backlog 0 and a full accept queue drops further SYNs on Linux,
    so our SYN goes unanswered (retransmitted after 1 s, 3 s, ...): -w must fire."""
    with socket.socket() as full, socket.socket() as filler:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        filler.connect(full.getsockname())  # the one slot of the accept queue is taken
        result = run_ncat(["connect", "-w", "1", "127.0.0.1", str(full.getsockname()[1])])
    assert result.returncode == 4
    assert "timed out" in one_error_line(result.stderr)


def _unused_port() -> int:
    # The one exception to "port 0 always": self-connect needs a concrete port that
    # nobody listens on, used as both source and target port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_self_connect_is_a_connect_failure() -> None:
    """Source port == target port on loopback with no listener: TCP simultaneous open
    connects the socket to itself; that is reported, not used as a connection."""
    for _attempt in range(2):  # once more if another process grabbed the port meanwhile
        port = str(_unused_port())
        result = run_ncat(["connect", "-p", port, "127.0.0.1", port])
        if b"in use" not in result.stderr:
            break
    assert result.returncode == 1
    assert "connected to itself" in one_error_line(result.stderr)


@pytest.fixture
def silent_server() -> Iterator[tuple[ServeOnce[bytes], threading.Event]]:
    """A server that never sends and never closes until released; returns what it got."""
    release = threading.Event()

    def hold(conn: socket.socket) -> bytes:
        data = receive_all(conn)  # until the client's FIN (or its exit)
        assert release.wait(30)
        return data

    with ServeOnce(hold) as server:
        yield server, release
        release.set()
        server.result()


def test_idle_timeout_in_connect_mode(
    silent_server: tuple[ServeOnce[bytes], threading.Event],
) -> None:
    server, _ = silent_server
    client = spawn(
        [*NCAT, "connect", "-i", "1", "127.0.0.1", str(server.port)], stdin=subprocess.PIPE
    )
    with client:  # stdin stays open and silent until ncat-trio has exited
        assert finish(client, 20) == 4
        assert client.stderr is not None
        assert "idle" in one_error_line(client.stderr.read())


def test_idle_timeout_in_listen_mode() -> None:
    listener, port = spawn_listener(["listen", "-i", "1", "127.0.0.1", "0"], stdin=subprocess.PIPE)
    with listener, socket.create_connection(("127.0.0.1", port), timeout=30):
        assert finish(listener, 20) == 4
        assert listener.stderr is not None
        assert "idle" in one_error_line(listener.stderr.read())


def test_linger_exits_0_although_the_peer_never_closes(
    silent_server: tuple[ServeOnce[bytes], threading.Event],
) -> None:
    server, release = silent_server
    result = run_ncat(["connect", "-q", "1", "127.0.0.1", str(server.port)], stdin=b"hello\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    release.set()
    assert server.result() == b"hello\n"


# --- one-way modes and --no-shutdown ---------------------------------------------------


def test_send_only_discards_what_arrives() -> None:
    upload, reply = os.urandom(1 << 20), os.urandom(1 << 20)

    def chatty(conn: socket.socket) -> bytes:
        conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)
        return receive_all(conn)

    with ServeOnce(chatty) as server:
        result = run_ncat(["connect", "--send-only", "127.0.0.1", str(server.port)], stdin=upload)
        assert sha256(server.result()) == sha256(upload)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


@pytest.mark.parametrize("flag", ["--recv-only", "-d"])
def test_recv_only_never_reads_stdin(flag: str, tmp_path: Path) -> None:
    reply = os.urandom(1 << 20)
    (tmp_path / "stdin").write_bytes(b"must stay unread")

    def replier(conn: socket.socket) -> bytes:
        conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)
        return receive_all(conn)

    with ServeOnce(replier) as server, (tmp_path / "stdin").open("rb") as stdin:
        client = spawn([*NCAT, "connect", flag, "127.0.0.1", str(server.port)], stdin=stdin)
        out, err = client.communicate(timeout=20)
        assert server.result() == b""  # nothing sent, not even from the shared stdin
        # The child shares our open file description: its offset says nothing was read.
        assert os.lseek(stdin.fileno(), 0, os.SEEK_CUR) == 0
    assert (client.returncode, err) == (0, b"")
    assert sha256(out) == sha256(reply)


@pytest.mark.parametrize(
    ("flags", "fin_expected"),
    [([], True), (["--no-shutdown"], False)],
    ids=["default", "no-shutdown"],
)
def test_fin_at_stdin_eof_unless_no_shutdown(
    flags: list[str], fin_expected: bool, tmp_path: Path
) -> None:
    """stdin EOF sends FIN by default; --no-shutdown keeps the write side open until the
    peer closes.  The server looks for the FIN only after a round trip through our stdout
    that starts after all of stdin arrived, so a FIN sent at stdin EOF is already there."""
    upload = os.urandom(256 << 10)
    (tmp_path / "stdin").write_bytes(upload)
    echoed = threading.Event()

    def prober(conn: socket.socket) -> tuple[bytes, bool]:
        received = b""
        while len(received) < len(upload):
            received += conn.recv(len(upload) - len(received))
        conn.sendall(b"ping\n")
        assert echoed.wait(30)
        if fin_expected:
            fin = conn.recv(1) == b""  # blocking: the FIN must come
        else:
            conn.settimeout(0)  # a look, not a wait (a timeout socket polls first)
            try:
                fin = conn.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                fin = False
            conn.settimeout(30)
        conn.sendall(b"bye\n")
        conn.shutdown(socket.SHUT_WR)
        return received + receive_all(conn), fin

    with ServeOnce(prober) as server, (tmp_path / "stdin").open("rb") as stdin:
        client = spawn([*NCAT, "connect", *flags, "127.0.0.1", str(server.port)], stdin=stdin)
        assert client.stdout is not None
        assert read_line(client.stdout) == b"ping\n"
        echoed.set()
        received, fin = server.result()
        out, err = client.communicate(timeout=20)
    assert fin is fin_expected
    assert sha256(received) == sha256(upload)
    assert (client.returncode, out, err) == (0, b"bye\n", b"")


# --- listen: -k, IPv6, dual stack -----------------------------------------------------


def _talk(host: str, port: int, message: bytes) -> bytes:
    """Connect, send ``message``, half-close, return everything until the server's FIN."""
    with socket.create_connection((host, port), timeout=30) as client:
        client.sendall(message)
        client.shutdown(socket.SHUT_WR)
        return receive_all(client)


def test_keep_open_serves_two_clients_one_after_another() -> None:
    listener, port = spawn_listener(["listen", "-k", "127.0.0.1", "0"])
    assert listener.stdout is not None
    try:
        assert _talk("127.0.0.1", port, b"one\n") == b""
        assert read_line(listener.stdout) == b"one\n"
        assert _talk("127.0.0.1", port, b"two\n") == b""
        assert read_line(listener.stdout) == b"two\n"
        assert listener.poll() is None  # still serving
    finally:
        listener.terminate()
        listener.communicate(timeout=10)


def test_keep_open_survives_a_client_that_reset_while_queued() -> None:
    """A client that connects and resets while we serve another is accepted already dead
    (getpeername: ENOTCONN).  That is one line on stderr, then the next client."""
    listener, port = spawn_listener(["listen", "-k", "127.0.0.1", "0"])
    with reaped(listener):
        assert listener.stdout is not None
        with socket.create_connection(("127.0.0.1", port), timeout=30) as first:
            first.sendall(b"one\n")
            assert read_line(listener.stdout) == b"one\n"  # accepted and being served
            with socket.create_connection(("127.0.0.1", port), timeout=30) as doomed:
                doomed.sendall(b"lost\n")
                doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            first.shutdown(socket.SHUT_WR)
            assert receive_all(first) == b""
        assert _talk("127.0.0.1", port, b"three\n") == b""
        assert read_line(listener.stdout) == b"three\n"
        listener.terminate()
        code, _, err = outcome(listener)
    assert code == 143
    lines = err.decode().splitlines()
    assert "Traceback" not in err.decode(), err.decode()
    assert len(lines) == 2, lines  # the dead client, then "interrupted by SIGTERM"
    assert lines[0].startswith("ncat-trio: connection"), lines


def test_without_keep_open_the_listener_serves_one_client() -> None:
    listener, port = spawn_listener(["listen", "127.0.0.1", "0"])
    assert _talk("127.0.0.1", port, b"one\n") == b""
    out, err = listener.communicate(timeout=20)
    assert (listener.returncode, out, err) == (0, b"one\n", b"")
    with pytest.raises(ConnectionRefusedError):
        _talk("127.0.0.1", port, b"two\n")


@needs_ipv6
def test_ipv6_connect_and_listen() -> None:
    up, down = os.urandom(1 << 20), os.urandom(1 << 20)
    listener = spawn([*NCAT, "listen", "::1", "0"], stdin=subprocess.PIPE)
    assert listener.stderr is not None
    assert listener.stdin is not None
    line = read_line(listener.stderr)
    assert line.startswith(b"ncat-trio: listening on [::1]:"), line
    port = int(line.rsplit(b":", 1)[1])
    assert listener.stdout is not None
    feed, received = Feed(listener.stdin, down), Drain(listener.stdout)
    client = run_ncat(["connect", "-v", "::1", str(port)], stdin=up)
    feed.wait()
    assert sha256(received.wait()) == sha256(up)
    assert outcome(listener) == (0, b"", b"")
    assert client.returncode == 0
    assert b"connected to [::1]:" in client.stderr
    assert sha256(client.stdout) == sha256(down)


@needs_ipv6
def test_default_listener_is_dual_stack_on_one_port() -> None:
    """No host: one ``::`` socket takes IPv4 (mapped) and IPv6 clients on the same port."""
    listener = spawn([*NCAT, "listen", "-k", "-v", "0"])
    assert listener.stderr is not None
    assert listener.stdout is not None
    try:
        port = wait_for_port(listener.stderr)
        assert _talk("127.0.0.1", port, b"over IPv4\n") == b""
        assert read_line(listener.stdout) == b"over IPv4\n"
        assert _talk("::1", port, b"over IPv6\n") == b""
        assert read_line(listener.stdout) == b"over IPv6\n"
    finally:
        listener.terminate()
        _, err = listener.communicate(timeout=10)
    peers = [line for line in err.splitlines() if b"connection from" in line]
    assert len(peers) == 2, err
    assert peers[0].startswith(b"ncat-trio: connection from 127.0.0.1:")  # not ::ffff:
    assert peers[1].startswith(b"ncat-trio: connection from [::1]:")


# --- stdio that is neither a pipe nor a file -----------------------------------------


def test_tty_stdin_stops_at_peer_eof() -> None:
    """An interactive user gets their prompt back when the server closes, although the
    terminal never sends EOF (DESIGN.md §3: only a TTY stdin stops at peer EOF)."""

    def greeter(conn: socket.socket) -> bytes:
        conn.sendall(b"220 bye\r\n")
        conn.shutdown(socket.SHUT_WR)
        return receive_all(conn)

    controller, terminal = os.openpty()
    try:
        with ServeOnce(greeter) as server:
            client = spawn([*NCAT, "connect", "127.0.0.1", str(server.port)], stdin=terminal)
            with reaped(client):
                code, out, err = outcome(client)
            assert server.result() == b""  # nothing typed, and no FIN forced by us
    finally:
        os.close(terminal)
        os.close(controller)
    assert (code, out, err) == (0, b"220 bye\r\n", b"")


def test_socket_stdio_both_ways() -> None:
    """stdin and stdout are sockets (inetd, socket activation, socat EXEC): the path
    that cannot be reopened non-blocking and uses worker threads."""
    up, down = os.urandom(4 << 20), os.urandom(4 << 20)

    def echo_side(conn: socket.socket) -> bytes:
        sender = threading.Thread(target=conn.sendall, args=(down,))
        sender.start()
        received = receive_all(conn)
        sender.join(30)
        return received

    stdin_ours, stdin_theirs = socket.socketpair()
    stdout_ours, stdout_theirs = socket.socketpair()
    with stdin_ours, stdin_theirs, stdout_ours, stdout_theirs, ServeOnce(echo_side) as server:
        client = spawn(
            [*NCAT, "connect", "127.0.0.1", str(server.port)],
            stdin=stdin_theirs,
            stdout=stdout_theirs,
        )
        stdin_theirs.close()
        stdout_theirs.close()
        with reaped(client):
            stdin_ours.settimeout(30)
            stdout_ours.settimeout(30)

            def feed_then_eof() -> None:
                stdin_ours.sendall(up)
                stdin_ours.shutdown(socket.SHUT_WR)

            feeder = threading.Thread(target=feed_then_eof)
            feeder.start()
            received = receive_all(stdout_ours)
            feeder.join(30)
            code, _, err = outcome(client)
        assert sha256(server.result()) == sha256(up)
    assert (code, err) == (0, b"")
    assert sha256(received) == sha256(down)


@needs_ipv6
@pytest.mark.parametrize(
    ("flag", "bound", "served", "refused"),
    [("-4", b"0.0.0.0", "127.0.0.1", "::1"), ("-6", b"[::]", "::1", "127.0.0.1")],
)
def test_family_flags_restrict_the_default_listener(
    flag: str, bound: bytes, served: str, refused: str
) -> None:
    listener = spawn([*NCAT, "listen", flag, "0"])
    with reaped(listener):
        assert listener.stderr is not None
        line = read_line(listener.stderr)
        assert line.startswith(b"ncat-trio: listening on " + bound + b":"), line
        port = int(line.rsplit(b":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            _talk(refused, port, b"wrong family\n")
        assert _talk(served, port, b"right family\n") == b""
        assert outcome(listener) == (0, b"right family\n", b"")


def test_file_stdin_is_sent_from_its_offset_and_left_at_eof(tmp_path: Path) -> None:
    """Like cat: a regular-file stdin shared with the shell starts where the shell left
    it, and afterwards the shared offset is at EOF (so a next reader does not resend)."""
    data = os.urandom(3 << 20)
    (tmp_path / "stdin").write_bytes(data)

    def collector(conn: socket.socket) -> bytes:
        return receive_all(conn)

    with ServeOnce(collector) as server, (tmp_path / "stdin").open("rb") as stdin:
        os.lseek(stdin.fileno(), 1000, os.SEEK_SET)
        client = spawn([*NCAT, "connect", "127.0.0.1", str(server.port)], stdin=stdin)
        with reaped(client):
            assert outcome(client) == (0, b"", b"")
        assert sha256(server.result()) == sha256(data[1000:])
        assert os.lseek(stdin.fileno(), 0, os.SEEK_CUR) == len(data)

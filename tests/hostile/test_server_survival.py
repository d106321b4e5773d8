"""Server survival (issue 15): one bad client never ends a server.

Every server mode × every attack; after each attack a real client is served and checked
(sha256 or exact bytes; the exit code of a single-shot server).

TCP attacks:

* ``reset``: connect, then RST (``SO_LINGER`` 0) once the server may have accepted it;
* ``reset-queued``: the same while the server is stopped (SIGSTOP), so the RST lands
  while the client waits in the backlog and ``accept`` hands over a dead socket;
* ``garbage``: 4 KiB of random bytes with NUL, CR/LF, an escape and a TLS record
  header, then FIN;
* ``half``: the first half of the mode's handshake or protocol header, then FIN;
* ``slowloris``: the mode's handshake trickled a byte at a time while the real client
  is served (bounded: it gives up after :data:`SLOWLORIS_SECONDS`);
* ``emfile``: a server that holds many clients at once runs under ``ulimit -n 32`` and
  gets 40 clients at once until it logs "too many open files", then 40 more that
  upload and read while the first 40 reset; then the real client must be served.  A server that takes one client at a time (single-shot, ttcp)
  never holds 40: its soft limit is lowered (prlimit) to the fds it has open, the real
  client queues, EMFILE is logged, the limit is raised.

UDP servers (``listen -u -k``, ``clock serve``) get garbage (random and empty
datagrams), half a frame, a sender gone before the reply (ICMP port unreachable) and
40 senders under ``ulimit -n 32``.

Not generated, on purpose: for a single-shot plain ``listen`` a connected client *is*
the session (a netcat has no handshake), so only what never becomes a client applies
(``reset-queued``, ``emfile``).  Servers that hold many clients are shared by the
attacks of their mode (module scope, started under ``ulimit -n 32``): each test checks
that the process is alive and serves a real client, and the module checks at the end
that none of them wrote a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from ncat_trio.modes.relay import RelayOptions, RelayServer
from ncat_trio.transport import net

from ..relay_ends import connect, receive_all
from ..relay_ends import start_server as start_trio_server
from ..support import NCAT, Drain, finish, outlives_test, read_line, spawn, wait_for_port

FD_LIMIT = 32
FLOOD = 40
SLOWLORIS_SECONDS = 3.0
TIMEOUT = 30.0
EMFILE_LINE = b"too many open files"
GARBAGE = os.urandom(2048) + b"\x00\r\n\x1b[31m\x16\x03\x01\xff\xff\n\x00" + os.urandom(2034)


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


# --- a server under test ---------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    out: Drain
    err: Drain
    tmp: Path
    stopped: threading.Event = field(default_factory=threading.Event)

    def alive(self) -> None:
        assert self.proc.poll() is None, self.err.snapshot().decode("utf-8", "replace")

    def pause(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)  # with its workers and children

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> str:
        """SIGTERM, then SIGKILL for the whole group; the stderr it wrote."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return self.err.wait(TIMEOUT).decode("utf-8", "replace")


def start_server(args: list[str], tmp: Path, *, limited: bool) -> Server:
    proc = spawn(
        [*NCAT, *args],
        preexec_fn=_limit_fds if limited else None,
        start_new_session=True,  # one process group: SIGSTOP/SIGKILL reach workers too
    )
    outlives_test(proc)  # shared_servers (module scope) stops it: Server.stop
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        port = wait_for_port(proc.stderr, TIMEOUT)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return Server(proc, port, Drain(proc.stdout), Drain(proc.stderr), tmp)


# --- real clients ------------------------------------------------------------------------


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def _receive_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_to_stdout(server: Server) -> None:
    """A netcat client: its bytes must reach the server's stdout (-k: shared stdout)."""
    payload = b"real client " + os.urandom(16).hex().encode() * 1024 + b"\n"
    with _connect(server.port) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        _receive_all(conn)  # our FIN is answered by the server's (its stdin is empty)
    server.out.wait_for(payload, TIMEOUT)


def echo(server: Server) -> None:
    """A client of an echoing server (-e cat, -c cat, a relay to an echo server)."""
    payload = os.urandom(200_000)
    with _connect(server.port) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        assert _sha(_receive_all(conn)) == _sha(payload)


def tls_upload(server: Server) -> None:
    """A TLS client of a single-shot ``listen --ssl``: its bytes are the output, exit 0."""
    payload = os.urandom(100_000)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with _connect(server.port) as raw, context.wrap_socket(raw) as conn:
        conn.sendall(payload)
        with contextlib.suppress(ssl.SSLError, OSError):
            conn.unwrap()  # our close_notify; the server's came at once (empty stdin)
    assert finish(server.proc, TIMEOUT) == 0, server.err.snapshot()
    assert _sha(server.out.wait(TIMEOUT)) == _sha(payload)


def plain_single_shot(server: Server) -> None:
    payload = os.urandom(100_000)
    with _connect(server.port) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        _receive_all(conn)
    assert finish(server.proc, TIMEOUT) == 0, server.err.snapshot()
    assert _sha(server.out.wait(TIMEOUT)) == _sha(payload)


def ttcp_transmit(server: Server) -> None:
    """muduo's ttcp: session (number, length), then payloads, each acknowledged."""
    number, length = 4, 4096
    data = (b"0123456789ABCDEF" * (length // 16))[:length]
    with _connect(server.port) as conn:
        conn.sendall(struct.pack(">ii", number, length))
        for _ in range(number):
            conn.sendall(struct.pack(">i", length) + data)
            ack = b""
            while len(ack) < 4:
                chunk = conn.recv(4 - len(ack))
                assert chunk, "the receiver closed before acknowledging"
                ack += chunk
            assert struct.unpack(">i", ack) == (length,)
    server.out.wait_for(f"receive number = {number}".encode(), TIMEOUT)


FRAME = struct.Struct("<qq")


def clock_tcp(server: Server) -> None:
    with _connect(server.port) as conn:
        for sent in (1, 2, 3):
            conn.sendall(FRAME.pack(sent, 0))
            reply = b""
            while len(reply) < FRAME.size:
                chunk = conn.recv(FRAME.size - len(reply))
                assert chunk, "the clock server closed"
                reply += chunk
            assert FRAME.unpack(reply)[0] == sent


def clock_udp(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for sent in (11, 12, 13):  # loopback does not lose datagrams; one retry anyway
            for _ in range(2):
                sock.sendto(FRAME.pack(sent, 0), ("127.0.0.1", server.port))
                with contextlib.suppress(TimeoutError):
                    reply = sock.recv(64)
                    break
            else:
                raise AssertionError("no reply from the clock server")
            assert FRAME.unpack(reply)[0] == sent


def udp_to_stdout(server: Server) -> None:
    payload = b"real datagram " + os.urandom(8).hex().encode() + b"\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, ("127.0.0.1", server.port))
    server.out.wait_for(payload, TIMEOUT)


def send_file(server: Server) -> None:
    """``ncat-trio send`` to a single-shot ``receive --listen -o -``: sha256 and exit 0."""
    payload = os.urandom(300_000)
    source = server.tmp / "payload.bin"
    source.write_bytes(payload)
    sender = subprocess.run(
        [*NCAT, "send", "127.0.0.1", str(server.port), str(source)],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert sender.returncode == 0, sender.stderr
    assert finish(server.proc, TIMEOUT) == 0, server.err.snapshot()
    assert _sha(server.out.wait(TIMEOUT)) == _sha(payload)


# --- the modes -----------------------------------------------------------------------------


def _client_hello() -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


CLIENT_HELLO = _client_hello()
HTTP_START = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow"
TCP_ATTACKS = ("reset", "reset-queued", "garbage", "half", "slowloris", "emfile")
UDP_ATTACKS = ("reset", "garbage", "half", "emfile")


@dataclass(frozen=True)
class Mode:
    name: str
    args: tuple[str, ...]  # "{echo}" is replaced by the echo server's port
    client: Callable[[Server], None]
    handshake: bytes  # what "half" sends half of, and slowloris trickles
    attacks: tuple[str, ...] = TCP_ATTACKS
    single_shot: bool = False  # serves one client, then exits (a server per test)
    one_at_a_time: bool = False  # never holds many clients: EMFILE by prlimit
    udp: bool = False


MODES = [
    Mode("listen", ("listen", "127.0.0.1", "0"), plain_single_shot, HTTP_START,
         attacks=("reset-queued", "emfile"), single_shot=True),
    Mode("listen-k", ("listen", "-k", "127.0.0.1", "0"), upload_to_stdout, HTTP_START),
    Mode("exec", ("listen", "-k", "-e", "/bin/cat", "127.0.0.1", "0"), echo, HTTP_START),
    Mode("sh-exec", ("listen", "-k", "-c", "exec cat", "127.0.0.1", "0"), echo, HTTP_START),
    Mode("ssl", ("listen", "--ssl", "127.0.0.1", "0"), tls_upload, CLIENT_HELLO,
         single_shot=True),
    Mode("udp", ("listen", "-u", "-k", "127.0.0.1", "0"), udp_to_stdout, b"half a datagram",
         attacks=UDP_ATTACKS, udp=True),
    Mode("relay", ("relay", "127.0.0.1:0", "127.0.0.1:{echo}"), echo, HTTP_START),
    Mode("relay-workers", ("relay", "--workers", "2", "127.0.0.1:0", "127.0.0.1:{echo}"),
         echo, HTTP_START),
    Mode("ttcp-k", ("ttcp", "receive", "-k", "-b", "127.0.0.1", "-p", "0"), ttcp_transmit,
         struct.pack(">ii", 4, 4096), one_at_a_time=True),
    Mode("clock-tcp", ("clock", "serve", "--tcp", "-b", "127.0.0.1", "-p", "0"), clock_tcp,
         FRAME.pack(1, 0)),
    Mode("clock-udp", ("clock", "serve", "-b", "127.0.0.1", "-p", "0"), clock_udp,
         FRAME.pack(1, 0), attacks=UDP_ATTACKS, udp=True),
    Mode("receive", ("receive", "--listen", "127.0.0.1", "0", "-o", "-"), send_file,
         b"NCTF\x01\x01\x00\x01" + bytes(18) + b"name", single_shot=True),
]  # fmt: skip


class _Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(1 << 16):
                self.request.sendall(data)
            self.request.shutdown(socket.SHUT_WR)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with _EchoServer(("127.0.0.1", 0), _Echo) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


@pytest.fixture(scope="module")
def shared_servers(
    echo_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    yield servers
    reports = {name: server.stop() for name, server in servers.items()}
    for name, text in reports.items():
        assert "Traceback" not in text, f"{name}:\n{text}"


def _args(mode: Mode, echo_port: int) -> list[str]:
    return [arg.replace("{echo}", str(echo_port)) for arg in mode.args]


# --- the attacks ---------------------------------------------------------------------------


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _drain_briefly(conn: socket.socket, seconds: float = 10.0) -> None:
    """Read what the server answers until it closes (bounded), then close."""
    conn.settimeout(seconds)
    with contextlib.suppress(OSError), conn:
        _receive_all(conn)


def tcp_attack(attack: str, mode: Mode, server: Server) -> Callable[[], None] | None:
    """Run ``attack``; return a function that ends it (slowloris) or None."""
    if attack == "reset":
        conn = _connect(server.port)
        conn.sendall(mode.handshake[:3])
        _reset(conn)
    elif attack == "reset-queued":
        server.pause()
        try:
            _reset(_connect(server.port))
        finally:
            server.resume()
    elif attack == "garbage":
        conn = _connect(server.port)
        with contextlib.suppress(OSError):
            conn.sendall(GARBAGE)
            conn.shutdown(socket.SHUT_WR)
        _drain_briefly(conn)
    elif attack == "half":
        conn = _connect(server.port)
        conn.sendall(mode.handshake[: max(1, len(mode.handshake) // 2)])
        conn.shutdown(socket.SHUT_WR)
        _drain_briefly(conn)
    elif attack == "slowloris":
        return _slowloris(mode, server)
    elif attack == "emfile":
        return _emfile(mode, server)
    return None


def _slowloris(mode: Mode, server: Server) -> Callable[[], None]:
    conn = _connect(server.port)
    conn.sendall(mode.handshake[:1])
    done = threading.Event()

    def trickle() -> None:
        deadline = time.monotonic() + SLOWLORIS_SECONDS
        with contextlib.suppress(OSError), conn:
            for byte in mode.handshake[1 : len(mode.handshake) // 2 + 1]:  # never all
                if done.wait(0.1) or time.monotonic() > deadline:  # the attacker's pace
                    return
                conn.sendall(bytes([byte]))

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()

    def end() -> None:
        done.set()
        thread.join(TIMEOUT)

    return end


def _lowest_free_fd(pid: int) -> int:
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


def _emfile(mode: Mode, server: Server) -> Callable[[], None] | None:
    """Make the server meet EMFILE; return what lifts it (before the real client), or
    None when the real client itself must be the one that waits (prlimit)."""
    if mode.single_shot or mode.one_at_a_time:
        pid = server.proc.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (_lowest_free_fd(pid), hard))

        def lift() -> None:
            server.err.wait_for(EMFILE_LINE, TIMEOUT)  # it met EMFILE with a client queued
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))

        return lift
    if mode.udp:  # no fd per peer: 40 senders at once under the low limit
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(FLOOD)]
        for sender in senders:
            with sender:
                sender.sendto(GARBAGE[:64], ("127.0.0.1", server.port))
        return None
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            flood.append(_connect(server.port))
        server.err.wait_for(EMFILE_LINE, TIMEOUT)
    except BaseException:
        for conn in flood:
            _reset(conn)
        raise
    # FLOOD more clients that upload, half-close and read to the end (or fail: some are
    # turned away while fds are short), queued while the flood lets its fds go: fds
    # come and go while the server duplicates fds, makes pipes, starts children, so
    # EMFILE strikes at every one of those places.
    churn = [threading.Thread(target=_upload_and_read, args=(server.port,), daemon=True)
             for _ in range(FLOOD)]  # fmt: skip
    for thread in churn:
        thread.start()
    for conn in flood:
        _reset(conn)
    for thread in churn:
        thread.join(TIMEOUT)
    return None


def _upload_and_read(port: int) -> None:
    with contextlib.suppress(OSError), _connect(port) as conn:
        conn.settimeout(10)
        conn.sendall(GARBAGE * 16)
        conn.shutdown(socket.SHUT_WR)
        _receive_all(conn)


def udp_attack(attack: str, mode: Mode, server: Server) -> None:
    address = ("127.0.0.1", server.port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if attack == "garbage":
            for size in (0, 1, 512, 1400, 65000):
                sock.sendto((GARBAGE * 16)[:size], address)
        elif attack == "half":
            sock.sendto(mode.handshake[: len(mode.handshake) // 2], address)
        elif attack == "reset":  # gone before the reply: ICMP port unreachable
            sock.sendto(mode.handshake, address)
    if attack == "emfile":
        _emfile(mode, server)


# --- the test ------------------------------------------------------------------------------


CASES = [pytest.param(mode, attack, id=f"{mode.name}-{attack}") for mode in MODES
         for attack in mode.attacks]  # fmt: skip


@pytest.mark.parametrize(("mode", "attack"), CASES)
def test_server_survives_and_serves_a_real_client(
    mode: Mode,
    attack: str,
    echo_port: int,
    shared_servers: dict[str, Server],
    tmp_path: Path,
) -> None:
    if mode.single_shot:
        server = start_server(_args(mode, echo_port), tmp_path, limited=False)
    else:
        if mode.name not in shared_servers:
            shared_servers[mode.name] = start_server(_args(mode, echo_port), tmp_path, limited=True)
        server = shared_servers[mode.name]
    try:
        server.alive()
        if mode.udp:
            udp_attack(attack, mode, server)
            end = None
        else:
            end = tcp_attack(attack, mode, server)
        if attack == "emfile" and end is not None:  # prlimit: the real client queues
            lifter = threading.Thread(target=end, daemon=True)
            lifter.start()
            try:
                mode.client(server)
            finally:
                lifter.join(TIMEOUT)
        else:
            try:
                mode.client(server)  # while a slowloris still trickles
            finally:
                if end is not None:
                    end()
        if not mode.single_shot:
            server.alive()
    finally:
        if mode.single_shot:
            text = server.stop()
            assert "Traceback" not in text, text


# --- a peer's name in a child's environment; a relay whose target is itself -------------


def test_exec_listener_survives_an_abstract_unix_client(tmp_path: Path) -> None:
    """An abstract-namespace Unix client names itself "\\0…" (NUL, newline, escape
    inside): NCAT_REMOTE_ADDR carries it escaped, never raw, and the next client is
    served."""
    path = tmp_path / "exec.sock"
    script = 'printf "%s|" "$NCAT_REMOTE_ADDR"; cat'
    proc = spawn([*NCAT, "listen", "-k", "-U", str(path), "-c", script], start_new_session=True)
    assert proc.stderr is not None
    assert proc.stdout is not None
    try:
        assert b"listening on" in read_line(proc.stderr, TIMEOUT)
        err = Drain(proc.stderr)
        for name in (b"\0evil\nname\x1b[2J", None):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(TIMEOUT)
                if name is not None:
                    conn.bind(name)
                conn.connect(str(path))
                conn.sendall(b"payload")
                conn.shutdown(socket.SHUT_WR)
                reply = _receive_all(conn)
            address, _, echoed = reply.partition(b"|")
            assert echoed == b"payload", (reply, err.snapshot())
            assert address.isascii(), address
            assert address.decode().isprintable(), address
            if name is not None:
                assert address == rb"\x00evil\x0aname\x1b[2J", address
        assert proc.poll() is None, err.snapshot()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


async def _echo_handler(stream: trio.SocketStream) -> None:
    while data := await stream.receive_some(1 << 16):
        await stream.send_all(data)
    await stream.send_eof()


async def _talk(port: int, data: bytes) -> bytes:
    stream = await connect(port)
    async with stream:
        try:
            await stream.send_all(data)
            await stream.send_eof()
            return await receive_all(stream)
        except trio.BrokenResourceError:  # refused: reset
            return b"<reset>"


@pytest.mark.parametrize("with_echo", [False, True], ids=["only-itself", "itself-and-echo"])
async def test_relay_refuses_a_target_that_is_its_own_address(with_echo: bool) -> None:
    """Before: every client after the first timed out (the relay connected to itself,
    which connected to itself...).  Now the loop is refused with one line per client
    and the relay goes on serving (round robin: the echo target when there is one)."""
    lines: list[str] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            listener = await net.open_tcp_listener(net.Endpoint("127.0.0.1", 0))
            itself = net.Endpoint("127.0.0.1", listener.socket.getsockname()[1])
            targets = [itself]
            if with_echo:
                targets.append(net.Endpoint("127.0.0.1", await start_trio_server(
                    nursery, _echo_handler)))  # fmt: skip
            server = RelayServer(
                RelayOptions(listen=itself, targets=tuple(targets)), log=lines.append
            )
            await nursery.start(server.serve, listener)
            replies = [await _talk(itself.port, b"ping %d" % i) for i in range(4)]
            stats = server.statistics()
            nursery.cancel_scope.cancel()
    assert stats.accepted == 4  # no connection from itself was ever made
    if with_echo:
        assert replies == [b"ping %d" % i for i in range(4)]
        assert lines == []
    else:
        assert all(reply in (b"", b"<reset>") for reply in replies), replies
        assert len(lines) == 4, lines
        assert all("own listening address" in line and "loop" in line for line in lines)

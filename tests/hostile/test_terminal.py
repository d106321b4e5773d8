"""Hostile tests, *terminal* class: nothing a peer or a typo sends may drive the terminal.

Attack: bytes chosen by someone else reach stderr — a proxy's reason phrase, a SOCKS
reply, a transfer receiver's failure text, an NTP kiss-o'-death code, a Unix peer's
abstract name — carrying an OSC title escape (``ESC ]0;pwned BEL``), a C1 CSI
(``\\x9b``, raw and UTF-8 encoded), NUL, CR and LF.  And local input that used to end
in a traceback (exit 70): an SNI name IDNA refuses, 300-byte names, non-ASCII ALPN, a
Ctrl-C while Python is still importing.

What must hold, for every case (:func:`assert_terminal_safe`): stderr is UTF-8 with no
byte below 0x20 but the ``\\n`` line ends, no DEL, no C1 (U+0080-U+009F), no
traceback, every line starts ``ncat-trio: `` (exactly one line per error), and the
exit code is the documented one.  Each test runs ``python -m ncat_trio`` against a
real socket on 127.0.0.1 (or a Unix socket).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncat_trio.errors import ExitCode
from ncat_trio.proto import ntp
from ncat_trio.proto import transfer_wire as wire
from ncat_trio.proto.transfer import TransferReceiver

from ..support import NCAT, ServeOnce, finish, read_line, reaped, spawn, spawn_listener

#: OSC "set window title", a raw C1 CSI, a UTF-8 encoded C1 CSI, NUL, a bare CR and LF.
EVIL = b"\x1b]0;pwned\x07 \x9b31m \xc2\x9b1J \x00 \r x\ny"


def assert_no_controls(text: str) -> None:
    """No C0 control but ``\\n``, no DEL, no C1 (U+0080-U+009F)."""
    for ch in text:
        code = ord(ch)
        assert ch == "\n" or (code >= 0x20 and code != 0x7F), f"{ch!r} in {text!r}"
        assert not 0x80 <= code <= 0x9F, f"C1 {ch!r} in {text!r}"


def assert_terminal_safe(stderr: bytes, *, lines: int | None = 1) -> str:
    """stderr carries no terminal control at all; ``lines`` lines (None: any number)."""
    text = stderr.decode("utf-8")  # strict: a stray byte would be a failure too
    assert "Traceback" not in text, text
    assert_no_controls(text)
    assert text.endswith("\n") or not text, text
    found = text.splitlines()
    if lines is not None:
        assert len(found) == lines, text
    assert all(line.startswith("ncat-trio: ") for line in found), text
    return text


def run(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*NCAT, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
    )


def read_until(conn: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data


# --- peer-supplied text ---------------------------------------------------------------


def test_http_proxy_reason_phrase_is_escaped() -> None:
    def proxy(conn: socket.socket) -> bytes:
        request = read_until(conn, b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 403 " + EVIL + b"\r\nX: y\r\n\r\n")
        return request

    with ServeOnce(proxy) as server:
        done = run(["connect", "--proxy", f"127.0.0.1:{server.port}", "localhost", "80"])
        assert server.result().startswith(b"CONNECT localhost:80 HTTP/1.1\r\n")
    assert done.returncode == 1, done.stderr  # ProxyRefused: a ConnectError
    text = assert_terminal_safe(done.stderr)
    assert "HTTP 403 \\x1b]0;pwned\\x07 \\x9b31m" in text  # visible, not acted on


def test_http_proxy_status_line_that_is_not_http_is_escaped() -> None:
    def proxy(conn: socket.socket) -> None:
        read_until(conn, b"\r\n\r\n")
        conn.sendall(EVIL + b"\r\n\r\n")

    with ServeOnce(proxy) as server:
        done = run(["connect", "--proxy", f"127.0.0.1:{server.port}", "localhost", "80"])
        server.result()
    assert done.returncode == 6, done.stderr  # the proxy broke HTTP
    assert "not an HTTP response" in assert_terminal_safe(done.stderr)


@pytest.mark.parametrize(
    "reply",
    [
        # an unknown reply code, with a domain "bound address" full of escapes
        b"\x05\x00" + b"\x05\x42\x00\x03" + bytes([len(EVIL)]) + EVIL + b"\x00\x50",
        # not SOCKS at all: the escapes come first
        EVIL,
    ],
    ids=["refusal-with-evil-bound-name", "garbage"],
)
def test_socks5_proxy_replies_are_escaped(reply: bytes) -> None:
    def proxy(conn: socket.socket) -> None:
        conn.recv(3)  # the method offer
        conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionResetError):  # the client may reset: fine
            while conn.recv(4096):
                pass

    with ServeOnce(proxy) as server:
        done = run(
            ["connect", "--proxy", f"127.0.0.1:{server.port}", "--proxy-type", "socks5",
             "localhost", "80"]
        )  # fmt: skip
        server.result()
    assert done.returncode in (1, 6), done.stderr  # refused (1) or broken reply (6)
    assert_terminal_safe(done.stderr)


def test_transfer_receivers_failure_text_is_escaped(tmp_path: Path) -> None:
    """The wire refuses C0 controls in a Failure reason but carries C1 and bidi marks."""
    reason = "disk \u009b31m full \u202etxt.exe \u0085 next line"
    source = tmp_path / "file.bin"
    source.write_bytes(b"x" * 1000)

    def receiver(conn: socket.socket) -> None:
        machine = TransferReceiver()
        while True:
            machine.receive_data(conn.recv(4096))
            event = machine.next_event()
            if isinstance(event, wire.Header):
                break
            assert event is wire.NEED_DATA
        conn.sendall(machine.send(wire.Failure(ExitCode.LOCAL_IO, reason)))
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(4096):
            pass

    with ServeOnce(receiver) as server:
        done = run(["send", "127.0.0.1", str(server.port), str(source)])
        server.result()
    assert done.returncode == 5, done.stderr  # the receiver's code, LOCAL_IO
    text = assert_terminal_safe(done.stderr)
    assert "disk \\x9b31m full \\u202etxt.exe \\x85 next line" in text


def test_ntp_kiss_o_death_code_with_control_bytes() -> None:
    """A stratum-0 reply whose refid is ESC ] 0 BEL: named in hex, never raw."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]
    with server:
        proc = subprocess.Popen(
            [*NCAT, "clock", "probe", "--proto", "ntp", "-p", str(port), "-c", "1",
             "--timeout", "10", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        with reaped(proc):
            request, client = server.recvfrom(1024)
            t1 = ntp.decode_packet(request).transmit
            kiss = ntp.NtpPacket(
                mode=4, stratum=0, reference_id=b"\x1b]0\x07", originate=t1, transmit=t1
            )
            server.sendto(ntp.encode_packet(kiss), client)
            assert finish(proc) == 6
            assert proc.stderr is not None
            stderr = proc.stderr.read()
    text = assert_terminal_safe(stderr, lines=None)
    assert "kiss-o'-death 0x1b5d3007" in text


@pytest.fixture
def unix_dir() -> Iterator[Path]:
    # A short path: sun_path holds 108 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="nt-") as folder:
        yield Path(folder)


def unix_listener(path: str, *flags: str) -> tuple[subprocess.Popen[bytes], bytes]:
    """``listen -v -U path``: the process and its readiness line."""
    proc = spawn([*NCAT, "listen", "-v", *flags, "-U", path])
    assert proc.stderr is not None
    return proc, read_line(proc.stderr)


def test_unix_stream_client_with_an_abstract_evil_name(unix_dir: Path) -> None:
    path = str(unix_dir / "s")
    listener, ready = unix_listener(path)
    with reaped(listener):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.bind(b"\x00" + EVIL)
            client.connect(path)
            client.sendall(b"hello\n")
            client.shutdown(socket.SHUT_WR)
            assert listener.stdout is not None
            assert listener.stdout.read() == b"hello\n"
        assert finish(listener) == 0
        assert listener.stderr is not None
        stderr = ready + listener.stderr.read()
    text = assert_terminal_safe(stderr, lines=None)  # -v: listening, connection, summary
    assert "\\x1b]0;pwned\\x07" in text


def test_unix_datagram_from_an_abstract_evil_name(unix_dir: Path) -> None:
    path = str(unix_dir / "d")
    listener, ready = unix_listener(path, "-u")
    with reaped(listener):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.bind(b"\x00" + EVIL)
            client.sendto(b"hello\n", path)
            assert listener.stdout is not None
            assert listener.stdout.readline() == b"hello\n"
        listener.send_signal(signal.SIGTERM)
        assert finish(listener) == 143
        assert listener.stderr is not None
        stderr = ready + listener.stderr.read()
    text = assert_terminal_safe(stderr, lines=None)
    assert "datagram from @\\x1b]0;pwned\\x07" in text


def test_an_internal_errors_traceback_is_escaped_too(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 70 prints a traceback, which quotes the exception's message: if a bug ever let
    peer text into one, the traceback would carry it.  Each of its lines is escaped.
    (In-process: no real peer can be made to trigger a bug on purpose.)"""
    from ncat_trio import runner

    with pytest.raises(RuntimeError) as caught:
        raise RuntimeError(EVIL.decode("latin-1"))
    assert runner.exit_code_for(caught.value) == 70
    text = capsys.readouterr().err
    assert_no_controls(text)  # a traceback's lines are not "ncat-trio: " lines
    assert "RuntimeError: \\x1b]0;pwned\\x07" in text
    assert text.splitlines()[-1].startswith("ncat-trio: internal error: RuntimeError(")


# --- local input that used to be a traceback (exit 70) ---------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--ssl", "--ssl-servername", ".localhost", "127.0.0.1"], "--ssl-servername"),
        (["--ssl", "--ssl-servername", "a" * 300, "127.0.0.1"], "--ssl-servername"),
        (["--ssl", "--ssl-servername", ".".join(["b" * 63] * 4), "127.0.0.1"], "--ssl-servername"),
        (["--ssl", "--ssl-servername", "evil\x1b]0;x\x07", "127.0.0.1"], "--ssl-servername"),
        (["--ssl", "--ssl-alpn", "h2,\u00e9", "127.0.0.1"], "--ssl-alpn"),
        (["--ssl", "--ssl-alpn", "h\x1b2", "127.0.0.1"], "--ssl-alpn"),
        (["--ssl", ".localhost"], "host"),  # HOST is the SNI name without --ssl-servername
        (["--proxy", "127.0.0.1:9", "--proxy-type", "socks5", "a" * 300], "host"),
        (["--proxy", "127.0.0.1:9", "--proxy-type", "socks4", "x..y"], "host"),
        (["--proxy", "127.0.0.1:9", "evil\r\nX-Injected: 1"], "host"),  # no CONNECT splitting
    ],
    ids=[
        "sni-leading-dot", "sni-300", "sni-255-bytes", "sni-escape", "alpn-non-ascii",
        "alpn-escape", "host-as-sni", "socks5-target-300", "socks4-empty-label", "http-crlf",
    ],
)  # fmt: skip
def test_bad_names_are_usage_errors(args: list[str], flag: str) -> None:
    """Port 9 on 127.0.0.1 is never contacted: the check comes before any socket."""
    done = run(["connect", *args, "9"])
    assert done.returncode == 2, done.stderr
    assert f"invalid {flag} " in assert_terminal_safe(done.stderr)


def test_non_ascii_alpn_bytes_from_argv_are_a_usage_error() -> None:
    """argv bytes that are not UTF-8 arrive as surrogates (PEP 383)."""
    done = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"ncat_trio", b"connect", b"--ssl",
         b"--ssl-alpn", b"h\xff2", b"127.0.0.1", b"9"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "invalid --ssl-alpn 'h\\udcff2'" in assert_terminal_safe(done.stderr)


# --- Ctrl-C during start-up -------------------------------------------------------------


def _before_our_code(returncode: int, stderr: str) -> bool:
    """The handler was not in place yet: Python's own behaviour.

    Before Python installs its SIGINT handler the default action kills the process
    (the shell still reports 130).  During its own initialisation, ``site``, runpy's
    import of the package (``__init__``, ``errors``) and ``__main__``'s few module-level
    lines, a KeyboardInterrupt is a traceback (or a "Fatal Python error") with no frame
    inside ``main()`` or anything it calls.
    """
    frames = [line for line in stderr.splitlines() if "/ncat_trio/" in line and "File " in line]
    early = ("ncat_trio/__init__.py", "ncat_trio/errors.py")
    ours = [
        line
        for line in frames
        if not line.split('"')[1].endswith(early)
        and not ("ncat_trio/__main__.py" in line and line.endswith("in <module>"))
    ]
    python = (
        returncode == -signal.SIGINT or "KeyboardInterrupt" in stderr or "Fatal Python" in stderr
    )
    return python and not ours and "ncat-trio:" not in stderr


def _swallowed_by_python(stderr: str) -> bool:
    """CPython lost the interrupt before our handler existed: a KeyboardInterrupt raised
    inside an import lock's weakref callback is only printed ("Exception ignored")."""
    head = stderr.split("ncat-trio:", 1)[0]
    return "Exception ignored" in head and "KeyboardInterrupt" in head and "/ncat_trio/" not in head


def test_ctrl_c_at_random_moments_of_start_up() -> None:
    """SIGINT at a random moment of start-up (imports, parsing, Trio starting, listening):
    exit 130 and one line, never a traceback from our code, never a hang of ours.

    Python's own start-up (interpreter, ``site``, runpy importing the package) comes
    before any line of ours and keeps Python's behaviour; about 1 run in 150 CPython
    even swallows the KeyboardInterrupt (raised inside an import lock's callback), and
    the process runs on: accepted only with that exact evidence on stderr.
    """
    rng = random.Random(15)
    # The window is start-up itself: measured here (spawn → readiness line), as it
    # stretches on a loaded machine; the Ctrl-C lands anywhere in it or just after.
    began = time.monotonic()
    probe, _ = spawn_listener(["listen", "127.0.0.1", "0"])
    window = max(0.15, (time.monotonic() - began) * 1.2)
    with reaped(probe):
        probe.send_signal(signal.SIGINT)
        assert finish(probe) == 130
    handled = 0
    for _ in range(40):
        proc = subprocess.Popen(
            [*NCAT, "listen", "127.0.0.1", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        with reaped(proc):
            time.sleep(rng.uniform(0, window))  # the attack itself, not synchronisation
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                code = finish(proc)
            assert proc.stderr is not None
            stderr = proc.stderr.read()
        text = stderr.decode("utf-8", "replace")
        if code == 143:  # it ran on: only CPython swallowing the interrupt may explain it
            assert _swallowed_by_python(text), text
            continue
        if _before_our_code(code, text):
            continue
        assert code == 130, text
        lines = assert_terminal_safe(stderr, lines=None).splitlines()
        assert lines[-1] == "ncat-trio: interrupted by SIGINT", text
        assert all(x.startswith("ncat-trio: listening on ") for x in lines[:-1]), text  # ready
        handled += 1
    # Python's own start (20-45 % of the window here, more under load) is not ours.
    assert handled >= 10


def test_ctrl_c_while_parsing_is_not_clicks_abort() -> None:
    """click turns a KeyboardInterrupt into Abort after an empty stderr line: the start-up
    handler raises its own exception instead.  The signal arrives inside click, while
    the options are built (deterministically here, not by timing luck)."""
    code = (
        "import os, signal, sys\n"
        "import ncat_trio.cli.netcat_flags as flags\n"
        "from ncat_trio.__main__ import main\n"
        "orig = flags.tls_options\n"
        "def tls_options(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return orig(*args, **kwargs)\n"
        "flags.tls_options = tls_options\n"
        "sys.argv = ['ncat-trio', 'listen', '127.0.0.1', '0']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert assert_terminal_safe(done.stderr) == "ncat-trio: interrupted by SIGINT\n"


def test_a_start_up_ctrl_c_wrapped_by_the_import_machinery_is_still_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seen once in the random test above: our Interrupted raised inside a class body's
    ``__set_name__`` (an import in progress) came out as a RuntimeError, and a traceback.
    Once the start-up Ctrl-C has been recorded, whatever escapes is that Ctrl-C."""
    import ncat_trio.__main__ as entry
    import ncat_trio.cli
    from ncat_trio import errors

    def wrapped() -> None:
        errors.startup_interrupted = True  # what interrupt_startup records
        raise RuntimeError("Error calling __set_name__") from errors.Interrupted()

    monkeypatch.setattr(ncat_trio.cli, "main", wrapped)
    monkeypatch.setattr(errors, "startup_interrupted", False)
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # main() replaces it
    handler = signal.getsignal(signal.SIGINT)  # and SIGINT's: put back for pytest
    try:
        with pytest.raises(SystemExit) as ended:
            entry.main()
        assert ended.value.code == 130
        assert capsys.readouterr().err == "ncat-trio: interrupted by SIGINT\n"
        # Without a recorded Ctrl-C the error is not ours to hide.
        monkeypatch.setattr(errors, "startup_interrupted", False)
        monkeypatch.setattr(ncat_trio.cli, "main", lambda: (_ for _ in ()).throw(RuntimeError()))
        with pytest.raises(RuntimeError):
            entry.main()
    finally:
        signal.signal(signal.SIGINT, handler)

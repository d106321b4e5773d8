"""Real third-party servers as test fixtures: nginx, tinyproxy, ncat's HTTP proxy, socat.

nginx, tinyproxy and socat cannot listen on port 0 and say which port they got, so for
them alone a free port is found by binding port 0 and closing it, then passed on; a
server that loses the race for it (EADDRINUSE) exits at once and is started again on
another.  ncat takes port 0 (its real port is read from /proc).  Readiness is a connect
that succeeds, tried until a deadline: these programs print no readiness line.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from ..support import Drain, listening_port_of, read_line, require_program, spawn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> bool:
    """True once ``port`` accepts; False if ``proc`` exited first (e.g. lost the port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(0.05)  # a readiness probe: these servers print no readiness line
    raise AssertionError(f"{proc.args!r} not listening on {port} after {timeout} s")


def _silent(argv: list[str]) -> subprocess.Popen[bytes]:
    """``argv`` started with no stdin and its output thrown away."""
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@contextlib.contextmanager
def _serving(start: Callable[[int], subprocess.Popen[bytes]]) -> Iterator[int]:
    """Start a server on a free port (again on another if it lost the port); yield it."""
    for _ in range(5):
        port = free_port()
        proc = start(port)
        try:
            if _listening(proc, port):
                yield port
                return
        finally:
            if proc.poll() is None:
                proc.terminate()
            with proc:
                proc.wait(10)
    raise AssertionError("could not start the server on a free port (5 tries)")


@contextlib.contextmanager
def nginx(root: Path, tmp: Path) -> Iterator[int]:
    """nginx serving ``root`` over HTTP on 127.0.0.1; yields its port."""
    binary = require_program("nginx")

    def start(port: int) -> subprocess.Popen[bytes]:
        conf = tmp / "nginx.conf"
        temp = {name: tmp / name for name in ("cb", "pt", "ft", "ut", "st")}
        conf.write_text(
            "daemon off;\nmaster_process off;\n"
            # as root, nginx would switch to nobody, who cannot read pytest's tmp_path
            "user root;\n"
            f"pid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'};\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"  access_log {tmp / 'access.log'};\n"
            f"  client_body_temp_path {temp['cb']}; proxy_temp_path {temp['pt']};\n"
            f"  fastcgi_temp_path {temp['ft']}; uwsgi_temp_path {temp['ut']};\n"
            f"  scgi_temp_path {temp['st']};\n"
            f"  server {{ listen 127.0.0.1:{port}; root {root}; }}\n"
            "}\n"
        )
        return _silent([binary, "-c", str(conf), "-p", str(tmp)])

    with _serving(start) as port:
        yield port


@contextlib.contextmanager
def tinyproxy(tmp: Path, target_port: int) -> Iterator[int]:
    """tinyproxy on 127.0.0.1 allowing CONNECT to ``target_port``; yields its port."""
    binary = require_program("tinyproxy")

    def start(port: int) -> subprocess.Popen[bytes]:
        conf = tmp / "tinyproxy.conf"
        conf.write_text(
            f"Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 20\nLogLevel Error\n"
            f'PidFile "{tmp / "tinyproxy.pid"}"\nConnectPort {target_port}\n'
        )
        return _silent([binary, "-d", "-c", str(conf)])

    with _serving(start) as port:
        yield port


@contextlib.contextmanager
def ncat_http_proxy() -> Iterator[int]:
    """``ncat -l -k --proxy-type http 127.0.0.1 0``; yields its real port."""
    binary = require_program("ncat")
    proc = _silent([binary, "-l", "-k", "--proxy-type", "http", "127.0.0.1", "0"])
    try:
        deadline = time.monotonic() + 20
        while True:  # ncat prints "Listening on 127.0.0.1:0": the port is in /proc
            try:
                port = listening_port_of(proc.pid)
                break
            except AssertionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        with proc:
            proc.wait(10)


@contextlib.contextmanager
def socat_sha256() -> Iterator[int]:
    """A server that reads to EOF, then answers: ``socat … EXEC:sha256sum`` (one client)."""
    binary = require_program("socat")

    def start(port: int) -> subprocess.Popen[bytes]:
        return _silent(
            [binary, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", "EXEC:sha256sum"]
        )

    with _serving(start) as port:
        yield port


# --- peers for stdin/stdout exchanges: nc.openbsd, ncat, socat --------------------------


def client_argv(peer: str, port: int) -> list[str]:
    """The peer as a client that sends its stdin, FINs at EOF and reads to the end."""
    path = require_program(peer)
    if peer == "nc.openbsd":
        return [path, "-N", "127.0.0.1", str(port)]
    if peer == "ncat":
        return [path, "127.0.0.1", str(port)]
    return [path, "-t", "30", "STDIO", f"TCP:127.0.0.1:{port}"]


_PEER_READY = {
    "nc.openbsd": re.compile(rb"Listening on \S+ (\d+)"),
    # ncat names the port it was asked for (0); it prints the line right after listen()
    # (ncat_core.c, do_listen), so /proc already shows the socket when the line arrives.
    "ncat": re.compile(rb"Listening on "),
    "socat": re.compile(rb"listening on AF=2 \S+:(\d+)"),
}


def start_peer_server(
    peer: str, stdin: IO[bytes], stdout: IO[bytes]
) -> tuple[subprocess.Popen[bytes], int, Drain]:
    """The peer listening on 127.0.0.1 port 0; returns (process, real port, its stderr)."""
    path = require_program(peer)
    argv = {
        "nc.openbsd": [path, "-v", "-n", "-N", "-l", "127.0.0.1", "0"],
        "ncat": [path, "-v", "-l", "127.0.0.1", "0"],
        "socat": [path, "-d", "-d", "-t", "30", "TCP-LISTEN:0,bind=127.0.0.1", "STDIO"],
    }[peer]
    proc = spawn(argv, stdin=stdin, stdout=stdout)
    assert proc.stderr is not None
    try:
        while (match := _PEER_READY[peer].search(read_line(proc.stderr))) is None:
            pass
        port = int(match.group(1)) if match.groups() else listening_port_of(proc.pid)
    except BaseException:
        proc.kill()
        proc.wait()
        proc.stderr.close()
        raise
    return proc, port, Drain(proc.stderr)  # keep draining: the peers log as they go

"""Relay benchmarks: ncat-trio relay against socat's fork relay, as same-run ratios.

Every figure is measured in the same run as the socat figure it is compared with,
alternating the contenders round by round so machine noise hits both alike; the
median of the rounds is reported.  Everything is on 127.0.0.1, every port is 0.

1. One relay hop, nc.openbsd at both ends (``head -c N /dev/zero | nc -N`` → relay →
   ``nc -l > /dev/null``): ncat-trio relay vs ``socat TCP-LISTEN:0,fork,reuseaddr TCP:…``
   with default buffers and with ``-b262144``.  Targets: ≥ 1.2× and ≥ 1.0×.
2. An all-ncat-trio chain (``head -c N /dev/zero | ncat-trio connect`` → ``ncat-trio
   relay`` → ``ncat-trio listen | wc -c``) vs the same chain of ``socat -b262144``.
   Target ≥ 1.25×.  2b: the same with the sinks writing to /dev/null.
3. 1000 concurrent connections × 1 MiB up through the relay (a Trio driver in this
   process is both the clients and the server): wall time vs socat fork, the relay's
   CPU per connection (/proc, socat's children included), and the relay's peak RSS
   (VmHWM).  Target ≤ 48 MiB.
4. 64-byte ping-pong through the relay (a blocking client here, a blocking echo server
   in a subprocess): round trips/s vs socat's relay.  Target ≥ 0.9× (issue 18; it was 0.6× for issue 3).
5. ``--workers 2`` vs 1 with 200 parallel streams (only if the relay has --workers).

Usage:  python benchmarks/bench_relay.py [--quick] [--only 1 2 ...]
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

NCAT = [sys.executable, "-m", "ncat_trio"]
_OURS_READY = re.compile(rb"listening on \S+:(\d+)")
_SOCAT_READY = re.compile(rb"listening on AF=2 \S+:(\d+)")
_NC_READY = re.compile(rb"Listening on \S+ (\d+)")


# --- processes ----------------------------------------------------------------------


def _line_matching(
    proc: subprocess.Popen[bytes], pattern: re.Pattern[bytes], timeout: float = 15
) -> re.Match[bytes]:
    """Read stderr lines until one matches ``pattern``."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        byte = proc.stderr.read(1)
        if not byte:
            break
        buf += byte
        if byte == b"\n":
            match = pattern.search(buf)
            if match:
                return match
            buf = b""
    raise RuntimeError(f"{proc.args!r}: no line matching {pattern.pattern!r}")


def _port_from(proc: subprocess.Popen[bytes], pattern: re.Pattern[bytes]) -> int:
    return int(_line_matching(proc, pattern).group(1))


@contextmanager
def running(
    argv: list[str],
    pattern: re.Pattern[bytes],
    *,
    then: re.Pattern[bytes] | None = None,
    **kwargs: object,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start a listener, yield (process, port), kill it on exit.  With ``then``, the
    stderr line matching it is left for :func:`wait_line` (nothing is discarded before)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
    try:
        port = _port_from(proc, pattern)
        if then is None:  # keep reading stderr so a chatty peer never blocks on it
            threading.Thread(target=_discard, args=(proc.stderr,), daemon=True).start()
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_line(proc: subprocess.Popen[bytes], pattern: re.Pattern[bytes]) -> None:
    """Wait for a stderr line matching ``pattern``, then discard the rest in a thread."""
    _line_matching(proc, pattern)
    threading.Thread(target=_discard, args=(proc.stderr,), daemon=True).start()


def _discard(stream: object) -> None:
    try:
        while stream.read(65536):  # type: ignore[attr-defined]
            pass
    except (OSError, ValueError):
        pass


# The same relay started from the Python API: no command-line parser in the process
# (typer builds pydantic adapters for every option of every command: ~9 MiB of RSS).
_API_RELAY = """
import sys, trio, ncat_trio
from ncat_trio.modes.relay import raise_fd_limit
async def main():
    raise_fd_limit()
    async with ncat_trio.open_relay(targets=[("127.0.0.1", int(sys.argv[1]))]) as relay:
        sys.stderr.write("listening on 127.0.0.1:%d\\n" % relay.port); sys.stderr.flush()
        await trio.sleep_forever()
try:
    trio.run(main)
except KeyboardInterrupt:
    pass
"""


def relay_argv(
    kind: str, target_port: int, extra: list[str] | None = None, *, fork: bool = True
) -> tuple[list[str], re.Pattern[bytes]]:
    """The relay's argv and its readiness pattern; ``fork=False``: socat serves one
    connection in its own process (so that its rusage holds the work)."""
    target = f"127.0.0.1:{target_port}"
    if kind == "ncat-trio":
        return [*NCAT, "relay", *(extra or []), "127.0.0.1:0", target], _OURS_READY
    if kind == "ncat-trio API":
        return [sys.executable, "-c", _API_RELAY, str(target_port)], _OURS_READY
    buffers = ["-b262144"] if kind == "socat -b262144" else []
    argv = [
        "socat",
        "-d",
        "-d",
        *buffers,
        "TCP-LISTEN:0,fork,reuseaddr,backlog=4096,bind=127.0.0.1"
        if fork
        else "TCP-LISTEN:0,reuseaddr,bind=127.0.0.1",
        f"TCP:{target}",
    ]
    return argv, _SOCAT_READY


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a live process, bytes."""
    with open(f"/proc/{pid}/status") as status:
        for row in status:
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
    return 0


@dataclass
class Row:
    name: str
    figure: str
    ratio: str = ""
    target: str = ""


def ratio_row(name: str, over: float, under: float, target: str = "") -> Row:
    """A row with no figure of its own: the ratio of two figures above it."""
    return Row(name, "", f"{over / under:.2f}x", target)


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- 1 and 2: bulk through one hop ------------------------------------------------------


def nc_sink() -> AbstractContextManager[tuple[subprocess.Popen[bytes], int]]:
    """nc.openbsd listening on 127.0.0.1, reading to EOF: (process, port)."""
    return running(["nc.openbsd", "-v", "-n", "-l", "127.0.0.1", "0"], _NC_READY)


def push_zeros(port: int, size: int, sink: subprocess.Popen[bytes]) -> None:
    """``size`` zero bytes into 127.0.0.1:port with nc.openbsd; back once ``sink`` (the
    far end) has had them all and exited."""
    subprocess.run(
        f"head -c {size} /dev/zero | nc.openbsd -N 127.0.0.1 {port}",
        shell=True,
        check=True,
        timeout=300,
    )
    sink.wait(300)


def one_hop_nc(kind: str, size: int) -> float:
    """GB/s of ``size`` zero bytes, nc.openbsd → relay → nc.openbsd."""
    with nc_sink() as (sink, sink_port):
        argv, pattern = relay_argv(kind, sink_port)
        with running(argv, pattern) as (_relay, port):
            start = time.perf_counter()
            push_zeros(port, size, sink)
            return size / (time.perf_counter() - start) / 1e9


def chain(kind: str, size: int, *, to_pipe: bool = True) -> float:
    """GB/s through sender → relay → sink, all ncat-trio or all socat -b262144.

    The sender starts first and connects (the sink logs the relayed connection); the
    clock starts when the bytes start (``head -c`` into the sender's stdin pipe), so
    Python's start-up is not counted against ncat-trio.

    ``to_pipe``: the sink's stdout is a pipe into ``wc -c`` (the shell-pipeline case,
    as in bench_netcat's pipe scenario; the count is checked, so a fast wrong answer is
    caught); otherwise /dev/null, where both sinks discard without copying out."""
    if kind == "ncat-trio":
        sink_argv, sink_ready = [*NCAT, "listen", "-v", "127.0.0.1", "0"], _OURS_READY
        connected = re.compile(rb"connection from")
    else:
        sink_argv = ["socat", "-d", "-d", "-u", "-b262144", "TCP-LISTEN:0,bind=127.0.0.1", "STDOUT"]
        sink_ready, connected = _SOCAT_READY, re.compile(rb"accepting connection from")
    if not to_pipe:
        return _chain(kind, size, sink_argv, sink_ready, connected, subprocess.DEVNULL)
    counted_r, counted_w = os.pipe()
    counter = subprocess.Popen(["wc", "-c"], stdin=counted_r, stdout=subprocess.PIPE)
    os.close(counted_r)
    try:
        gbs = _chain(kind, size, sink_argv, sink_ready, connected, counted_w)
    finally:
        os.close(counted_w)
        out, _ = counter.communicate(timeout=60)
    if int(out) != size:
        raise RuntimeError(f"chain {kind}: {int(out)} of {size} bytes arrived")
    return gbs


def _chain(
    kind: str,
    size: int,
    sink_argv: list[str],
    sink_ready: re.Pattern[bytes],
    connected: re.Pattern[bytes],
    stdout: int,
) -> float:
    with running(sink_argv, sink_ready, then=connected, stdout=stdout) as (sink, sink_port):
        argv, pattern = relay_argv(
            "ncat-trio" if kind == "ncat-trio" else "socat -b262144", sink_port
        )
        with running(argv, pattern) as (_relay, port):
            if kind == "ncat-trio":
                sender_argv = [*NCAT, "connect", "127.0.0.1", str(port)]
            else:
                sender_argv = ["socat", "-u", "-b262144", "STDIN", f"TCP:127.0.0.1:{port}"]
            read_end, write_end = os.pipe()
            sender = subprocess.Popen(sender_argv, stdin=read_end, stdout=subprocess.DEVNULL)
            os.close(read_end)
            try:
                wait_line(sink, connected)
                start = time.perf_counter()
                subprocess.run(
                    ["head", "-c", str(size), "/dev/zero"],
                    stdout=write_end,
                    check=True,
                    timeout=300,
                )
                os.close(write_end)
                write_end = -1
                sink.wait(300)
                elapsed = time.perf_counter() - start
                sender.wait(30)
            finally:
                if write_end >= 0:
                    os.close(write_end)
                if sender.poll() is None:
                    sender.kill()
                    sender.wait()
            return size / elapsed / 1e9


def relay_cpu(kind: str, size: int) -> float:
    """CPU seconds the relay process spends per GiB on one nc → relay → nc hop.

    Stable where wall-clock figures are not (a shared machine): ours is measured with
    wait4 after SIGTERM, minus the CPU of starting and stopping an idle relay; socat runs
    without ``fork`` here so that its own rusage holds the work."""
    with nc_sink() as (sink, sink_port):
        argv, pattern = relay_argv(kind, sink_port, fork=False)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        port = _port_from(proc, pattern)
        threading.Thread(target=_discard, args=(proc.stderr,), daemon=True).start()
        push_zeros(port, size, sink)
        if kind == "ncat-trio":
            proc.send_signal(signal.SIGTERM)
        cpu = _cpu_of(proc)
    if kind == "ncat-trio":
        idle = subprocess.Popen(
            [*NCAT, "relay", "127.0.0.1:0", "127.0.0.1:9"], stderr=subprocess.PIPE
        )
        _port_from(idle, _OURS_READY)
        idle.send_signal(signal.SIGTERM)
        cpu -= _cpu_of(idle)
    return cpu / (size / (1 << 30))


def _cpu_of(proc: subprocess.Popen[bytes]) -> float:
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


# --- 3: many concurrent connections ---------------------------------------------------


def sink_listener() -> socket.socket:
    """A listening socket on 127.0.0.1 port 0 for the in-process Trio sink."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


async def serve_sink(sock: socket.socket, *, reply_eof: bool, task_status: object) -> None:
    """Read every connection to EOF (then FIN back if asked), until cancelled."""
    import trio

    async def sink(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some(1 << 20):
                pass
            if reply_eof:
                await stream.send_eof()

    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    await trio.serve_listeners(sink, [listener], task_status=task_status)  # type: ignore[arg-type]


def uploads(port: int, sock: socket.socket, count: int, each: int, *, wait_eof: bool) -> float:
    """Wall seconds for ``count`` concurrent uploads of ``each`` zero bytes to ``port``."""
    import trio

    from ncat_trio.modes.relay import raise_fd_limit

    raise_fd_limit()  # count clients + count server ends in this process
    chunk = b"\0" * (256 << 10)

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(serve_sink, sock, reply_eof=wait_eof))

            async def client() -> None:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    left = each
                    while left:
                        piece = chunk[: min(left, len(chunk))]
                        await stream.send_all(piece)
                        left -= len(piece)
                    await stream.send_eof()
                    if wait_eof:
                        while await stream.receive_some(65536):
                            pass

            start = time.perf_counter()
            async with trio.open_nursery() as clients:
                for _ in range(count):
                    clients.start_soon(client)
            elapsed = time.perf_counter() - start
            nursery.cancel_scope.cancel()
        return elapsed

    return trio.run(main)


def many_connections(kind: str, count: int, each: int) -> tuple[float, int, float]:
    """(wall seconds, relay peak RSS, relay CPU seconds) for ``count`` concurrent uploads
    of ``each`` bytes, each finished when the server's FIN has come back through the relay.

    The wall time includes this process, which is both the clients and the sink (one
    Trio thread, ~1 CPU second for 1000 x 1 MiB here) on the same cores as the relay;
    the relay's CPU is its own figure: socat fork's children count once reaped."""
    with sink_listener() as sock:
        argv, pattern = relay_argv(kind, sock.getsockname()[1])
        with running(argv, pattern) as (relay, port):
            before = process_cpu(relay.pid)
            elapsed = uploads(port, sock, count, each, wait_eof=True)
            wait_children_reaped(relay.pid)
            return elapsed, vm_hwm(relay.pid), process_cpu(relay.pid) - before


def process_cpu(pid: int) -> float:
    """CPU seconds of a live process and of its children it has reaped (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime..cstime


def wait_children_reaped(pid: int, timeout: float = 5.0) -> None:
    """Until ``pid`` has no child left (socat fork reaps each on SIGCHLD)."""
    deadline = time.monotonic() + timeout
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        while children.read().strip() and time.monotonic() < deadline:
            time.sleep(0.01)  # a benchmark waiting for another process, not a test
            children.seek(0)


# --- 4: ping-pong -----------------------------------------------------------------------

_ECHO = """
import socket, sys
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8)
sys.stderr.write("Listening on 127.0.0.1 %d\\n" % ls.getsockname()[1]); sys.stderr.flush()
c, _ = ls.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = c.recv(65536)
    if not d: break
    c.sendall(d)
"""


def ping_pong(kind: str, rounds: int) -> float:
    """Round trips per second of 64-byte messages through the relay (or direct)."""
    with running([sys.executable, "-c", _ECHO], _NC_READY) as (_echo, echo_port):
        if kind == "direct":
            return _ping(echo_port, rounds)
        argv, pattern = relay_argv(kind, echo_port)
        with running(argv, pattern) as (_relay, port):
            return _ping(port, rounds)


def _ping(port: int, rounds: int) -> float:
    message = b"x" * 64
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(100):  # warm up
            conn.sendall(message)
            _recv_exactly(conn, 64)
        start = time.perf_counter()
        for _ in range(rounds):
            conn.sendall(message)
            _recv_exactly(conn, 64)
        return rounds / (time.perf_counter() - start)


def _recv_exactly(conn: socket.socket, count: int) -> None:
    while count:
        data = conn.recv(count)
        if not data:
            raise RuntimeError("echo closed")
        count -= len(data)


# --- 5: workers -----------------------------------------------------------------------


def relay_has_workers() -> bool:
    out = subprocess.run([*NCAT, "relay", "--help"], capture_output=True, check=False).stdout
    return b"--workers" in out


def parallel_streams(workers: int, streams: int, each: int) -> float:
    """GB/s of ``streams`` parallel uploads through ``ncat-trio relay --workers N``."""
    with sink_listener() as sock:
        argv, pattern = relay_argv("ncat-trio", sock.getsockname()[1], ["--workers", str(workers)])
        with running(argv, pattern) as (_relay, port):
            elapsed = uploads(port, sock, streams, each, wait_eof=True)
    return streams * each / elapsed / 1e9


# --- main ------------------------------------------------------------------------------


def rounds_of(funcs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each contender once per round, alternating; return medians."""
    values: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, func in funcs.items():
            values[name].append(func())
    return {name: median(v) for name, v in values.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, one round (seconds)")
    ap.add_argument("--only", nargs="*", type=int, default=[1, 2, 3, 4, 5])
    args = ap.parse_args(argv)
    quick = args.quick
    rounds = 1 if quick else 3
    size = (512 << 20) if quick else (2 << 30)
    rows: list[Row] = []

    if 1 in args.only:
        kinds = ["ncat-trio", "socat", "socat -b262144"]
        gbs = rounds_of({k: (lambda k=k: one_hop_nc(k, size)) for k in kinds}, rounds)  # type: ignore[misc]
        for k in kinds:
            rows.append(Row(f"1. one hop, nc ends: {k}", f"{gbs[k]:.2f} GB/s"))
        rows.append(
            ratio_row("   ncat-trio / socat default", gbs["ncat-trio"], gbs["socat"], ">= 1.2x")
        )
        rows.append(
            ratio_row(
                "   ncat-trio / socat -b262144", gbs["ncat-trio"], gbs["socat -b262144"], ">= 1.0x"
            )
        )
        cpu = rounds_of({k: (lambda k=k: relay_cpu(k, size)) for k in kinds}, rounds)  # type: ignore[misc]
        for k in kinds:
            rows.append(Row(f"1b. relay CPU per GiB (no fork): {k}", f"{cpu[k]:.2f} s"))
        rows.append(
            ratio_row(
                "   socat -b262144 CPU / ncat-trio CPU", cpu["socat -b262144"], cpu["ncat-trio"]
            )
        )
    if 2 in args.only:
        kinds = ["ncat-trio", "socat -b262144"]
        for to_pipe, label, target in ((True, "2. ", ">= 1.25x"), (False, "2b.", "")):
            gbs = rounds_of(
                {k: functools.partial(chain, k, size, to_pipe=to_pipe) for k in kinds},
                rounds,
            )
            sink = "sink | wc -c" if to_pipe else "sink > /dev/null"
            for k in kinds:
                rows.append(
                    Row(f"{label} chain sender->relay->{sink}: all {k}", f"{gbs[k]:.2f} GB/s")
                )
            rows.append(
                ratio_row(
                    "   ncat-trio / socat -b262144", gbs["ncat-trio"], gbs["socat -b262144"], target
                )
            )
    if 3 in args.only:
        count = 200 if quick else 1000
        kinds = ["ncat-trio", "socat", "ncat-trio API"]
        runs: dict[str, list[tuple[float, int, float]]] = {k: [] for k in kinds}
        for _ in range(rounds):  # alternating, as rounds_of: three figures per run
            for k in kinds:
                runs[k].append(many_connections(k, count, 1 << 20))
        ours_t, socat_t = (median([r[0] for r in runs[k]]) for k in kinds[:2])
        ours_rss, api_rss = (max(r[1] for r in runs[k]) for k in (kinds[0], kinds[2]))
        ours_cpu, socat_cpu = (median([r[2] for r in runs[k]]) for k in kinds[:2])
        rows.append(Row(f"3. {count} concurrent x 1 MiB: ncat-trio", f"{ours_t:.2f} s"))
        rows.append(Row(f"   {count} concurrent x 1 MiB: socat fork", f"{socat_t:.2f} s"))
        rows.append(ratio_row("   socat time / ncat-trio time", socat_t, ours_t))
        for name, cpu_s in (("ncat-trio", ours_cpu), ("socat fork", socat_cpu)):
            per = f"{cpu_s / count * 1e3:.2f} ms"
            rows.append(Row(f"   relay CPU per connection: {name}", per))
        rows.append(ratio_row("   socat CPU / ncat-trio CPU", socat_cpu, ours_cpu))
        rows.append(
            Row("   ncat-trio relay peak RSS", f"{ours_rss / (1 << 20):.1f} MiB", "", "<= 48 MiB")
        )
        rows.append(Row("   same, relay run from the Python API", f"{api_rss / (1 << 20):.1f} MiB"))
    if 4 in args.only:
        pings = 3000 if quick else 20000
        kinds = ["direct", "ncat-trio", "socat"]
        rate = rounds_of({k: (lambda k=k: ping_pong(k, pings)) for k in kinds}, rounds)  # type: ignore[misc]
        for k in kinds:
            rows.append(Row(f"4. 64 B ping-pong: {k}", f"{rate[k]:.0f} rt/s"))
        rows.append(ratio_row("   ncat-trio / socat", rate["ncat-trio"], rate["socat"], ">= 0.9x"))
    if 5 in args.only:
        if relay_has_workers():
            streams, each = (50, 8 << 20) if quick else (200, 16 << 20)
            one = parallel_streams(1, streams, each)
            two = parallel_streams(2, streams, each)
            rows.append(Row(f"5. {streams} streams, --workers 1", f"{one:.2f} GB/s"))
            rows.append(
                Row(f"   {streams} streams, --workers 2", f"{two:.2f} GB/s", f"{two / one:.2f}x")
            )
        else:
            rows.append(Row("5. --workers", "not implemented"))

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(
        f"bench_relay ({'quick' if quick else 'full'}: {rounds} round(s), {size >> 20} MiB bulk; "
        f"{os.cpu_count()} cores, fd limit {soft})"
    )
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("name", "figure", "ratio", "target")]
    header = Row("case", "figure", "ratio", "target")
    for r in [header, *rows]:
        print(
            f"{r.name:<{widths[0]}}  {r.figure:>{max(widths[1], 6)}}  {r.ratio:>{max(widths[2], 5)}}  {r.target}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

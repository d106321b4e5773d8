"""Soak: ``listen -k`` and ``relay`` under many concurrent clients, every byte accounted for.

Each client connection does one random thing: uploads a random amount (0 B - 1 MiB by
default), half-closes at a random moment (at once, late, or only after the whole reply),
reads slowly or writes in trickles, or resets abruptly (SO_LINGER 0) half way.  The
relay runs with its own faults mixed in per connection (``--toxicity``): latency with
jitter, slicing, a bandwidth cap and reset-peer.

What is checked, per connection:

* relay: the target (a Trio server in this process) records how many bytes it received,
  their sha256 and whether they ended in a clean EOF or a reset; the client knows what it
  sent.  A clean client must be matched byte for byte (and its reply of random size,
  sha256-checked, must arrive whole); a client that reset must never look clean at the
  target (an RST laundered into a FIN would make a truncated upload look complete) and
  what did arrive must be a prefix of what was sent.  Every connection the relay logged as
  reset (``fault-reset-peer``, ``target-reset``) must have been seen as an error by the
  client, never as a clean short reply.
* listen -k: stdout carries every client's bytes (interleaved in whole chunks when -k is
  concurrent, one after another when it is sequential).  Each connection's bytes are
  derived from its own key, so stdout is split back into connections exactly and each
  clean one is compared with what was sent, byte for byte.  Clients that reset send bytes
  with the high bit set (clean ones never do): what of theirs arrived is only counted
  (it must not exceed what they sent), since a reset makes its length unknowable.
  Uploads here are 0 B or 8 B and up (a 3-byte stream could match anywhere by chance
  when stdout is split); 1-7 byte uploads are checked by the relay soak, whose target
  records every connection separately.  Every client reset must be reported by the
  listener as an error line.
* both: the server's open fds (``/proc/PID/fd``) return to their idle count, its RSS after
  the soak is within ``--rss-slack`` MiB of the RSS after the warm-up, and one more
  connection after it all is served correctly.

Run::

    python benchmarks/soak.py                      # 60 s each for listen -k and relay
    python benchmarks/soak.py --duration 600       # a long soak
    python benchmarks/soak.py --mode relay --json  # one JSON report on stdout
    python benchmarks/soak.py --signals 200        # the signal storm, 200 runs (pytest,
                                                   # TLS handshakes included), per scenario

Exit status 0 when every check held, 1 otherwise (the report says which).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import mmap
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import trio

ROOT = Path(__file__).resolve().parent.parent
NCAT = [sys.executable, "-m", "ncat_trio"]
BLOCK = 1 << 16
HEADER = struct.Struct("!QQ")  # relay uploads start with: connection key, reply size
LINGER_RST = struct.pack("ii", 1, 0)
REPLY_BIT = 1 << 63

# --- deterministic per-connection bytes ------------------------------------------


#: Clients that will reset get keys with this bit, and their bytes have the high bit set;
#: everyone else's bytes have it clear.  When stdout is split back into connections (listen
#: -k), a reset stream's length is only an upper bound, so the only stream that can ever
#: run on into the next chunk undetected is a reset one: the alphabets keep it out of a
#: clean stream's bytes (a 1-byte clean upload cannot be swallowed by chance).
RESET_KEY = 1 << 61
_LOW = bytes(b & 0x7F for b in range(256))
_HIGH = bytes(b | 0x80 for b in range(256))


@functools.lru_cache(maxsize=1024)
def _block(key: int, index: int) -> bytes:
    raw = hashlib.shake_128(key.to_bytes(8, "big") + index.to_bytes(8, "big")).digest(BLOCK)
    return raw.translate(_HIGH if key & RESET_KEY else _LOW)


def stream_bytes(key: int, start: int, size: int) -> bytes:
    """Bytes ``start:start+size`` of connection ``key``'s endless pseudo-random stream."""
    out = bytearray()
    while size > 0:
        index, offset = divmod(start, BLOCK)
        piece = _block(key, index)[offset : offset + size]
        out += piece
        start += len(piece)
        size -= len(piece)
    return bytes(out)


def stream_sha256(key: int, size: int, prefix: bytes = b"") -> str:
    digest = hashlib.sha256(prefix)
    for start in range(0, size, BLOCK):
        digest.update(stream_bytes(key, start, min(BLOCK, size - start)))
    return digest.hexdigest()


def log_uniform(rng: random.Random, top: int) -> int:
    """Sizes spread over every order of magnitude up to ``top`` (0 included)."""
    if rng.random() < 0.05:
        return 0
    return min(top, int(2 ** rng.uniform(0, top.bit_length())))


# --- watching the server process -------------------------------------------------


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class LineReader:
    """Collects a pipe's lines in a thread (stderr of the server), with a readiness wait."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for raw in self._stream:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    raise RuntimeError(f"no line matching {pattern!r}: {self.lines[-5:]}")
                self._cond.wait(left)

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)


class SlowFileSink:
    """Copies the server's stdout pipe to a file in a thread, pausing now and then so
    the server meets a slow reader (backpressure) as well as a fast one."""

    def __init__(self, stream: IO[bytes], path: Path, seed: int) -> None:
        self.path = path
        self.count = 0
        self._stream = stream
        self._rng = random.Random(seed)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = self._stream.fileno()
        with self.path.open("wb") as out:
            while chunk := os.read(fd, 1 << 18):
                out.write(chunk)
                self.count += len(chunk)
                if self._rng.random() < 0.02:
                    time.sleep(self._rng.uniform(0.001, 0.02))  # a slow reader, on purpose

    def join(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("server stdout never reached EOF")


# --- results ---------------------------------------------------------------------


@dataclass
class Outcome:
    """One client connection as the client saw it."""

    key: int
    port: int  # the client's local port (names it in the server's log)
    kind: str  # normal, slow-reader, trickle, late-fin, reply-first-fin, reset
    sent: int = 0  # bytes the client handed to the kernel (reset: before the RST)
    sent_sha: str = ""
    reply_size: int = 0
    reply_got: int = 0
    reply_ok: bool = False
    ended: str = "?"  # ok, client-reset, reset-seen, short (a loss), connect-failed


@dataclass
class ServerReport:
    """Figures for one server under soak (printed, and as JSON with --json)."""

    mode: str
    seconds: float
    connections: int = 0
    clean: int = 0
    client_resets: int = 0
    fault_resets_seen: int = 0  # resets the relay injected, seen as errors by clients
    bytes_up: int = 0  # verified client → server bytes
    bytes_down: int = 0  # verified server → client bytes (relay replies)
    bytes_lost: int = 0
    mismatches: list[str] = field(default_factory=list)
    faults_logged: dict[str, int] = field(default_factory=dict)
    idle_fds: int = 0
    end_fds: int = 0
    rss_warm_kib: int = 0
    rss_peak_kib: int = 0
    rss_end_kib: int = 0
    still_serving: bool = False
    exit_code: int | None = None
    ok: bool = False

    def finish(self, rss_slack_mib: float) -> None:
        self.ok = (
            not self.mismatches
            and self.bytes_lost == 0
            and self.end_fds == self.idle_fds
            and self.rss_end_kib - self.rss_warm_kib <= rss_slack_mib * 1024
            and self.still_serving
            and self.connections > 0
        )


@dataclass(frozen=True)
class Load:
    clients: int
    max_size: int
    reset_share: float
    seed: int


# --- the client side ---------------------------------------------------------------

Client = Callable[[int, random.Random, "Load"], Awaitable["Outcome"]]


async def _send_stream(
    stream: trio.SocketStream, key: int, start: int, size: int, rng: random.Random, trickle: bool
) -> None:
    offset = start
    end = start + size
    while offset < end:
        piece = min(end - offset, rng.choice((1 << 10, 1 << 14, 1 << 16)) if trickle else 1 << 16)
        await stream.send_all(stream_bytes(key, offset, piece))
        offset += piece
        if trickle:
            await trio.sleep(rng.uniform(0, 0.002))


def _abort(stream: trio.SocketStream) -> None:
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    stream.socket.close()


_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def relay_client(port: int, rng: random.Random, load: Load) -> Outcome:
    """One connection through the relay to the hashing target, as the scenario says."""
    kind = rng.choices(
        ("normal", "slow-reader", "trickle", "late-fin", "reply-first-fin", "reset"),
        weights=(3, 1, 1, 1, 1, load.reset_share * 7 / max(1e-9, 1 - load.reset_share)),
    )[0]
    key = rng.getrandbits(60) | 1 | (RESET_KEY if kind == "reset" else 0)
    body = log_uniform(rng, load.max_size)
    reply = log_uniform(rng, load.max_size)
    header = HEADER.pack(key, reply)
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return Outcome(key, 0, kind, ended="connect-failed")
    out = Outcome(key, stream.socket.getsockname()[1], kind, reply_size=reply)
    reply_done = trio.Event()
    digest = hashlib.sha256()

    async def upload() -> None:
        if kind == "reset":
            cut = rng.randrange(body + 1)
            await stream.send_all(header)
            await _send_stream(stream, key, 0, cut, rng, trickle=False)
            out.sent = len(header) + cut
            out.sent_sha = stream_sha256(key, cut, header)
            _abort(stream)
            out.ended = "client-reset"
            raise _Reset
        await stream.send_all(header)
        await _send_stream(stream, key, 0, body, rng, trickle=kind == "trickle")
        out.sent = len(header) + body
        out.sent_sha = stream_sha256(key, body, header)
        if kind == "late-fin":
            await trio.sleep(rng.uniform(0, 0.05))
        elif kind == "reply-first-fin":
            await reply_done.wait()
        await stream.send_eof()

    async def download() -> None:
        got = 0
        while True:
            data = await stream.receive_some(4096 if kind == "slow-reader" else 1 << 16)
            if not data:
                break
            digest.update(data)
            got += len(data)
            out.reply_got = got
            if got >= reply:
                reply_done.set()
            if kind == "slow-reader" and rng.random() < 0.2:
                await trio.sleep(0.001)
        reply_done.set()

    broken = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(upload)
            nursery.start_soon(download)
    except* _Reset:
        pass
    except* _BROKEN:
        broken = True
    finally:
        if out.ended != "client-reset":
            await trio.aclose_forcefully(stream)
    if out.ended == "client-reset":
        return out
    if broken:
        out.ended = "reset-seen"
        return out
    want = stream_sha256(key | REPLY_BIT, reply)
    out.reply_ok = out.reply_got == reply and digest.hexdigest() == want
    out.ended = "ok" if out.reply_ok else "short"
    return out


class _Reset(Exception):
    """Our own abrupt close: ends the connection's nursery at once."""


async def listen_client(port: int, rng: random.Random, load: Load) -> Outcome:
    """One connection to ``listen -k -d``: upload, FIN, wait for the listener's FIN."""
    kind = rng.choices(
        ("normal", "trickle", "late-fin", "reset"),
        weights=(4, 1, 1, load.reset_share * 6 / max(1e-9, 1 - load.reset_share)),
    )[0]
    key = rng.getrandbits(60) | 1 | (RESET_KEY if kind == "reset" else 0)
    body = log_uniform(rng, load.max_size)
    if 0 < body < STRONG:  # 1-7 byte uploads are covered by the relay soak (see below)
        body = STRONG
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return Outcome(key, 0, kind, ended="connect-failed")
    out = Outcome(key, stream.socket.getsockname()[1], kind)
    try:
        if kind == "reset":
            cut = rng.randrange(body + 1)
            await _send_stream(stream, key, 0, cut, rng, trickle=False)
            out.sent, out.sent_sha, out.ended = cut, stream_sha256(key, cut), "client-reset"
            _abort(stream)
            return out
        await _send_stream(stream, key, 0, body, rng, trickle=kind == "trickle")
        out.sent, out.sent_sha = body, stream_sha256(key, body)
        if kind == "late-fin":
            await trio.sleep(rng.uniform(0, 0.05))
        await stream.send_eof()
        extra = await stream.receive_some(1)  # the listener's FIN: it has everything
        out.ended = "ok" if extra == b"" else "short"
        out.reply_ok = True
    except _BROKEN:
        out.ended = "reset-seen"
    finally:
        if out.ended != "client-reset":
            await trio.aclose_forcefully(stream)
    return out


async def run_load(
    client: Client,
    port: int,
    load: Load,
    seconds: float,
    outcomes: list[Outcome],
) -> None:
    """``load.clients`` workers, each running connections back to back until time is up."""
    deadline = trio.current_time() + seconds

    async def worker(index: int) -> None:
        rng = random.Random(load.seed * 7919 + index * 104729 + len(outcomes))
        while trio.current_time() < deadline:
            with trio.fail_after(120):
                outcomes.append(await client(port, rng, load))

    async with trio.open_nursery() as nursery:
        for index in range(load.clients):
            nursery.start_soon(worker, index)


# --- the relay's target: hashes uploads, sends replies --------------------------------


@dataclass
class TargetRecord:
    received: int
    sha: str
    ended: str  # eof, reset


class HashingTarget:
    """Reads the 16-byte header (key, reply size), hashes the whole upload, sends the
    reply meanwhile, and records what arrived and how it ended, keyed by the key."""

    def __init__(self) -> None:
        self.records: dict[int, TargetRecord] = {}
        self.anonymous_resets = 0  # reset before a whole header arrived

    async def handle(self, stream: trio.SocketStream) -> None:
        digest = hashlib.sha256()
        received = bytearray()
        key: int | None = None
        count = 0
        try:
            while len(received) < HEADER.size:
                data = await stream.receive_some(HEADER.size - len(received))
                if not data:
                    break
                received += data
            digest.update(received)
            count = len(received)
            if count < HEADER.size:
                self.anonymous_resets += 1
                return
            key, reply = HEADER.unpack(received)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reply, stream, key, reply)
                while data := await stream.receive_some(1 << 16):
                    digest.update(data)
                    count += len(data)
                # Linux reports a received RST once: if the reply's send took the error,
                # this receive sees b"" after it.  So the EOF counts only once the reply
                # is out; an error in _reply makes the record a reset (below).
            self.records[key] = TargetRecord(count, digest.hexdigest(), "eof")
        except* _BROKEN:
            if key is None:
                self.anonymous_resets += 1
            elif key not in self.records:
                self.records[key] = TargetRecord(count, digest.hexdigest(), "reset")
        finally:
            await trio.aclose_forcefully(stream)

    @staticmethod
    async def _reply(stream: trio.SocketStream, key: int, size: int) -> None:
        await _send_stream(stream, key | REPLY_BIT, 0, size, random.Random(key), trickle=False)
        await stream.send_eof()


# --- splitting listen -k's stdout back into connections ------------------------------


def common_prefix(data: memoryview, key: int, start: int, limit: int) -> int:
    """How many bytes of ``data`` equal ``key``'s stream from ``start`` (at most ``limit``)."""
    matched = 0
    step = 16  # most candidates fail within a few bytes: start small, then grow
    while matched < limit:
        n = min(step, limit - matched, len(data) - matched)
        if n <= 0:
            break
        want = stream_bytes(key, start + matched, n)
        got = bytes(data[matched : matched + n])
        if got != want:  # binary search for the first difference
            lo, hi = 0, n
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if got[lo:mid] == want[lo:mid]:
                    lo = mid
                else:
                    hi = mid
            return matched + lo
        matched += n
        step = min(step * 16, BLOCK)
    return matched


STRONG = 8  # a run this long (or one that completes its stream) cannot be chance
_RESIDUE = re.compile(rb"[\x80-\xff]+")


class _Index:
    """Each clean stream's next ``STRONG`` bytes, found by their first two (or one)."""

    def __init__(self, sizes: dict[int, int]) -> None:
        self.sizes = sizes
        self.pos = dict.fromkeys(sizes, 0)
        self.next: dict[int, bytes] = {}
        self.by_two: dict[bytes, set[int]] = {}
        self.by_one: dict[bytes, set[int]] = {}
        for key in sizes:
            self._add(key)

    def _add(self, key: int) -> None:
        left = self.sizes[key] - self.pos[key]
        if left > 0:
            head = stream_bytes(key, self.pos[key], min(STRONG, left))
            self.next[key] = head
            self.by_two.setdefault(head[:2], set()).add(key)
            self.by_one.setdefault(head[:1], set()).add(key)

    def move(self, key: int, delta: int) -> None:
        head = self.next.pop(key, None)
        if head is not None:
            self.by_two[head[:2]].discard(key)
            self.by_one[head[:1]].discard(key)
        self.pos[key] += delta
        self._add(key)

    def runs(
        self, out: memoryview, p: int, previous: int | None, *, one: bool = False
    ) -> list[tuple[int, int, bool]]:
        """(key, longest run, strong) for every stream whose next bytes start ``out[p:]``
        (by two bytes; ``one``: by one); never ``previous`` (its run ended where it
        stopped matching or was cut on purpose: a chunk of another stream starts here)."""
        keys = self.by_one.get(bytes(out[p : p + 1]), set())
        if not one:
            keys = {k for k in keys if len(self.next[k]) == 1}
            keys |= self.by_two.get(bytes(out[p : p + 2]), set())
        found = []
        for key in keys:
            if key == previous:
                continue
            head = self.next[key]
            got = bytes(out[p : p + len(head)])
            if got == head:
                left = self.sizes[key] - self.pos[key]
                run = common_prefix(out[p:], key, self.pos[key], left)
                found.append((key, run, True))
            else:
                run = next(i for i in range(len(got)) if got[i] != head[i]) if got else 0
                if run:
                    found.append((key, run, False))
        return found

    def boundary(self, out: memoryview, q: int, previous: int) -> bool:
        """Can a chunk end at ``q``: the end, a reset stream's bytes, or a strong run?"""
        if q >= len(out) or out[q] & 0x80:
            return True
        return any(strong for _k, _r, strong in self.runs(out, q, previous))

    def options(self, out: memoryview, p: int, previous: int | None) -> list[tuple[int, int]]:
        """What may come at ``p``, most likely first: strong runs (longest first), then
        runs up to 16 bytes shorter (a run can overshoot a chunk boundary by chance),
        then short runs that end at a boundary (a read can return a few bytes)."""
        found = self.runs(out, p, previous)
        if not found:  # a read of a single byte, or a dead end
            found = self.runs(out, p, previous, one=True)
        strong = sorted(((k, r) for k, r, s in found if s), key=lambda o: -o[1])
        options = [(k, r) for k, r in strong]
        options += [(k, r - cut) for k, r in strong for cut in range(1, min(r, 17))]
        options += [(k, r) for k, r, s in found if not s and self.boundary(out, p + r, k)]
        return options


def demultiplex(out: memoryview, sizes: dict[int, int]) -> tuple[dict[int, int], int]:
    """Split ``out`` into the clean connections' streams; return (bytes matched per key,
    bytes of reset streams).

    Reset streams' bytes have the high bit set and clean ones do not (``RESET_KEY``), so
    a reset stream's bytes are skipped as a run and counted; a reset stream's length is
    only an upper bound (what arrived before the RST), so they are not split further.
    In the clean bytes, the stream whose next bytes match takes its longest run.  With
    pseudo-random bytes a run of ``STRONG`` bytes is never chance; shorter ones can be,
    so each step keeps its alternatives and a dead end backtracks.  Raises ValueError
    where nothing fits: bytes that no connection sent, or sent in another order.
    """
    index = _Index(sizes)
    p = 0
    residue = 0
    previous: int | None = None
    budget = 64 * len(out) + 10_000
    # Each step: position, previous key there, its options, which option is applied.
    steps: list[tuple[int, int | None, list[tuple[int, int]], int]] = []
    while p < len(out):
        if out[p] & 0x80:
            match = _RESIDUE.match(out, p)
            assert match is not None
            residue += match.end() - p
            p, previous = match.end(), None
            steps.clear()  # no chunk spans a reset stream's bytes: no backtracking across
            continue
        options = index.options(out, p, previous)
        if options:
            key, run = options[0]
            steps.append((p, previous, options, 0))
            index.move(key, run)
            p, previous = p + run, key
            if len(steps) > 4096:
                del steps[:2048]  # no dead end reaches back that far
            continue
        budget -= 1
        if budget < 0:
            raise ValueError(f"byte {p} of stdout: too ambiguous to split")
        while steps:  # dead end: undo to the last step with an untried option
            start, before, options, tried = steps.pop()
            key, run = options[tried]
            index.move(key, -run)
            if tried + 1 < len(options):
                key, run = options[tried + 1]
                steps.append((start, before, options, tried + 1))
                index.move(key, run)
                p, previous = start + run, key
                break
        else:
            raise ValueError(f"byte {p} of stdout matches no connection")
    return index.pos, residue


# --- the two soaks -------------------------------------------------------------------


def start_server(args: list[str], **kwargs: object) -> tuple[subprocess.Popen[bytes], LineReader]:
    proc = subprocess.Popen(
        [*NCAT, *args],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[call-overload]
    )
    assert proc.stderr is not None
    return proc, LineReader(proc.stderr)


def settled_fds(pid: int, timeout: float = 20.0) -> int:
    """The server's fd count once it has stopped changing (0.5 s the same, polled): its
    count at idle, after the last connections closed.  (A listener dups stdout once, on
    first use, so the count before any client is not the idle count.)"""
    deadline = time.monotonic() + timeout
    last, same = -1, 0
    while same < 10 and time.monotonic() < deadline:
        count = fd_count(pid)
        same = same + 1 if count == last else 0
        last = count
        time.sleep(0.05)
    if os.environ.get("SOAK_DEBUG"):
        for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
            print(fd, os.readlink(f"/proc/{pid}/fd/{fd}"), file=sys.stderr)
    return last


class RssWatch:
    """Samples RSS every 0.2 s in a thread; ``peak`` is the most seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def soak_relay(seconds: float, load: Load, rss_slack: float) -> ServerReport:
    report = ServerReport("relay", seconds)
    target = HashingTarget()
    outcomes: list[Outcome] = []

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        target_port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, target.handle, listeners)
            faults = [
                "--latency", "3ms/2ms", "--slicer", "down:1500/1000", "--bandwidth", "up:8M",
                "--reset-peer", "down:96KB", "--slow-close", "up:5ms",
                "--toxicity", "0.08", "--seed", str(load.seed),
            ]  # fmt: skip
            proc, log = start_server(
                ["relay", "-v", "--json-log", "127.0.0.1:0", f"127.0.0.1:{target_port}", *faults]
            )
            try:
                match = await trio.to_thread.run_sync(log.wait_for, r"listening on \S+:(\d+)")
                port = int(match[1])
                await _measure(proc, port, relay_client, load, seconds, rss_slack, report, outcomes)
            finally:
                proc.send_signal(signal.SIGTERM)
                report.exit_code = await trio.to_thread.run_sync(proc.wait)
                log.join()
            nursery.cancel_scope.cancel()
        _check_relay(report, outcomes, target, log.lines)

    trio.run(main)
    report.finish(rss_slack)
    return report


async def _measure(
    proc: subprocess.Popen[bytes],
    port: int,
    client: Client,
    load: Load,
    seconds: float,
    rss_slack: float,
    report: ServerReport,
    outcomes: list[Outcome],
) -> None:
    """Warm up, note fds and RSS at idle, soak, note them again, then one last client."""
    warm = max(1.0, seconds * 0.15)
    await run_load(client, port, load, warm, outcomes)
    report.idle_fds = await trio.to_thread.run_sync(settled_fds, proc.pid)
    report.rss_warm_kib = rss_kib(proc.pid)
    watch = RssWatch(proc.pid)
    await run_load(client, port, load, seconds, outcomes)
    watch.stop()
    report.end_fds = await trio.to_thread.run_sync(settled_fds, proc.pid)
    report.rss_end_kib = rss_kib(proc.pid)
    report.rss_peak_kib = max(watch.peak, report.rss_end_kib)
    with trio.fail_after(60):
        last = await client(port, random.Random(load.seed), Load(1, 1 << 16, 0.0, load.seed))
    report.still_serving = last.ended == "ok"
    outcomes.append(last)


def _relay_log(lines: list[str]) -> list[dict[str, object]]:
    return [
        record
        for record in (json.loads(line) for line in lines if line.startswith("{"))
        if record.get("event") == "connection"
    ]


INJECTED = ("fault-reset-peer", "target-reset")


def _port(record: dict[str, object]) -> int:
    return int(str(record["peer"]).rsplit(":", 1)[1])


def _check_relay(
    report: ServerReport, outcomes: list[Outcome], target: HashingTarget, lines: list[str]
) -> None:
    relay_log = _relay_log(lines)
    injected: dict[int, int] = {}  # client port -> resets the relay made (ports get reused)
    for record in relay_log:
        end = str(record["end"])
        report.faults_logged[end] = report.faults_logged.get(end, 0) + 1
        if end in INJECTED:
            injected[_port(record)] = injected.get(_port(record), 0) + 1
    seen_resets: dict[int, int] = {}
    for out in outcomes:
        report.connections += 1
        seen = target.records.get(out.key)
        where = f"{out.kind} key {out.key:x} port {out.port}"
        if out.ended == "connect-failed":
            report.mismatches.append(f"{where}: connect failed")
            continue
        if out.ended == "short":
            report.bytes_lost += out.reply_size - out.reply_got or 1
            report.mismatches.append(
                f"{where}: clean EOF but reply {out.reply_got}/{out.reply_size}"
            )
            continue
        if out.ended == "ok":
            report.clean += 1
            if seen is None or (seen.received, seen.sha, seen.ended) != (
                out.sent,
                out.sent_sha,
                "eof",
            ):
                report.bytes_lost += out.sent - (seen.received if seen else 0) or 1
                report.mismatches.append(f"{where}: target saw {seen}, sent {out.sent}")
                continue
            report.bytes_up += out.sent
            report.bytes_down += out.reply_size
            continue
        # A reset, ours or the relay's: what arrived must be a prefix of what was sent.
        if out.ended == "client-reset":
            report.client_resets += 1
            if seen is not None and seen.ended == "eof":
                report.mismatches.append(f"{where}: our RST reached the target as a clean EOF")
        else:  # reset-seen: the relay must have logged a reset for it (checked below)
            report.fault_resets_seen += 1
            seen_resets[out.port] = seen_resets.get(out.port, 0) + 1
        if seen is not None and seen.received > out.sent and out.ended == "client-reset":
            report.mismatches.append(f"{where}: target got {seen.received} > sent {out.sent}")
        elif seen is not None and out.ended == "client-reset":
            if seen.sha != stream_sha256(
                out.key, seen.received - HEADER.size, HEADER.pack(out.key, out.reply_size)
            ):
                report.mismatches.append(f"{where}: target's prefix differs from what was sent")
            report.bytes_up += seen.received
    # Every reset the relay made was an error for its client, and no client saw another.
    # (A client that reset by itself may have raced the relay's reset: it saw nothing.)
    ours = {out.port: 0 for out in outcomes}
    for out in outcomes:
        ours[out.port] += out.ended == "client-reset"
    for port in sorted(set(injected) | set(seen_resets)):
        made, saw = injected.get(port, 0), seen_resets.get(port, 0)
        if not saw <= made <= saw + ours.get(port, 0):
            report.mismatches.append(
                f"port {port}: the relay reset {injected.get(port, 0)} connection(s), "
                f"clients saw {seen_resets.get(port, 0)} reset(s)"
            )


def soak_listen(seconds: float, load: Load, rss_slack: float) -> ServerReport:
    report = ServerReport("listen -k", seconds)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="ncat-soak-") as tmp:
        path = Path(tmp) / "stdout"
        proc, log = start_server(
            ["listen", "-k", "-d", "-v", "127.0.0.1", "0"], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        sink = SlowFileSink(proc.stdout, path, load.seed)

        async def main() -> None:
            match = await trio.to_thread.run_sync(log.wait_for, r"listening on \S+:(\d+)")
            await _measure(
                proc, int(match[1]), listen_client, load, seconds, rss_slack, report, outcomes
            )

        try:
            trio.run(main)
        finally:
            proc.send_signal(signal.SIGTERM)
            report.exit_code = proc.wait(30)
            sink.join()
            log.join()
        _check_listen(report, outcomes, path, log.lines)
    report.finish(rss_slack)
    return report


def _check_listen(
    report: ServerReport, outcomes: list[Outcome], path: Path, lines: list[str]
) -> None:
    sizes = {
        out.key: out.sent for out in outcomes if out.ended not in ("connect-failed", "client-reset")
    }
    matched: dict[int, int] = {}
    residue = 0
    if path.stat().st_size:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                matched, residue = demultiplex(memoryview(data), sizes)
            except ValueError as exc:
                report.mismatches.append(f"stdout: {exc}")
                report.bytes_lost += 1
    errors = [
        line
        for line in lines
        if line.startswith("ncat-trio: ")
        and not re.match(
            r"ncat-trio: (listening on|connection from \S+$|closed:|interrupted)", line
        )
    ]
    for out in outcomes:
        report.connections += 1
        got = matched.get(out.key, 0)
        where = f"{out.kind} key {out.key:x} port {out.port}"
        if out.ended == "ok":
            report.clean += 1
            if got != out.sent:
                report.bytes_lost += out.sent - got
                report.mismatches.append(f"{where}: stdout has {got} of {out.sent} bytes")
            report.bytes_up += got
        elif out.ended == "client-reset":
            report.client_resets += 1
        else:
            report.mismatches.append(f"{where}: {out.ended}")
    reset_sent = sum(out.sent for out in outcomes if out.ended == "client-reset")
    if residue > reset_sent:
        report.mismatches.append(f"stdout has {residue} B from resets that sent {reset_sent}")
    report.bytes_up += residue  # a prefix of each reset client's bytes, in total
    if len(errors) != report.client_resets:
        report.mismatches.append(
            f"listener reported {len(errors)} errors for {report.client_resets} client resets"
        )


# --- entry point ---------------------------------------------------------------------


def print_report(report: ServerReport) -> None:
    mib = 1 << 20
    print(
        f"{report.mode:>9}: {report.connections} connections in {report.seconds:g} s "
        f"({report.clean} clean, {report.client_resets} client resets, "
        f"{report.fault_resets_seen} injected resets seen by clients); "
        f"verified {report.bytes_up / mib:.1f} MiB up, {report.bytes_down / mib:.1f} MiB down; "
        f"lost {report.bytes_lost} B"
    )
    print(
        f"{'':>9}  fds idle {report.idle_fds} -> end {report.end_fds}; RSS warm "
        f"{report.rss_warm_kib / 1024:.1f} MiB, peak {report.rss_peak_kib / 1024:.1f}, end "
        f"{report.rss_end_kib / 1024:.1f}; still serving: {report.still_serving}; "
        f"exit {report.exit_code}; {'OK' if report.ok else 'FAILED'}"
    )
    if report.faults_logged:
        print(f"{'':>9}  relay endings: {report.faults_logged}")
    for line in report.mismatches[:20]:
        print(f"{'':>9}  MISMATCH {line}")


def signal_storm(runs: int) -> int:
    """Run tests/hostile/test_signal_storm.py ``runs`` times (TLS handshakes included) and print,
    per scenario, the runs that held every check and the slowest exit after the signal."""
    with tempfile.TemporaryDirectory(prefix="ncat-storm-") as folder:
        report = Path(folder) / "runs.jsonl"
        report.touch()
        env = {
            **os.environ,
            "NCAT_SIGNAL_RUNS": str(runs),
            "NCAT_SIGNAL_REPORT": str(report),
        }
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
        command.append("tests/hostile/test_signal_storm.py")
        code = subprocess.call(command, cwd=ROOT, env=env)
        held = [json.loads(line) for line in report.read_text().splitlines()]
    by_scenario: dict[str, list[float]] = {}
    for entry in held:
        by_scenario.setdefault(entry["scenario"], []).append(entry["elapsed"])
    signals = Counter(entry["signal"] for entry in held)
    print(f"signal storm: {len(held)}/{runs} runs held every check ({dict(signals)})")
    for scenario, elapsed in sorted(by_scenario.items()):
        print(f"  {scenario:<46} {len(elapsed):>4} runs, slowest exit {max(elapsed) * 1000:.0f} ms")
    return code if len(held) == runs else code or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per server")
    parser.add_argument("--mode", choices=("both", "listen", "relay"), default="both")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--max-size", type=int, default=1 << 20, help="largest upload/reply")
    parser.add_argument("--reset-share", type=float, default=0.1, help="clients that reset")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rss-slack", type=float, default=8.0, help="MiB of RSS growth allowed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--signals", type=int, metavar="RUNS", help="run the signal storm RUNS times instead"
    )
    args = parser.parse_args(argv)
    if args.signals:
        return signal_storm(args.signals)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    load = Load(args.clients, args.max_size, args.reset_share, seed)
    reports = []
    if args.mode in ("both", "listen"):
        reports.append(soak_listen(args.duration, load, args.rss_slack))
    if args.mode in ("both", "relay"):
        reports.append(soak_relay(args.duration, load, args.rss_slack))
    if args.json:
        print(json.dumps({"seed": seed, "reports": [asdict(r) for r in reports]}))
    else:
        print(f"seed {seed} (--seed {seed} repeats the client choices)")
        for report in reports:
            print_report(report)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())

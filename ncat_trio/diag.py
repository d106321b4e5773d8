"""Diagnostics on stderr: one line each, prefixed ``ncat-trio:``, flushed at once.

Stdout is data only; nothing here ever touches it.  If stderr is gone a line is dropped
rather than turned into a second failure.

A log line must never stop the program.  A blocking write to a stderr pipe that nobody
drains blocks the whole Trio loop once the pipe is full: a ``relay -v`` or
``listen -k -v`` stopped forwarding because of its own log (found by the soak; nc and
socat block the same way).  So, **inside** ``trio.run``, when stderr is a pipe/FIFO or a
socket, lines are written without blocking — through a private description of the same
pipe (``/proc/self/fd/2`` reopened with ``O_NONBLOCK``; the inherited, shared one is
never made non-blocking: DESIGN.md §4) or with ``MSG_DONTWAIT`` on a socket — and what
does not fit waits in a bounded queue (:data:`QUEUE_LIMIT` bytes) that a Trio system
task writes out as the reader catches up.  When the queue is full the *oldest* queued
lines are dropped (the newest, the final error line among them, are kept) and counted;
``ncat-trio: N log lines dropped (stderr was full)`` takes their place once stderr drains.

**Outside** Trio (usage errors, the runner's one-line error after ``trio.run``) and at
interpreter exit, writes block as before: whatever is still queued is written first,
then the line, so the one-line error at exit is always written, in order.  Terminals
and regular files keep plain blocking writes: a file never fills, and a terminal is
drained by a person (a Ctrl-S pause is deliberate).

**Escaping** (the one rule; README, "Exit codes"): text a peer or a user chose — an
address, a proxy's reason phrase, a SOCKS bound name, a transfer peer's failure text, an
NTP refid, a TLS protocol name — goes through :func:`printable` where it enters a
message (an error's ``what``/``why``, a log line), so JSON records and child
environments get the escaped text too.  And :func:`say` escapes its whole line once
more, at the edge, so nothing missed upstream can put a terminal escape (``ESC ]0;…
BEL``), a C1 control, a NUL or a second line on stderr.  :func:`printable` is
idempotent (its output is printable, ``\\`` included), so the two never double-escape;
our own messages are printable text and pass unchanged.  :func:`write_raw` takes
ready-made JSON (``json.dumps`` escapes every control) and writes it as it is.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import select
import socket
import stat
import sys
from dataclasses import dataclass

PROG = "ncat-trio"

#: Bytes of log lines held while stderr is full, before the oldest are dropped.
QUEUE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class StderrStatistics:
    """Live counters of a :class:`StderrWriter`."""

    lines_queued: int
    bytes_queued: int  # the line being written included
    lines_dropped: int  # dropped and already reported by a "log lines dropped" line
    lines_dropped_unreported: int


class StderrWriter:
    """Writes lines to a pipe or socket ``fd`` without ever blocking the Trio loop.

    :meth:`write_nowait` writes what the pipe takes at once and queues the rest
    (oldest lines dropped beyond ``limit`` bytes); inside ``trio.run`` a system task
    writes the queue out when the fd becomes writable.  :meth:`flush_blocking` writes
    everything queued, waiting as long as it takes.  ``usable`` is False when ``fd``
    is not a pipe or socket (or cannot be reopened): callers then write as before.
    """

    def __init__(self, fd: int, *, limit: int = QUEUE_LIMIT) -> None:
        self.limit = limit
        self._fd = -1  # our private non-blocking description of a pipe
        self._socket: socket.socket | None = None  # or a socket, used with MSG_DONTWAIT
        self._head = b""  # the rest of a line partly written: always finished first
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._dropped = 0  # lines dropped right after the head, not yet reported
        self._dropped_reported = 0
        self._draining = False
        with contextlib.suppress(OSError):  # ENXIO: no reader left; no /proc; not a socket
            mode = os.fstat(fd).st_mode
            if stat.S_ISFIFO(mode):
                flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
                self._fd = os.open(f"/proc/self/fd/{fd}", flags)
            elif stat.S_ISSOCK(mode):
                self._socket = socket.socket(fileno=os.dup(fd))  # blocking flag untouched

    @property
    def usable(self) -> bool:
        return self._fd >= 0 or self._socket is not None

    def statistics(self) -> StderrStatistics:
        return StderrStatistics(
            lines_queued=len(self._queue) + bool(self._head),
            bytes_queued=self._queued_bytes + len(self._head),
            lines_dropped=self._dropped_reported,
            lines_dropped_unreported=self._dropped,
        )

    def write_nowait(self, data: bytes) -> None:
        """Queue ``data`` (one line) and write what the fd takes now; never block."""
        self._queue.append(data)
        self._queued_bytes += len(data)
        while self._queued_bytes > self.limit and self._queue:
            self._queued_bytes -= len(self._queue.popleft())
            self._dropped += 1
        if not self._write_some() and not self._draining:
            self._start_draining()

    def flush_blocking(self) -> None:
        """Write everything queued, waiting for the reader as long as it takes."""
        while not self._write_some():
            target = self._socket if self._socket is not None else self._fd
            select.select([], [target], [])

    def close(self) -> None:
        """Drop the queue and close our private description (fd 2's writer never is)."""
        self._discard()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def reset_after_fork(self) -> None:
        """In a forked child: the parent writes its own queue; a drain task is the parent's."""
        self._discard()
        self._draining = False

    def _discard(self) -> None:
        self._head, self._queued_bytes, self._dropped = b"", 0, 0
        self._queue.clear()

    def _write_some(self) -> bool:
        """Write until the fd would block; True when nothing is left."""
        try:
            while True:
                if self._head:
                    self._head = self._head[self._send(self._head) :]
                    if self._head:
                        return False
                elif self._dropped:
                    count, self._dropped = self._dropped, 0
                    self._dropped_reported += count
                    self._head = f"{PROG}: {count} log lines dropped (stderr was full)\n".encode()
                elif self._queue:
                    self._head = self._queue.popleft()
                    self._queued_bytes -= len(self._head)
                else:
                    return True
        except BlockingIOError:
            return False
        except OSError:  # EPIPE and the like: stderr is gone, drop everything
            self._discard()
            return True

    def _send(self, data: bytes) -> int:
        if self._socket is not None:
            return self._socket.send(data, socket.MSG_DONTWAIT)
        return os.write(self._fd, data)

    def _start_draining(self) -> None:
        import trio

        try:
            trio.lowlevel.spawn_system_task(self._drain, name="ncat_trio.diag.StderrWriter")
        except RuntimeError:  # the run is shutting down: the exit flush writes the rest
            return
        self._draining = True

    async def _drain(self) -> None:
        import trio

        try:
            while not self._write_some():
                await trio.lowlevel.wait_writable(
                    self._socket if self._socket is not None else self._fd
                )
        except Exception:
            # Cannot wait on this fd after all (EPERM, a busy fd...).  An exception
            # escaping a system task would crash the whole run (TrioInternalError): a log
            # line must never do that.  The queue stays for the next line or the exit flush.
            pass
        finally:  # also when cancelled at the end of the run (Cancelled passes through)
            self._draining = False


_WRITER: StderrWriter | None = None


def _nonblocking_writer() -> StderrWriter | None:
    """The writer for fd 2 when we are inside ``trio.run`` and fd 2 is a pipe or socket."""
    global _WRITER
    trio = sys.modules.get("trio")  # not imported: certainly not inside trio.run
    if trio is None or not trio.lowlevel.in_trio_run():
        return None
    # Only our own real stderr: under pytest (or any redirection of sys.stderr) the
    # replacement object is what should receive the line.
    if sys.stderr is None or sys.stderr is not sys.__stderr__:
        return None
    if _WRITER is None:
        _WRITER = StderrWriter(2)
    return _WRITER if _WRITER.usable else None


def flush() -> None:
    """Write whatever log lines are still queued, blocking (at exit, and before any
    blocking write so that lines stay in order)."""
    if _WRITER is not None and _WRITER.statistics().bytes_queued:
        with contextlib.suppress(OSError, ValueError):
            if sys.stderr is not None:
                sys.stderr.flush()
            _WRITER.flush_blocking()


def statistics() -> StderrStatistics | None:
    """Counters of the non-blocking stderr writer, or None while it was never needed."""
    return None if _WRITER is None else _WRITER.statistics()


def _reset_after_fork() -> None:
    if _WRITER is not None:
        _WRITER.reset_after_fork()


atexit.register(flush)
os.register_at_fork(after_in_child=_reset_after_fork)


def write_raw(text: str) -> None:
    """Write ``text`` as it is on stderr (a JSON record), dropping it if stderr is gone."""
    writer = _nonblocking_writer()
    if writer is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()  # anything Python still buffers goes first
        writer.write_nowait(text.encode("utf-8", "replace"))
        return
    flush()
    with contextlib.suppress(OSError, ValueError):
        if sys.stderr is not None:
            sys.stderr.write(text)
            sys.stderr.flush()
        else:  # started with fd 2 closed and no sys.stderr
            os.write(2, text.encode("utf-8", "replace"))


def say(message: str) -> None:
    """Write ``ncat-trio: message`` on stderr and flush it (readiness lines rely on it).

    ``message`` goes through :func:`printable`: whatever peer text it carries (a
    reason phrase, a transfer failure, a name) stays one line with no control
    character, wherever the caller took it from."""
    write_raw(f"{PROG}: {printable(message)}\n")


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\x00``, ``\\u202e``).

    The one escaping rule for peer-supplied text (addresses, reason phrases, names)
    before it reaches stderr, a log line or a child's environment: no terminal escape,
    NUL, newline or C1 control gets through, and what is printable stays as it was.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(ord(char)) for char in text)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def format_address(address: object) -> str:
    """``127.0.0.1:80`` / ``[::1]:80`` / a Unix path, from a socket address tuple or str.

    Escaped by :func:`printable`: a Unix peer's name (an abstract address starts with
    NUL) is chosen by the peer.
    """
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
            host = host[7:]  # an IPv4 peer of a dual-stack listener
        if isinstance(host, str) and ":" in host:
            return printable(f"[{host}]:{port}")
        return printable(f"{host}:{port}")
    if isinstance(address, bytes):
        return printable(address.decode("utf-8", "replace")) or "(unnamed)"
    return printable(str(address)) or "(unnamed)"

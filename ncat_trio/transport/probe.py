"""Which TCP ports accept a connection: non-blocking connects under one ``poll(2)``.

Blocking and Trio-free on purpose: the port scan (``scan``, nc's ``-z``) is run in shell
loops (``until ncat-trio -z HOST PORT; do …``) that pay start-up on every call, and Trio's
import alone is most of it (issue 16).  A watched signal's handler raises out of
``poll``; every socket is closed on the way out.

* At most ``concurrency`` connects in flight, each bounded by ``timeout``: a port that
  neither accepts nor refuses in time is FILTERED.
* Out of fds (EMFILE/ENFILE) with connects in flight: wait for one to finish, then go
  on; with none in flight it is :class:`OutOfResources`.
"""

from __future__ import annotations

import enum
import errno
import os
import select
import socket
import time
from collections.abc import Callable, Iterable

from ..errors import OutOfResources


class PortState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"  # no answer within the timeout


#: (port, state, why) as each port's answer arrives, in no particular order.
Answer = Callable[[int, PortState, str], None]

_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY)
_NO_FDS = (errno.EMFILE, errno.ENFILE)


def probe_ports(
    family: int,
    sockaddr: tuple[object, ...],
    ports: Iterable[int],
    answer: Answer,
    *,
    concurrency: int,
    timeout: float,
) -> None:
    """Connect to ``sockaddr`` (its port replaced by each of ``ports``) and call
    ``answer`` once per port."""
    queue = iter(ports)
    retry: int | None = None  # a port whose socket could not be made (out of fds)
    waiting: dict[int, tuple[socket.socket, int, float]] = {}  # fd → …; oldest first
    poller = select.poll()
    exhausted = False

    def finish(fd: int, state: PortState, why: str) -> None:
        sock, port, _deadline = waiting.pop(fd)
        poller.unregister(fd)
        sock.close()
        answer(port, state, why)

    try:
        while True:
            while not exhausted and len(waiting) < concurrency:
                port, retry = (retry, None) if retry is not None else (next(queue, None), None)
                if port is None:
                    exhausted = True
                    break
                try:
                    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                except OSError as exc:
                    if exc.errno not in _NO_FDS:
                        raise
                    if not waiting:
                        raise OutOfResources("scan", os.strerror(exc.errno).lower()) from exc
                    retry = port  # once a connect in flight has finished
                    break
                code = sock.connect_ex((sockaddr[0], port, *sockaddr[2:]))
                if code in _IN_PROGRESS:
                    waiting[sock.fileno()] = (sock, port, time.monotonic() + timeout)
                    poller.register(sock.fileno(), select.POLLOUT)
                    continue
                sock.close()
                answer(port, *_answer(code))
            if not waiting:
                return
            first_deadline = next(iter(waiting.values()))[2]  # started first, ends first
            wait_ms = max(0, int((first_deadline - time.monotonic()) * 1000) + 1)
            for fd, _events in poller.poll(wait_ms):
                code = waiting[fd][0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                finish(fd, *_answer(code))
            now = time.monotonic()
            for fd in [fd for fd, (_s, _p, deadline) in waiting.items() if deadline <= now]:
                finish(fd, PortState.FILTERED, f"no answer within {timeout:g} s")
    finally:
        for sock, _port, _deadline in waiting.values():
            sock.close()


def _answer(code: int) -> tuple[PortState, str]:
    """A connect's result (0 or an errno) as a state and why."""
    return (PortState.OPEN, "") if code == 0 else (PortState.CLOSED, os.strerror(code).lower())


def service_name(port: int) -> str:
    """The TCP service name nc.openbsd prints (/etc/services), ``*`` when there is none."""
    try:
        return socket.getservbyport(port, "tcp")
    except OSError:
        return "*"

"""UDP sockets with arrival stamps: bind (dual-stack), connect, receive with a timestamp.

Knows no wire format.  Written for the clock mode, where *when* a datagram arrived is the
measurement: the kernel's receive timestamp (``SO_TIMESTAMPNS``, Linux) is taken before
Trio's wake-up and our scheduling, which otherwise make every receive stamp late by tens
of µs (more on a busy box) and bias the offset.  OS errors become :class:`ConnectError`
here, once.
"""

from __future__ import annotations

import errno
import platform
import socket as _stdsocket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import trio

from ..errors import ConnectError
from .access import DatagramGate
from .endpoint import IPSockAddr
from .net import Endpoint, bind_listening, connect_socket, describe, resolve
from .sockopts import Configure

WallClock = Callable[[], int]  # ns since the Unix epoch

#: Bigger than any UDP payload (65507 over IPv4), so nothing is ever truncated unseen.
MAX_DATAGRAM = 65536

#: Errors a UDP socket reports for one peer (an ICMP message, a firewall rule): they end
#: an exchange with that peer, never a server.
PEER_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EPERM,
        errno.EMSGSIZE,
        errno.ECONNRESET,
        errno.ENOBUFS,
    }
)

# Python's socket module does not export SO_TIMESTAMPNS: 35 is SO_TIMESTAMPNS_OLD on the
# asm-generic ABI (and x86), whose control message carries a native struct timespec.
_SO_TIMESTAMPNS = 35
_GENERIC_ABI = {"x86_64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv6l", "riscv64"}
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SPACE = _stdsocket.CMSG_SPACE(_TIMESPEC.size)


def enable_kernel_timestamps(sock: trio.socket.SocketType) -> bool:
    """Ask the kernel to stamp arriving datagrams; False where that is not available."""
    if sys.platform != "linux" or platform.machine() not in _GENERIC_ABI:
        return False
    try:
        sock.setsockopt(_stdsocket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def kernel_timestamp(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS arrival time (ns since the epoch) in ``recvmsg`` ancillary data."""
    for level, kind, data in ancdata:
        if (
            level == _stdsocket.SOL_SOCKET
            and kind == _SO_TIMESTAMPNS
            and len(data) >= _TIMESPEC.size
        ):
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


class StampedReceiver:
    """``recvmsg`` with an arrival stamp: the kernel's when we can, else ``clock()``.

    Kernel stamps are used only with the system wall clock (``time.time_ns``): an injected
    clock (a test's) lives on another timeline.
    """

    def __init__(self, sock: trio.socket.SocketType, clock: WallClock = time.time_ns) -> None:
        self._sock = sock
        self._clock = clock
        self.kernel = clock is time.time_ns and enable_kernel_timestamps(sock)

    async def receive(self) -> tuple[bytes, int, bool, IPSockAddr]:
        """``(data, stamp_ns, truncated, address)``; OSError passes through."""
        space = _ANCILLARY_SPACE if self.kernel else 0
        data, ancdata, flags, address = await self._sock.recvmsg(MAX_DATAGRAM, space)
        stamp = kernel_timestamp(ancdata) if self.kernel else None
        truncated = bool(flags & _stdsocket.MSG_TRUNC)
        stamp = self._clock() if stamp is None else stamp
        return data, stamp, truncated, cast(IPSockAddr, address)  # a UDP socket's


class ConnectedDatagramSocket:
    """A connected UDP socket: send, receive with an arrival stamp.

    An ICMP port unreachable (or any error for this peer) becomes :class:`ConnectError`.
    """

    def __init__(
        self, sock: trio.socket.SocketType, name: str, clock: WallClock = time.time_ns
    ) -> None:
        self._sock = sock
        self._name = name
        self._receiver = StampedReceiver(sock, clock)

    async def send(self, data: bytes) -> None:
        try:
            await self._sock.send(data)
        except OSError as exc:
            raise peer_error(exc, self._name) from exc

    async def receive(self) -> tuple[bytes, int]:
        """The next datagram and its arrival time (ns since the epoch)."""
        try:
            data, stamp, _truncated, _address = await self._receiver.receive()
        except OSError as exc:
            raise peer_error(exc, self._name) from exc
        return data, stamp


def peer_error(exc: OSError, name: str, broadcast_flag: str | None = None) -> ConnectError:
    """An error a UDP socket reported for its peer, as :class:`ConnectError` naming it;
    EACCES (a broadcast address without SO_BROADCAST) names ``broadcast_flag``."""
    why = describe(exc)
    if exc.errno == errno.ECONNREFUSED:
        why = "port unreachable (connection refused): is a server running there?"
    elif exc.errno == errno.EACCES and broadcast_flag is not None:
        why += f" (a broadcast address needs {broadcast_flag})"
    error = ConnectError(name, why)
    error.__cause__ = exc
    return error


async def connect_udp(
    endpoint: Endpoint,
    *,
    source: Endpoint | None = None,
    configure: Configure | None = None,
    broadcast_flag: str | None = None,
) -> trio.socket.SocketType:
    """A UDP socket connected to ``endpoint``: :func:`.net.connect_socket` (every
    resolved address in turn; ``configure``, then ``source``: nc's -s/-p, first)."""
    sock, _address = await connect_socket(
        endpoint,
        socktype=trio.socket.SOCK_DGRAM,
        source=source,
        configure=configure,
        failed=lambda exc, name: peer_error(exc, name, broadcast_flag),
    )
    return sock


async def first_sender(sock: trio.socket.SocketType, gate: DatagramGate | None = None) -> Any:
    """The address of the first admitted datagram queued on ``sock``, which stays
    queued; datagrams from sources ``gate`` denies are read and dropped."""
    while True:
        try:
            _data, address = await sock.recvfrom(1, _stdsocket.MSG_PEEK)
            if gate is None or gate.admits(address):
                return address
            await sock.recvfrom(1)  # drop the denied datagram (the rest of it goes too)
        except OSError as exc:
            raise peer_error(exc, "first datagram") from exc


async def receive_into(sock: trio.socket.SocketType, buffer: bytearray) -> tuple[int, Any]:
    """``(size, address)`` of the next datagram, copied into ``buffer``.  ``size`` is the
    datagram's real size (``MSG_TRUNC``): bigger than ``buffer`` means it was cut."""
    return await sock.recvfrom_into(buffer, 0, _stdsocket.MSG_TRUNC)


async def bind_udp(
    endpoint: Endpoint, *, configure: Configure | None = None
) -> trio.socket.SocketType:
    """A bound UDP socket (``net.bind_listening``: no host is one dual-stack ``::``
    socket, else ``0.0.0.0``).  ``configure``: options before the bind (--reuseport, --ttl)."""
    socktype = trio.socket.SOCK_DGRAM
    infos = (
        None if endpoint.host is None else await resolve(endpoint, passive=True, socktype=socktype)
    )
    raw = bind_listening(endpoint, infos, socktype=socktype, configure=configure)
    return trio.socket.from_stdlib_socket(raw)

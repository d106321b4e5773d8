"""``-u``: connect and listen over datagrams (UDP, or Unix datagram with ``-U``).

nc's rules, made explicit:

* Each read from stdin (at most :data:`MAX_PAYLOAD` bytes) is sent as one datagram, so
  a terminal or a line-buffered pipe sends one datagram per line; each datagram that
  arrives is written to stdout as it is.
* ``listen`` waits for the first datagram and locks onto its sender (the socket is
  connected to it, so the kernel drops everyone else's, and datagrams queued from
  others before the lock are skipped).  Stdin is not read before that: there is nobody
  to send to.  With ``-k`` it never locks: every sender is heard and replies go to the
  most recent one.
* ``--allow/--deny`` (listen) judge every datagram's source first
  (:class:`~ncat_trio.transport.access.DatagramGate`): a denied source's datagram is
  dropped and logged once, before it is written out, replied to, locked onto or handed
  to a child; with ``-k`` the check is per datagram.
* UDP has no EOF.  A session ends when ``-i/--idle-timeout`` passes with no datagram
  either way, or ``-q SECS`` after stdin's EOF; both are normal ends (exit 0).  Without
  either it runs until a signal (130/143), like nc.
* A datagram bigger than our receive buffer is detected (``MSG_TRUNC``: the kernel
  reports its real size) and reported as :class:`IntegrityError` (exit 7), never
  written out cut short.  A datagram too big to send (``EMSGSIZE``) is
  :class:`LocalProtocolError` (exit 6).  An ICMP port unreachable on a connected socket
  is :class:`ConnectError` (exit 1).

``-e/-c`` over datagrams (:func:`exec_over_datagrams`, as ``ncat -u -e``): listen locks
onto the first sender *before* starting the child (so ``NCAT_REMOTE_*`` names it);
each datagram is written to the child's stdin, each read from its stdout (at most
:data:`MAX_PAYLOAD` bytes) becomes one datagram.  The session ends when the child has
exited and its stdout is finished, or at ``-i`` (then its stdin is closed, and it gets
the same SIGTERM/SIGKILL supervision as TCP exec).  A child that stops reading has the
rest discarded.  ``-k`` is refused with ``-u -e``: ncat runs one child per sender there.
"""

from __future__ import annotations

import errno
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .. import diag
from ..errors import ConnectError, IntegrityError, LocalProtocolError, NcatError
from ..transport import datagram, unix
from ..transport.access import DatagramGate
from ..transport.child import describe_status, open_child
from ..transport.pump import STREAM_ERRORS, Side, run_directions, translated
from ..transport.sockopts import configure_with
from .exec import ExecCommand, child_environment
from .netcat_options import NetcatOptions, SessionOptions
from .session import STDIN, STDOUT, SessionResult, open_stdio

#: The largest UDP payload over IPv4 (65535 - 20 - 8): one stdin read, one datagram.
MAX_PAYLOAD = 65507
#: The flag a send or connect to a broadcast address needs (SO_BROADCAST).
BROADCAST = "--broadcast"


def name_of(address: Any) -> str:
    """An address for messages; abstract Unix addresses as ``@name``."""
    if isinstance(address, bytes) and address.startswith(b"\0"):
        return "@" + diag.printable(address[1:].decode("utf-8", "replace"))  # peer-chosen
    if address in ("", b"", None):
        return "(unnamed)"
    return diag.format_address(address)


async def _lock_on(sock: trio.socket.SocketType, address: Any, name: str) -> None:
    """Connect to ``address``: the kernel drops everyone else's datagrams from now on
    (an unnamed Unix sender cannot be connected to)."""
    if address not in ("", b"", None):
        try:
            await sock.connect(address)
        except OSError as exc:
            raise datagram.peer_error(exc, name, BROADCAST) from exc


class DatagramSession:
    """One datagram session over ``sock``; see the module docstring for the rules.

    ``mode``: ``"connected"`` (connect, or a client socket already connected),
    ``"lock"`` (listen: lock onto the first sender), ``"last"`` (listen -k).
    ``locked_to``: in ``"lock"`` mode, the sender already locked onto (exec).
    ``source_side``/``sink_side`` name the local ends in errors (stdin/stdout, or a child).
    """

    def __init__(
        self,
        sock: trio.socket.SocketType,
        options: SessionOptions,
        *,
        mode: str,
        name: str,
        verbose: bool = False,
        locked_to: Any = None,
        source_side: Side = STDIN,
        sink_side: Side = STDOUT,
        gate: DatagramGate | None = None,
    ) -> None:
        self.sock = sock
        self.options = options
        self.mode = mode
        self.name = name
        self.verbose = verbose
        self.peer: Any = locked_to
        self.peer_known = trio.Event()
        self.upload_done = trio.Event()  # the source's EOF: everything from it was sent
        self.source_side = source_side
        self.sink_side = sink_side
        self.gate = gate  # listen: --allow/--deny, per datagram
        self.result = SessionResult()
        if mode == "connected" or locked_to is not None:
            self.peer_known.set()

    async def _send(self, data: bytes) -> None:
        try:
            if self.mode == "last":
                await self.sock.sendto(data, self.peer)
            else:
                await self.sock.send(data)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                raise LocalProtocolError(
                    f"datagram to {self.name}",
                    f"{len(data)} bytes is too large to send ({(exc.strerror or 'EMSGSIZE').lower()})",
                ) from exc
            if exc.errno in (errno.EDESTADDRREQ, errno.ENOTCONN):
                raise ConnectError(
                    f"reply to {self.name}", "the peer has no address (an unnamed Unix socket)"
                ) from exc
            raise datagram.peer_error(exc, self.name, BROADCAST) from exc

    async def run(
        self, stdin: trio.abc.ReceiveStream | None, stdout: trio.abc.SendStream | None
    ) -> SessionResult:
        options, result = self.options, self.result
        idle = options.idle_timeout
        idle_scope = trio.CancelScope(
            deadline=math.inf if idle is None else trio.current_time() + idle
        )
        download_scope = trio.CancelScope()

        def activity() -> None:
            if idle is not None:
                idle_scope.deadline = trio.current_time() + idle

        async def upload() -> None:
            if not options.send or stdin is None:
                return
            await self.peer_known.wait()
            while True:
                with translated(self.source_side):
                    data = await stdin.receive_some(MAX_PAYLOAD)
                if not data:
                    break
                await self._send(bytes(data))
                result.bytes_sent += len(data)
                activity()
            result.stdin_eof = True
            self.upload_done.set()
            if options.linger is not None:
                download_scope.deadline = trio.current_time() + options.linger

        async def download() -> None:
            buffer = bytearray(datagram.MAX_DATAGRAM)
            sink = stdout if options.receive else None
            with download_scope:
                while True:
                    try:
                        size, address = await datagram.receive_into(self.sock, buffer)
                    except OSError as exc:
                        raise datagram.peer_error(exc, self.name, BROADCAST) from exc
                    if self.mode == "lock" and self.peer_known.is_set() and address != self.peer:
                        continue  # queued from someone else before we locked on
                    if self.gate is not None and not self.gate.admits(address):
                        continue  # denied: not written, not learned, not an activity
                    activity()
                    await self._learn(address)
                    if size > len(buffer):
                        error = IntegrityError(
                            f"datagram from {name_of(address)}",
                            f"{size} bytes, larger than the {len(buffer)}-byte receive buffer:"
                            " not written (it would be truncated)",
                        )
                        if self.mode != "last":
                            raise error
                        diag.say(str(error))  # -k: one bad datagram does not end the server
                        continue
                    if sink is not None:
                        with translated(self.sink_side):
                            await sink.send_all(buffer[:size])
                    result.bytes_received += size
            if download_scope.cancelled_caught:
                result.lingered_out = True

        failure: NcatError | None = None  # stays None when the idle timeout cancels both
        with idle_scope:
            failure = await run_directions(upload, download)
        if failure is not None:
            raise failure
        if idle_scope.cancelled_caught and self.verbose:
            diag.say(f"idle for {idle:g} s: session over")
        return result

    async def _learn(self, address: Any) -> None:
        """Remember who to reply to; in ``lock`` mode, connect to the first sender."""
        if self.mode == "connected":
            return
        first = not self.peer_known.is_set()
        if not first and self.mode == "lock":
            return
        self.peer = address
        if first:
            self.name = name_of(address)
            if self.verbose:
                diag.say(f"datagram from {self.name}")
            if self.mode == "lock":
                await _lock_on(self.sock, address, self.name)
            self.peer_known.set()


class ChildInput(trio.abc.SendStream):
    """A child's stdin for datagrams: once the child stops reading (a broken pipe),
    what still arrives is discarded, as TCP exec does, instead of ending the session."""

    def __init__(self, pipe: trio.abc.SendStream) -> None:
        self.pipe = pipe
        self.open = True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self.open:
            await trio.lowlevel.checkpoint()
            return
        try:
            await self.pipe.send_all(data)
        except STREAM_ERRORS:
            self.open = False

    async def wait_send_all_might_not_block(self) -> None:
        await self.pipe.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        self.open = False
        await self.pipe.aclose()


async def exec_over_datagrams(
    sock: trio.socket.SocketType,
    opts: NetcatOptions,
    *,
    listen: bool,
    gate: DatagramGate | None = None,
) -> SessionResult:
    """``-u -e/-c``: the child's stdout → datagrams, datagrams → its stdin (module docstring).

    ``listen``: lock onto the first sender before the child starts; else ``sock`` is
    already connected to the target.
    """

    command: ExecCommand | None = opts.exec_command
    assert command is not None
    peer = await datagram.first_sender(sock, gate) if listen else sock.getpeername()
    name = name_of(peer)
    if listen:
        if opts.verbose:
            diag.say(f"datagram from {name}: starting {command.name}")
        await _lock_on(sock, peer, name)
    env = child_environment(
        proto="UNIX" if opts.unix_path is not None else "UDP",
        local=sock.getsockname(),
        remote=peer,
    )
    options = SessionOptions(idle_timeout=opts.session.idle_timeout)
    async with open_child(command.argv, env=env, grace=command.grace) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        child_stdin = ChildInput(proc.stdin)
        session = DatagramSession(
            sock,
            options,
            mode="lock" if listen else "connected",
            name=name,
            verbose=opts.verbose,
            locked_to=peer if listen else None,
            source_side=Side(f"{command.name} (stdout)", local=True),
            sink_side=Side(f"{command.name} (stdin)", local=True),
            gate=gate,
        )

        async def end_once_the_child_is_done(scope: trio.CancelScope) -> None:
            await proc.wait()
            await session.upload_done.wait()  # and all it wrote was sent
            scope.cancel()

        failure: NcatError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(end_once_the_child_is_done, nursery.cancel_scope)
            try:
                await session.run(proc.stdout, child_stdin)
            except NcatError as exc:  # raised below as itself, not as a group
                failure = exc
            nursery.cancel_scope.cancel()  # -i: the session is over, the child is not
        if failure is None and proc.returncode is None:  # -i: EOF for the child, its grace
            await child_stdin.aclose()
            with trio.move_on_after(command.grace):
                await proc.wait()
    if opts.verbose:
        code = proc.returncode
        diag.say(f"{command.name}: {'did not exit' if code is None else describe_status(code)}")
    if failure is not None:
        raise failure
    return session.result


@asynccontextmanager
async def _bound(opts: NetcatOptions) -> AsyncIterator[trio.socket.SocketType]:
    configure = configure_with(opts.socket_options)
    if opts.unix_path is not None:
        async with unix.bound_unix_socket(
            opts.unix_path, trio.socket.SOCK_DGRAM, configure=configure
        ) as sock:
            yield sock
        return
    with await datagram.bind_udp(opts.endpoint, configure=configure) as sock:
        yield sock


async def connect_udp_main(opts: NetcatOptions) -> int:
    """``ncat-trio connect -u HOST PORT`` / ``connect -u -U PATH``."""
    if opts.unix_path is not None:
        sock = await unix.connect_unix_datagram(
            opts.unix_path, configure=configure_with(opts.socket_options)
        )
    else:
        sock = await datagram.connect_udp(
            opts.endpoint,
            source=opts.source,
            configure=configure_with(opts.socket_options),
            broadcast_flag=BROADCAST,
        )
    with sock:
        name = name_of(sock.getpeername())
        if opts.verbose:
            diag.say(f"sending datagrams to {name} from {name_of(sock.getsockname())}")
        return await _run(sock, opts, mode="connected", name=name)


async def listen_udp_main(opts: NetcatOptions) -> int:
    """``ncat-trio listen -u [HOST] PORT`` / ``listen -u -U PATH``."""
    gate = DatagramGate(opts.access) if opts.access.active else None
    async with _bound(opts) as sock:
        diag.say(f"listening on {name_of(sock.getsockname())} (datagrams)")
        mode = "last" if opts.keep_open else "lock"
        return await _run(sock, opts, mode=mode, name="peer", gate=gate)


async def _run(
    sock: trio.socket.SocketType,
    opts: NetcatOptions,
    *,
    mode: str,
    name: str,
    gate: DatagramGate | None = None,
) -> int:
    """The session on ``sock``, with a child (``-e/-c``) or stdin/stdout; ``-v`` counts."""
    if opts.exec_command is not None:
        result = await exec_over_datagrams(sock, opts, listen=mode != "connected", gate=gate)
    else:
        async with open_stdio(opts.session) as (stdin, stdout, session):
            datagrams = DatagramSession(
                sock, session, mode=mode, name=name, verbose=opts.verbose, gate=gate
            )
            result = await datagrams.run(stdin, stdout)
    if opts.verbose:
        diag.say(f"{result.bytes_sent} bytes sent, {result.bytes_received} received")
    return 0

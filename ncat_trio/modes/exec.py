"""``-e/--exec`` and ``-c/--sh-exec``: a child process attached to each connection.

The child's stdin and stdout are the connection (both piped through us: splice where
the fds allow), with the same half-close rules as stdio (DESIGN.md §3):

* the peer's EOF → the child's stdin is closed (the child reads EOF);
* the child closes its stdout → the connection gets our FIN (``send_eof``);
* the child stops reading (its stdin pipe breaks) → what the peer still sends is read
  and discarded, so the peer is not stalled;
* the child has exited and its stdout is finished → nothing can consume the peer's data
  any more: stop reading and close;
* the connection dies (reset, idle timeout, a signal) → the child's process group gets
  SIGTERM, then SIGKILL after ``grace`` seconds (:func:`..transport.child.open_child`);
* the connection ends → whatever the child left running in its group (``cmd &`` under
  ``-c``) is stopped the same way: nothing started for a connection outlives it.

``-e`` never runs a shell: the command line is split like a shell would split words
(:func:`shlex.split`: quotes group words) but nothing is expanded.  ``-c`` runs
``/bin/sh -c CMD`` (ncat's behaviour).  The child's exit status is logged with ``-v``
and does not change our exit code (as in ncat).
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import trio

from .. import diag
from ..errors import LocalIOError, NcatError, UsageError
from ..transport.child import describe_status, open_child
from ..transport.idle import raise_session_end
from ..transport.pump import Side, run_directions, send_eof
from ..transport.zerocopy import copy
from .netcat_options import SessionOptions
from .session import SessionResult, close_gracefully

SHELL = "/bin/sh"


@dataclass(frozen=True)
class ExecCommand:
    """The program to attach to each connection."""

    argv: tuple[str, ...]
    shell: bool = False  # built from -c: argv is (/bin/sh, -c, CMD)
    grace: float = 2.0  # seconds between SIGTERM and SIGKILL to the child's process group

    @property
    def name(self) -> str:
        return "sh -c" if self.shell else os.path.basename(self.argv[0])

    @classmethod
    def from_exec(cls, text: str) -> ExecCommand:
        """``-e "CMD ARGS…"``: split into words (no shell); the program must exist."""
        try:
            argv = tuple(shlex.split(text))
        except ValueError as exc:
            raise UsageError(f"invalid --exec {text!r}", str(exc).lower()) from exc
        if not argv:
            raise UsageError("--exec", "empty command")
        program = argv[0]
        found = shutil.which(program)
        if found is None:
            where = "no such file" if os.sep in program else "not found on PATH"
            if os.sep in program and os.path.exists(program):
                where = "not executable"
            raise UsageError(
                f"--exec {program!r}", f"{where} (no shell is used: use -c for shell syntax)"
            )
        return cls(argv=argv)

    @classmethod
    def from_sh(cls, text: str) -> ExecCommand:
        """``-c "CMD"``: run by ``/bin/sh -c``."""
        if not text.strip():
            raise UsageError("--sh-exec", "empty command")
        return cls(argv=(SHELL, "-c", text), shell=True)


def child_environment(
    *, proto: str, local: object, remote: object, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Our environment plus ncat's ``NCAT_*`` variables describing the connection.

    Every value is escaped by :func:`~ncat_trio.diag.printable`: a Unix peer names
    itself (an abstract address starts with NUL), and no NUL, newline or control
    character may reach the child's environment."""
    env = dict(os.environ if base is None else base)
    for prefix, address in (("NCAT_REMOTE", remote), ("NCAT_LOCAL", local)):
        if isinstance(address, tuple) and len(address) >= 2:
            host = str(address[0])
            if host.startswith("::ffff:") and "." in host:
                host = host[7:]
            env[f"{prefix}_ADDR"] = diag.printable(host)
            env[f"{prefix}_PORT"] = diag.printable(str(address[1]))
        else:  # a Unix socket: the path (empty for an unnamed client), no port
            env[f"{prefix}_ADDR"] = diag.format_address(address) if address else ""
            env.pop(f"{prefix}_PORT", None)
    env["NCAT_PROTO"] = proto
    return env


async def exec_session(
    conn: trio.abc.HalfCloseableStream,
    command: ExecCommand,
    session: SessionOptions = SessionOptions(),
    *,
    env: Mapping[str, str] | None = None,
    peer_name: str = "connection",
    verbose: bool = False,
) -> SessionResult:
    """Run ``command`` with its stdin/stdout attached to ``conn`` until both are done.

    Of ``session``, ``idle_timeout`` (-i) and ``zerocopy`` apply (``--no-zerocopy``
    copies through user space, as stdio does).

    Raises :class:`NcatError` (never a group).  Does not close ``conn``.
    """
    idle_timeout, zerocopy = session.idle_timeout, session.zerocopy
    peer = Side(peer_name, local=False)
    child_in = Side(f"{command.name} (stdin)", local=True)
    child_out = Side(f"{command.name} (stdout)", local=True)
    result = SessionResult()
    failure: NcatError | None = None
    idle_scope = trio.CancelScope(
        deadline=math.inf if idle_timeout is None else trio.current_time() + idle_timeout
    )
    to_child_scope = trio.CancelScope()
    watch_scope = trio.CancelScope()

    def activity(_n: int) -> None:
        if idle_timeout is not None:
            idle_scope.deadline = trio.current_time() + idle_timeout

    def received(n: int) -> None:
        result.bytes_received += n
        activity(n)

    def sent(n: int) -> None:
        result.bytes_sent += n
        activity(n)

    async with open_child(command.argv, env=env, grace=command.grace) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        child_stdin, child_stdout = proc.stdin, proc.stdout

        async def to_child() -> None:
            with to_child_scope:
                try:
                    await copy(conn, child_stdin, source_side=peer, sink_side=child_in,
                               on_chunk=received, zerocopy=zerocopy)  # fmt: skip
                except LocalIOError:  # the child stopped reading: discard the rest
                    await copy(conn, None, source_side=peer, sink_side=child_in,
                               on_chunk=received, zerocopy=zerocopy)  # fmt: skip
                result.peer_eof = True
                await child_stdin.aclose()  # the child reads EOF
            watch_scope.cancel()  # nothing left to stop

        async def from_child() -> None:
            await copy(child_stdout, conn, source_side=child_out, sink_side=peer,
                       on_chunk=sent, zerocopy=zerocopy)  # fmt: skip
            result.stdin_eof = True
            await send_eof(conn, peer)  # the child closed its stdout: FIN
            with watch_scope:  # once the child is gone too, stop reading from the peer
                await proc.wait()
                to_child_scope.cancel()

        with idle_scope:
            failure = await run_directions(to_child, from_child)
        if failure is None and not idle_scope.cancelled_caught:
            # Both directions are done: give the child its grace period to exit by itself.
            with trio.move_on_after(command.grace):
                await proc.wait()
    if verbose:
        code = proc.returncode
        diag.say(f"{command.name}: {'did not exit' if code is None else describe_status(code)}")
    raise_session_end(failure, idle_scope, peer_name, idle_timeout)
    return result


async def run_exec(
    stream: trio.abc.HalfCloseableStream,
    command: ExecCommand,
    session: SessionOptions,
    peer_name: str,
    *,
    conn: trio.SocketStream,
    proto: str,
    verbose: bool,
) -> SessionResult:
    """The -e/-c session of one connection (``stream``: ``conn`` or its TLS/tap layers),
    then the close.  ``conn`` gives the addresses for the ``NCAT_*`` variables,
    ``proto`` (``TCP``/``UNIX``) its ``NCAT_PROTO``."""
    env = child_environment(
        proto=proto,
        local=_address(conn.socket.getsockname),
        remote=_address(conn.socket.getpeername),
    )
    result: SessionResult | None = None
    try:
        result = await exec_session(
            stream, command, session, env=env, peer_name=peer_name, verbose=verbose
        )
    finally:
        await close_gracefully(stream, result)
    return result


def _address(read: Callable[[], object]) -> object:
    try:
        return read()
    except OSError:  # the peer is already gone: the session will report it
        return ""

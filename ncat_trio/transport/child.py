"""A child process with piped stdin/stdout that never outlives its scope.

:func:`open_child` starts the program (never through a shell: the caller decides that by
the argv it passes) and, however the scope ends (normal exit, error, cancellation by a
signal), makes sure it is gone: a child still running gets SIGTERM, then SIGKILL after
``grace`` seconds.  The cleanup runs shielded and bounded, so a SIGINT/SIGTERM to us
still ends promptly and leaves no orphan.  The child's stderr is ours (like ncat -e).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import trio

from ..errors import LocalIOError, OutOfResources
from .net import ACCEPT_PRESSURE

#: Out of fds or memory (and fork's EAGAIN: out of processes).
_NO_RESOURCES = ACCEPT_PRESSURE | {errno.EAGAIN}

#: How long a SIGKILLed child may take to be reaped before we stop waiting (D state).
KILL_WAIT = 5.0


def describe_status(returncode: int) -> str:
    """``exit status 3`` / ``killed by SIGTERM``, from a Popen-style return code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit status {returncode}"


async def stop_child(proc: trio.Process, grace: float) -> None:
    """SIGTERM, up to ``grace`` s to exit, then SIGKILL; shielded and bounded."""
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.terminate()
            with trio.move_on_after(grace):
                await proc.wait()
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(KILL_WAIT):
                await proc.wait()


@asynccontextmanager
async def open_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    grace: float = 2.0,
) -> AsyncIterator[trio.Process]:
    """Start ``argv`` with stdin/stdout as pipes; on leaving, stop it if it still runs."""
    try:
        proc = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=None if env is None else dict(env),
        )
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        # No fd for its pipes (EMFILE...): that connection fails, a server goes on.
        cls = OutOfResources if exc.errno in _NO_RESOURCES else LocalIOError
        raise cls(f"cannot run {argv[0]}", why[0].lower() + why[1:]) from exc
    try:
        yield proc
    finally:
        with trio.CancelScope(shield=True):
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    await pipe.aclose()
        await stop_child(proc, grace)

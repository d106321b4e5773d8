"""A child process with piped stdin/stdout that never outlives its scope, nor do its own.

:func:`open_child` starts the program (never through a shell: the caller decides that by
the argv it passes) in a **session and process group of its own**, and, however the scope
ends (normal exit, error, cancellation by a signal, the peer gone), stops that whole group:
SIGTERM to the group, up to ``grace`` seconds for the child *and every process it started*
to exit, then SIGKILL to the group.  Signalling only the child was not enough: ``sh -c
'long; command'`` died and left its children orphaned to init (issue 15).  Waiting for the
group is event driven: the members are found in /proc (same process group, not yet dead)
and each one's pidfd is awaited, so a group that exits at once costs no grace period.

Because the child is in its own session, a terminal's Ctrl-C (or a hangup) reaches only
us; we stop the child.  The runner's hard stop (a second signal) SIGKILLs every group
still registered here (:func:`kill_live_groups`) before it dies, so a second Ctrl-C
does not leave the children behind either.  Out of reach: a process that moves itself
into another process group or session (a daemon's ``setsid``), and everything after a
SIGKILL to ncat-trio itself.  The cleanup runs shielded and bounded.  The child's stderr
is ours (like ncat -e).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import trio

from ..errors import LocalIOError, OutOfResources
from .net import ACCEPT_PRESSURE, describe

#: Out of fds or memory (and fork's EAGAIN: out of processes).
_NO_RESOURCES = ACCEPT_PRESSURE | {errno.EAGAIN}

#: How long a SIGKILLed group may take to be gone before we stop waiting (D state).
KILL_WAIT = 5.0

#: Process groups (the pgid is the child's pid) that may still have members.
_LIVE_GROUPS: set[int] = set()


def describe_status(returncode: int) -> str:
    """``exit status 3`` / ``killed by SIGTERM``, from a Popen-style return code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit status {returncode}"


def kill_live_groups() -> None:
    """SIGKILL every child's process group at once (the runner's hard stop).

    Only system calls: safe from a signal handler, and it does not wait.
    """
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def _signal_group(proc: trio.Process, signum: signal.Signals) -> bool:
    """Send ``signum`` to the child and its group; False if nobody was there to get it."""
    reached = proc.returncode is None
    if reached:  # the child itself if it left its group (else the killpg reaches it: once)
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(proc.pid) != proc.pid:
                proc.send_signal(signum)
    # The pgid stays the child's pid while any member lives (Linux does not hand out a
    # pid still in use as a pgid), so this reaches only the child's own group; once the
    # group is empty it is ESRCH.
    try:
        os.killpg(proc.pid, signum)
        if signum == signal.SIGTERM:  # a stopped member would sit on its SIGTERM
            os.killpg(proc.pid, signal.SIGCONT)
    except ProcessLookupError:  # the group is empty
        return reached
    return True


def _stat(pid: int) -> tuple[bytes, int] | None:
    """(state, process group) of ``pid`` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # the name may hold spaces and ")"
    return fields[0], int(fields[2])


def _group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are still alive (zombies are dead: init may take
    its time to reap an orphan)."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            found = _stat(int(name))
            if found is not None and found[1] == pgid and found[0] not in (b"Z", b"X"):
                members.append(int(name))
    return members


async def _wait_exit(pid: int, pgid: int) -> None:
    """Until process ``pid`` (a member of ``pgid``) exits, without polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (Linux < 5.3): wait out the caller's bound
        await trio.sleep_forever()
    try:
        found = _stat(pid)  # the pid may have been reused between the scan and the open
        if found is not None and found[1] == pgid:
            await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


async def _wait_group(proc: trio.Process) -> None:
    """Until the child has exited and no member of its group is alive."""
    await proc.wait()
    while members := await trio.to_thread.run_sync(_group_members, proc.pid):
        for pid in members:  # then look again: a member may have started another
            await _wait_exit(pid, proc.pid)


async def stop_child(proc: trio.Process, grace: float, *, terminated: bool = False) -> None:
    """SIGTERM to the child's group (unless the caller already sent it: ``terminated``;
    a second one would run a child's TERM trap twice), up to ``grace`` s for all of it
    to exit, then SIGKILL to the group; shielded and bounded."""
    with trio.CancelScope(shield=True):
        try:
            if terminated or _signal_group(proc, signal.SIGTERM):
                with trio.move_on_after(grace):
                    await _wait_group(proc)
                if _signal_group(proc, signal.SIGKILL):
                    with trio.move_on_after(KILL_WAIT):
                        await _wait_group(proc)
        finally:
            _LIVE_GROUPS.discard(proc.pid)


@asynccontextmanager
async def open_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    grace: float = 2.0,
) -> AsyncIterator[trio.Process]:
    """Start ``argv`` with stdin/stdout as pipes, in a new session (and process group);
    on leaving, stop the whole group (module docstring)."""
    try:
        proc = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        # No fd for its pipes (EMFILE...): that connection fails, a server goes on.
        cls = OutOfResources if exc.errno in _NO_RESOURCES else LocalIOError
        raise cls(f"cannot run {argv[0]}", describe(exc)) from exc
    _LIVE_GROUPS.add(proc.pid)
    try:
        yield proc
    finally:
        terminated = False
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                # Cut off (a reset, a signal, -i) or past its grace: SIGTERM before its
                # pipes close, so the child is stopped rather than handed an EOF it could
                # take for a clean end (and its status says so: "killed by SIGTERM").
                terminated = _signal_group(proc, signal.SIGTERM)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    await pipe.aclose()
        await stop_child(proc, grace, terminated=terminated)

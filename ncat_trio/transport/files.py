"""The file-system half of send / receive (:mod:`ncat_trio.modes.transfer_session`):
the file to send, and the received file's atomic store — a temporary (or, for
``--resume``, a checked partial) file that takes its real name only when committed."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator

import trio

from ..errors import LocalIOError
from .pump import describe_failure

#: Bytes per read, write and send: big chunks, because Python's per-chunk cost dominates
#: (DESIGN.md §5); 1 MiB measured best here (benchmarks/bench_transfer.py).
CHUNK = 1 << 20
#: Suffix of the fixed-name partial file that ``--resume`` keeps and continues.
PARTIAL_SUFFIX = ".ncat-trio-partial"
TEMP_SUFFIX = ".ncat-trio-tmp"


# ---------------------------------------------------------------- the file to send


@contextlib.contextmanager
def open_input(path: str) -> Iterator[tuple[int, os.stat_result, int]]:
    """``path`` read-only ("-": fd 0, left open): its fd, status and current offset (stdin
    redirected from a file may be part-way in; 0 for anything but a regular file)."""
    try:
        fd = 0 if path == "-" else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LocalIOError(f"open {path}", describe_failure(exc)) from exc
    try:
        st = os.fstat(fd)
        yield fd, st, os.lseek(fd, 0, os.SEEK_CUR) if stat.S_ISREG(st.st_mode) else 0
    finally:
        if path != "-":
            os.close(fd)


def read_at(fd: int, size: int, offset: int, name: str) -> bytes:
    """Up to ``size`` bytes at ``offset`` of the file called ``name`` (b"": its end)."""
    try:
        return os.pread(fd, size, offset)
    except OSError as exc:
        raise LocalIOError(f"read {name!r}", describe_failure(exc)) from exc


def hash_range(fd: int, start: int, length: int, chunk: int) -> hashlib._Hash | None:
    """sha256 of ``length`` bytes at ``start``, or None if the file is shorter."""
    hasher = hashlib.sha256()
    done = 0
    while done < length:
        data = os.pread(fd, min(chunk, length - done), start + done)
        if not data:
            return None
        hasher.update(data)
        done += len(data)
    return hasher


# ---------------------------------------------------------------- the received file


def _why(exc: OSError, errno_: int, explained: str) -> str:
    """Why ``exc`` happened: ``explained`` for the one errno the caller knows the cause
    of, else the system's words."""
    return explained if exc.errno == errno_ else describe_failure(exc)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _side_name(path: str, suffix: str, unique: bool) -> str:
    """A hidden name beside ``path``, short enough for NAME_MAX."""
    directory, base = os.path.split(path)
    stem = os.fsdecode(os.fsencode(base)[:180])
    token = f".{secrets.token_hex(4)}" if unique else ""
    return os.path.join(directory, f".{stem}{token}{suffix}")


class FileSink:
    """The temporary (or partial) file; becomes the real file only in :meth:`commit`."""

    def __init__(self, path: str, *, force: bool, resume: bool) -> None:
        self.path = path
        self._force = force
        self._resume = resume
        self.temp = _side_name(path, PARTIAL_SUFFIX if resume else TEMP_SUFFIX, not resume)
        self._fd: int | None = None
        self.committed = False

    def open(self) -> int:
        """Create (or, for resume, open and lock) the temporary file; return its length.

        With ``resume`` the fixed name may already exist, put there by anyone who can
        write to the directory: a symlink or a hard link to a file elsewhere (which we
        would overwrite), a FIFO, someone else's file.  So it is opened without following
        a symlink or blocking, and the *opened* file must be a regular file of ours with
        one name (:func:`unfit_partial`), else it is refused (exit 5) and left alone.
        """
        what = f"receive to {self.path}"
        if os.path.lexists(self.path):
            if not self._force:
                raise LocalIOError(what, "file exists (the receiver needs --force to replace it)")
            if os.path.isdir(self.path):
                raise LocalIOError(what, "is a directory")
        # O_NONBLOCK: a FIFO at the name must not hang the open (no effect on a file).
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        if not self._resume:
            flags |= os.O_EXCL
        try:
            fd = os.open(self.temp, flags, 0o600)
        except OSError as exc:
            why = _why(exc, errno.ELOOP, "is a symbolic link (refused: it would write through it)")
            raise LocalIOError(f"create {self.temp}", why) from exc
        self._fd = fd
        try:
            unfit = unfit_partial(os.fstat(fd))
            if unfit is None and self._resume:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            why = describe_failure(exc)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                why = "another receiver is writing this partial file"
            self._close()
            raise LocalIOError(f"open {self.temp}", why) from exc
        if unfit is not None:
            self._close()
            raise LocalIOError(f"open {self.temp}", f"{unfit} (refused)")
        return os.fstat(fd).st_size

    async def hash_prefix(self, length: int) -> hashlib._Hash:
        assert self._fd is not None
        hasher = await trio.to_thread.run_sync(hash_range, self._fd, 0, length, CHUNK)
        if hasher is None:
            raise LocalIOError(f"read {self.temp}", "the partial file shrank")
        return hasher

    def start_at(self, offset: int) -> None:
        """Position for writing at ``offset``; everything after it is dropped."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
        except OSError as exc:
            raise LocalIOError(f"write {self.temp}", describe_failure(exc)) from exc

    async def write(self, data: bytes) -> None:
        # A regular file never makes us wait for readiness (DESIGN.md §4): plain writes.
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise LocalIOError(f"write {self.temp}", describe_failure(exc)) from exc

    async def commit(self, mode: int, mtime_ns: int | None) -> None:
        """fsync, set mode and mtime, give the file its real name (then
        :meth:`sync_directory`).  No checkpoint after the rename: ``committed`` is true
        before a cancellation can be delivered."""
        fd = self._fd
        assert fd is not None
        try:
            await trio.to_thread.run_sync(os.fsync, fd)
            os.fchmod(fd, mode & 0o777 & ~_umask())
            if mtime_ns is not None:
                os.utime(fd, ns=(os.fstat(fd).st_atime_ns, mtime_ns))
        except OSError as exc:
            raise LocalIOError(f"finish {self.temp}", describe_failure(exc)) from exc
        self._close()
        try:
            self._rename_into_place()
        except OSError as exc:
            why = _why(exc, errno.EEXIST, "file exists (the receiver needs --force to replace it)")
            raise LocalIOError(f"rename {self.temp} to {self.path}", why) from exc
        self.committed = True

    async def sync_directory(self) -> None:
        """fsync the directory, so that the rename is durable (best effort)."""
        directory = os.path.dirname(self.path) or "."
        with contextlib.suppress(OSError):  # not every file system can fsync a directory
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                await trio.to_thread.run_sync(os.fsync, dir_fd)
            finally:
                os.close(dir_fd)

    def _rename_into_place(self) -> None:
        if self._force:
            os.replace(self.temp, self.path)
            return
        # No clobbering, even if the name appeared meanwhile: link(2) fails with EEXIST.
        try:
            os.link(self.temp, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if os.path.lexists(self.path):  # a file system without hard links
                raise FileExistsError(errno.EEXIST, "File exists") from exc
            os.rename(self.temp, self.path)
            return
        os.unlink(self.temp)

    def abandon(self, *, keep: bool) -> None:
        """After a failure: delete the temporary file, unless it is a partial to keep."""
        self._close()
        if not keep:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)


def unfit_partial(st: os.stat_result) -> str | None:
    """Why an opened partial/temporary file may not be written, or None if it may."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink != 1:
        return f"has {st.st_nlink} names: a hard link to a file elsewhere"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    return None

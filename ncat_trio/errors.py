"""The error tree and the one table that maps errors to exit codes.

Every failure a user can cause or meet is an :class:`NcatError` subclass carrying
*what* failed and *why*; the runner prints ``ncat-trio: <what>: <why>`` and exits
with the class's code.  Foreign exceptions (``OSError``, ``trio.BrokenResourceError``,
``socket.gaierror``) are translated once, at the lowest layer, with ``raise … from``.
Anything else that escapes is a bug and keeps its traceback (exit 70).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from types import FrameType
from typing import Any, ClassVar, NoReturn


class ExitCode(enum.IntEnum):
    """Documented exit codes (README, "Exit codes")."""

    OK = 0
    CONNECT = 1  # could not connect / bind / resolve
    USAGE = 2  # bad flags or arguments (click's own code for usage errors)
    RESET = 3  # connection reset or aborted mid-transfer: data may be lost
    TIMEOUT = 4  # connect, idle or protocol timeout
    LOCAL_IO = 5  # stdin/stdout/file failure, e.g. stdout closed with data left to write
    PROTOCOL = 6  # the peer broke a wire protocol
    INTEGRITY = 7  # data arrived but failed verification (digest mismatch, short transfer)
    SOFTWARE = 70  # an unexpected exception: a bug (EX_SOFTWARE), printed with traceback
    SIGHUP = 129
    SIGINT = 130
    SIGTERM = 143


class NcatError(Exception):
    """Base of every expected failure.  ``what`` names the thing, ``why`` the reason."""

    exit_code: ClassVar[ExitCode] = ExitCode.SOFTWARE

    def __init_subclass__(cls, exit_code: ExitCode | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, what: str, why: str = "") -> None:
        super().__init__(what, why)
        self.what = what
        self.why = why

    def __str__(self) -> str:
        return f"{self.what}: {self.why}" if self.why else self.what


def reason(exc: OSError, *, by_errno: bool = False) -> str:
    """The *why* of an OSError in a one-line message: its words, lower-cased in front as
    every line of ours is (``cannot open x: no such file or directory``).

    ``by_errno``: the errno's own words instead of the exception's text, for socket calls
    (Trio's connect() wraps them: "Error connecting to (...): Connection refused"); not for
    getaddrinfo, whose errno is an EAI_ code that ``os.strerror`` does not know."""
    text = os.strerror(exc.errno) if by_errno and exc.errno else exc.strerror or str(exc)
    return text[:1].lower() + text[1:] if text else "failed"


class UsageError(NcatError, exit_code=ExitCode.USAGE):
    """Bad command-line input (ports, hosts, flags, values)."""


class ConnectError(NcatError, exit_code=ExitCode.CONNECT):
    """Could not establish a connection or a listener: refused, unreachable, DNS, bind."""


class ConnectionLost(NcatError, exit_code=ExitCode.RESET):
    """The connection was reset or aborted while data was in flight."""


class NcatTimeout(NcatError, exit_code=ExitCode.TIMEOUT):
    """A connect, idle or protocol timeout fired."""


class LocalIOError(NcatError, exit_code=ExitCode.LOCAL_IO):
    """A local file or stdio failed: stdout closed, a file that can't be written."""


class OutOfResources(LocalIOError):
    """No file descriptor or memory for one connection (EMFILE, ENFILE, ENOBUFS, ENOMEM
    while duplicating an fd, making a pipe or starting a child).  A server drops that
    connection and keeps serving; a single-connection command fails with this."""


class RemoteProtocolError(NcatError, exit_code=ExitCode.PROTOCOL):
    """The peer sent bytes that break the protocol."""


class LocalProtocolError(NcatError, exit_code=ExitCode.PROTOCOL):
    """We were asked to send something the protocol does not allow (a bug or bad input)."""


class IntegrityError(NcatError, exit_code=ExitCode.INTEGRITY):
    """Data arrived but failed verification: digest mismatch, short or missing transfer."""


#: What each exit code means, for ``ncat-trio help exit-codes`` and the README's table
#: (a test keeps the README in step with this).
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success: everything was delivered both ways",
    ExitCode.CONNECT: "could not connect, bind or resolve: refused, unreachable, unknown host, "
    "address in use, permission, connected to itself",
    ExitCode.USAGE: "usage error: bad flag, port, duration",
    ExitCode.RESET: "connection reset or aborted mid-transfer (data may be lost)",
    ExitCode.TIMEOUT: "timeout: connect (-w), idle (-i) or a protocol timeout",
    ExitCode.LOCAL_IO: "local I/O failure: received data could not be written (stdout's "
    "reader left with bytes still to deliver), stdin unreadable, file not writable",
    ExitCode.PROTOCOL: "protocol error: the peer broke a wire protocol (ttcp, clock, send/receive)",
    ExitCode.INTEGRITY: "integrity: data arrived but failed verification (digest mismatch, "
    "short transfer)",
    ExitCode.SOFTWARE: "internal error: a bug; printed with its traceback",
    ExitCode.SIGHUP: "interrupted by SIGHUP, after cleanup",
    ExitCode.SIGINT: "interrupted by SIGINT (Ctrl-C), after cleanup",
    ExitCode.SIGTERM: "interrupted by SIGTERM, after cleanup",
}


class Interrupted(BaseException):
    """SIGINT during start-up (imports, option parsing), before the runner owns signals.

    Not a ``KeyboardInterrupt``: click turns that into ``Abort`` after writing an empty
    line to stderr.  ``ncat_trio.__main__`` turns it into one line and exit 130.
    """


#: Set by :func:`interrupt_startup`: the runner stops at once even if the exception was
#: swallowed on its way up (raised inside a ``__del__`` or a callback, it is only printed).
startup_interrupted = False


def interrupt_startup(signum: int, frame: FrameType | None) -> NoReturn:
    """The SIGINT handler from process start until ``runner.run`` takes signals over."""
    global startup_interrupted
    startup_interrupted = True
    raise Interrupted


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside ``exc``: itself, or every leaf of an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc

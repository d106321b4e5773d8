"""The one writer of ``--json`` / ``--json-file`` objects (their schemas: ``report_schema.py``).

Every mode hands its object to :meth:`Summary.write`; the rule (docs/json.md):

* ``--json``: the object as one line on stdout, replacing the mode's result lines there
  (scan, ttcp, clock); on stderr only where stdout carries the data (connect, listen).
* ``--json-file FILE``: the same object appended to FILE (with ``--json``: as well).

``--json-file FILE`` appends one object per line, so several runs (and several modes)
can share a file.  The CLI calls :func:`check_appendable` before anything touches the
network: a file that can't be written is a one-line error and exit 5, not a surprise
after an hour of relaying.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import LocalIOError, reason


@dataclass(frozen=True)
class Summary:
    """Where one mode's summary objects go: ``--json`` and ``--json-file``."""

    json: bool = False  # --json: on `stream`
    json_file: str | None = None  # --json-file: appended there
    stream: Literal["stdout", "stderr"] = "stdout"  # stderr only where stdout is data

    @property
    def wanted(self) -> bool:
        return self.json or self.json_file is not None

    def write(self, record: Mapping[str, object]) -> None:
        """The file first, then the stream; :class:`LocalIOError` if either fails."""
        if self.json_file is not None:
            append_json(self.json_file, record)
        if self.json and self.stream == "stderr":
            from . import diag  # lazy: the CLI imports this module for check_appendable

            diag.write_raw(json_line(record))
        elif self.json:
            write_stdout(json_line(record))

    def write_result(self, record: Mapping[str, object], lines: Iterable[str]) -> None:
        """A mode's result (ttcp, clock): the object as :meth:`write` puts it, and on stdout
        the human ``lines``, unless ``--json`` put the object there instead."""
        self.write(record)
        if not self.json:
            write_stdout("".join(line + "\n" for line in lines))

    def write_at_end(self, record: Mapping[str, object], say: Callable[[str], None]) -> None:
        """For an object written as a connection or a server ends (connect, listen, relay):
        a failure is one line through ``say`` and never masks the real exit code."""
        try:
            self.write(record)
        except LocalIOError as exc:
            say(str(exc))


def write_stdout(text: str) -> None:
    """A mode's result on stdout, flushed; a stdout that is gone is :class:`LocalIOError`."""
    if sys.stdout is None:  # fd 1 was closed when we started (`>&-`)
        raise LocalIOError("stdout", "closed")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        from .transport.pump import describe_failure  # lazy, as diag above

        raise LocalIOError("stdout", describe_failure(exc)) from exc


def json_line(record: Mapping[str, object]) -> str:
    """One object, one line (``json.dumps`` escapes newlines inside strings)."""
    return json.dumps(record) + "\n"


def check_appendable(path: str) -> None:
    """Raise :class:`LocalIOError` unless ``path`` could be appended to; creates nothing.

    An existing file is opened for appending (and closed: nothing is written); for a
    new one, its directory must exist and be writable.
    """
    what = f"--json-file {path}"
    if os.path.isdir(path):
        raise LocalIOError(what, "is a directory")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise LocalIOError(what, "no such directory") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise LocalIOError(what, "permission denied") from None
        return
    except OSError as exc:
        raise LocalIOError(what, reason(exc)) from exc
    os.close(fd)


def append_json(path: str, record: Mapping[str, object]) -> None:
    """Append ``record`` as one line to ``path`` (one ``write``: O_APPEND keeps lines whole)."""
    data = json_line(record).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise LocalIOError(f"--json-file {path}", reason(exc)) from exc

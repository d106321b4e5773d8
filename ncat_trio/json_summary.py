"""Writing ``--json`` / ``--json-file`` objects (their schemas: ``report_schema.py``).

``--json-file FILE`` appends one object per line, so several runs (and several modes)
can share a file.  The CLI calls :func:`check_appendable` before anything touches the
network: a file that can't be written is a one-line error and exit 5, not a surprise
after an hour of relaying.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from .errors import LocalIOError


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
        raise LocalIOError(what, (exc.strerror or str(exc)).lower()) from exc
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
        raise LocalIOError(f"--json-file {path}", (exc.strerror or str(exc)).lower()) from exc

"""A pipe on which forked children tell their parent they are ready (``relay --workers``).

Plain blocking fds, no Trio: made before ``fork()``, read by the parent outside any
Trio run.  Each child writes one byte once ready; an EOF before the count means a
child died first.
"""

from __future__ import annotations

import os
from collections.abc import Callable


class ReadyPipe:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()

    def child_end(self) -> Callable[[], None]:
        """In a forked child: drop the parent's end; call the result once, when ready."""
        os.close(self._read)
        return self._ready

    def _ready(self) -> None:
        os.write(self._write, b"+")
        os.close(self._write)

    def forked(self) -> None:
        """In the parent once every child is forked: a dead child's end now reads EOF."""
        os.close(self._write)

    def wait(self, count: int) -> bool:
        """Read one byte per child; False if the pipe closes first (a child failed)."""
        got = 0
        while got < count:
            try:
                chunk = os.read(self._read, count - got)
            except InterruptedError:
                continue
            if not chunk:
                return False
            got += len(chunk)
        return True

    def close(self) -> None:
        os.close(self._read)

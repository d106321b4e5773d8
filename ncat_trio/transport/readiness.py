"""A pipe on which forked children tell their parent they are ready (``relay --workers``).

Plain blocking fds, no Trio: it is made before ``fork()`` and the parent reads it
outside any Trio run.  Each child writes one byte once ready and closes its end; the
parent counts bytes, and an EOF before the count means a child died first.
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
        fd = self._write

        def ready() -> None:
            os.write(fd, b"+")
            os.close(fd)

        return ready

    def forked(self) -> None:
        """In the parent, once every child is forked (or forking failed): close its
        copy of the children's end, so that their deaths show as EOF."""
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

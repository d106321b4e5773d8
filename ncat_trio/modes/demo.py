"""``ncat-trio demo``: the main job, for real, on loopback.

Starts ``ncat-trio listen 127.0.0.1 0`` and ``ncat-trio connect`` as separate
processes, exactly as a user would type them, moves a random payload each way at the
same time, and checks both by sha256.  Prints what it ran and a stats line on stderr.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import zipimport
from pathlib import Path

import trio

from .. import diag
from ..errors import IntegrityError, NcatError

_READY = re.compile(rb"listening on (\S+):(\d+)")


async def _read_ready_line(stream: trio.abc.ReceiveStream) -> int:
    buf = b""
    while b"\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise NcatError(
                "demo listener", f"exited before it was ready: {buf.decode(errors='replace')}"
            )
        buf += chunk
    match = _READY.search(buf)
    if match is None:
        raise NcatError(
            "demo listener", f"unexpected output: {buf.decode(errors='replace').strip()}"
        )
    return int(match.group(2))


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _self_command() -> list[str]:
    """How a child runs ncat-trio again: ``python -m ncat_trio``, or, when this runs from
    the single-file zipapp (``ncat-trio.pyz``, whose package is importable only from
    inside the archive), ``python [-I] ncat-trio.pyz``."""
    import ncat_trio

    loader = ncat_trio.__spec__.loader if ncat_trio.__spec__ is not None else None
    if isinstance(loader, zipimport.zipimporter):
        return [sys.executable, *(["-I"] if sys.flags.isolated else []), loader.archive]
    return [sys.executable, "-m", "ncat_trio"]


async def demo_main(nbytes: int) -> int:
    prog = _self_command()
    with tempfile.TemporaryDirectory(prefix="ncat-trio-demo-") as tmp:
        d = Path(tmp)
        up, down, up_out, down_out = d / "up.bin", d / "down.bin", d / "up.out", d / "down.out"
        for path in (up, down):
            with path.open("wb") as f:
                for offset in range(0, nbytes, 1 << 20):
                    f.write(os.urandom(min(1 << 20, nbytes - offset)))
        diag.say(f"demo: {nbytes / 2**20:.1f} MiB of random bytes each way, over 127.0.0.1")
        diag.say("demo: $ ncat-trio listen 127.0.0.1 0 < down.bin > up.out")
        with down.open("rb") as l_in, up_out.open("wb") as l_out, trio.fail_after(120):
            listener = await trio.lowlevel.open_process(
                [*prog, "listen", "127.0.0.1", "0"],
                stdin=l_in,
                stdout=l_out,
                stderr=subprocess.PIPE,
            )
            try:
                assert listener.stderr is not None
                port = await _read_ready_line(listener.stderr)
                diag.say(f"demo: $ ncat-trio connect 127.0.0.1 {port} < up.bin > down.out")
                started = time.perf_counter()
                with up.open("rb") as c_in, down_out.open("wb") as c_out:
                    client = await trio.run_process(
                        [*prog, "connect", "127.0.0.1", str(port)],
                        stdin=c_in, stdout=c_out, check=False,
                    )  # fmt: skip
                listener_code = await listener.wait()
                elapsed = time.perf_counter() - started
            finally:
                if listener.returncode is None:
                    listener.kill()
                    await listener.wait()
        if client.returncode or listener_code:
            raise NcatError(
                "demo", f"exit codes: connect {client.returncode}, listen {listener_code}"
            )
        for name, sent, got in (("upload", up, up_out), ("download", down, down_out)):
            if _digest(sent) != _digest(got):
                raise IntegrityError(f"demo {name}", "sha256 mismatch")
        rate = 2 * nbytes / 2**20 / max(elapsed, 1e-9)
        diag.say(
            f"demo: OK: {nbytes} bytes each way in {elapsed:.2f} s ({rate:.0f} MiB/s total), "
            f"sha256 verified both ways ({_digest(up)[:12]}… / {_digest(down)[:12]}…)"
        )
    return 0

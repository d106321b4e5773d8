"""``ncat-trio.pyz``: the single-file zipapp runs on a bare Python, no installed packages.

Built by ``tools/build_pyz.py`` (``just pyz``) into a temp folder, then run by the base
interpreter (not this venv's) under ``-I -S`` -- isolated mode, and no site-packages at
all, so nothing but the stdlib and the archive can be imported -- with an empty
environment (``env -i``), as on a host where someone copied only that one file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..support import ROOT, reaped, spawn, wait_for_port

pytestmark = pytest.mark.slow

#: The interpreter the venv was made from: no ncat-trio, trio or typer of its own.
BARE_PYTHON = [getattr(sys, "_base_executable", sys.executable), "-I", "-S"]


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "ncat-trio.pyz"
    built = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_pyz.py"), "--output", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


def bare(pyz: Path, *args: str) -> list[str]:
    return [*BARE_PYTHON, str(pyz), *args]


def test_the_bare_interpreter_has_no_trio() -> None:
    """The premise: without the archive, this interpreter cannot import trio."""
    result = subprocess.run(
        [*BARE_PYTHON, "-c", "import trio"], capture_output=True, env={}, timeout=30, check=False
    )
    assert result.returncode != 0


def test_version_from_a_clean_folder(pyz: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        bare(pyz, "--version"), capture_output=True, text=True, env={}, cwd=tmp_path,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ncat-trio "), result.stdout
    assert "Trio " in result.stdout


def test_send_and_receive_with_the_zipapp(pyz: Path, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit
    (tmp_path / "out").mkdir()
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    receiver = spawn(bare(pyz, "receive", "127.0.0.1", "0", "-o", "out"), env={}, cwd=tmp_path)
    with reaped(receiver):
        assert receiver.stderr is not None
        port = wait_for_port(receiver.stderr, timeout=60)
        sent = subprocess.run(
            bare(pyz, "send", "127.0.0.1", str(port), "payload.bin"),
            capture_output=True, text=True, env={}, cwd=tmp_path, timeout=120, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert receiver.wait(timeout=60) == 0, receiver.stderr.read().decode(errors="replace")
        assert "acknowledged by the receiver" in sent.stderr
    assert (tmp_path / "out" / "payload.bin").read_bytes() == payload

"""Every script in examples/ runs and succeeds, so the README's recipes never rot.

``*.py`` runs with this Python, ``test_*.py``/``*_test.py`` under pytest, ``*.sh`` with
bash (with ``ncat-trio`` on PATH).  Each must exit 0 within its timeout.  The shell
scripts also run right after the README's quick start as written: ``ncat-trio`` not on
PATH, only in ``.venv/bin``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(
    p for p in EXAMPLES.iterdir() if p.suffix in {".py", ".sh"} and not p.name.startswith("_")
)


def command_for(path: Path) -> list[str]:
    if path.suffix == ".sh":
        return ["bash", str(path)]
    if path.name.startswith("test_") or path.stem.endswith("_test"):
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    return [sys.executable, str(path)]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        command_for(path),
        cwd=EXAMPLES.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_shell_examples_find_the_quick_start_venv() -> None:
    """No ``ncat-trio`` on PATH (the quick start never activates its venv): the scripts
    find ``.venv/bin/ncat-trio`` themselves instead of failing half-way."""
    if not (ROOT / ".venv" / "bin" / "ncat-trio").exists():
        pytest.skip("no .venv/bin/ncat-trio here (the quick start makes one)")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "pipeline.sh")], cwd="/", env=env, stdin=subprocess.DEVNULL,
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert b"reply: +PONG" in proc.stdout


def test_shell_examples_say_what_is_missing(tmp_path: Path) -> None:
    """With no ncat-trio anywhere, one clear line and exit 127, not an unbound variable."""
    copy = tmp_path / "examples"
    copy.mkdir()
    for name in ("_lib.sh", "pipeline.sh"):
        (copy / name).write_text((EXAMPLES / name).read_text())
    proc = subprocess.run(
        ["bash", str(copy / "pipeline.sh")], env={"PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 127
    assert b"ncat-trio is not on PATH" in proc.stderr

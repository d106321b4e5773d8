"""Every script in examples/ runs and succeeds, so the README's recipes never rot.

``*.py`` runs with this Python, ``test_*.py``/``*_test.py`` under pytest, ``*.sh`` with
bash (with ``ncat-trio`` on PATH).  Each must exit 0 within its timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
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

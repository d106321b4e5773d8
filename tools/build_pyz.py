"""Build ``ncat-trio.pyz``: ncat-trio and its pure-Python dependencies in one file.

Copy it to a host that has Python (>= the ``requires-python`` of pyproject.toml) and
nothing else -- no pip, no network, no venv -- and run ``python3 ncat-trio.pyz …``.

How: ``pip install --target`` puts the wheel and its dependencies (trio, typer and
what they pull in: attrs, idna, outcome, sniffio, sortedcontainers, rich, shellingham,
…) in a staging folder; the stdlib ``zipapp`` zips it behind a ``__main__`` that calls
the console-script entry point.  Every one of those packages is pure Python, so they
import straight from the archive (zipimport); the build fails if a compiled extension
slipped in, since zipimport could not load it.  ``*.dist-info`` folders stay, so
``importlib.metadata`` (``--version``) works inside the archive.

    python tools/build_pyz.py                      # builds the wheel, writes dist/ncat-trio.pyz
    python tools/build_pyz.py --wheel dist/X.whl   # from an existing wheel
"""

from __future__ import annotations

import argparse
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MAIN = '''\
"""ncat-trio as a single-file zipapp (built by tools/build_pyz.py)."""

import sys

if sys.version_info < (3, 11):
    sys.exit("ncat-trio needs Python 3.11 or newer (this is %d.%d)" % sys.version_info[:2])

from ncat_trio.cli import main

main()
'''

# What pip creates that the archive does not need: console scripts, caches, and the man
# page's data folder (share/man, for installed wheels).
_DROP_DIRS = {"bin", "__pycache__"}
_DROP_TOP = ("share",)
_NATIVE = (".so", ".pyd", ".dylib")
# rich's syntax highlighting and Markdown: never imported by ncat-trio's runs (checked
# with -X importtime), so left as source only (their bytecode would double the archive).
_SOURCE_ONLY = {"pygments", "markdown_it", "mdurl"}


def stage(wheel: Path | None, folder: Path) -> None:
    """Install ncat-trio (the wheel, or this checkout) and its dependencies into ``folder``."""
    source = str(wheel) if wheel is not None else str(ROOT)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", str(folder), source],
        check=True,
    )  # fmt: skip
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _DROP_DIRS:
            shutil.rmtree(path)
    for name in _DROP_TOP:
        shutil.rmtree(folder / name, ignore_errors=True)
    native = [p.relative_to(folder) for p in folder.rglob("*") if p.suffix in _NATIVE]
    if native:
        raise SystemExit(f"compiled modules cannot load from a zipapp: {native}")
    (folder / "__main__.py").write_text(MAIN)
    precompile(folder)


def precompile(folder: Path) -> None:
    """Put ``x.pyc`` beside every ``x.py``, where zipimport looks for it.

    zipimport cannot write bytecode caches, so without these every start compiles every
    imported module from source (``--version`` took 243 ms instead of 134).  They are
    unchecked-hash pycs (no mtime to compare: zip entries round mtimes to 2 s) for this
    Python's bytecode version; another Python version sees a foreign magic number,
    ignores them and compiles the sources, which stay in the archive.
    """
    for source in folder.rglob("*.py"):
        if source.relative_to(folder).parts[0] in _SOURCE_ONLY:
            continue
        py_compile.compile(
            str(source),
            cfile=str(source.with_suffix(".pyc")),
            dfile=str(source.relative_to(folder)),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


def build(output: Path, wheel: Path | None = None) -> Path:
    with tempfile.TemporaryDirectory(prefix="ncat-trio-pyz-") as tmp:
        folder = Path(tmp) / "app"
        stage(wheel, folder)
        output.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(folder, output, interpreter="/usr/bin/env python3", compressed=True)
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="install this wheel (default: build one)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "dist" / "ncat-trio.pyz", help="the archive"
    )
    args = parser.parse_args()
    path = build(args.output, args.wheel)
    print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

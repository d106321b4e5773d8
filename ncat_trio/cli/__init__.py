"""The command line: argv → frozen options → run → exit code.

``main`` first rewrites the nc spellings people type (:mod:`.argv`: ``ncat-trio HOST
PORT``, ``-l [HOST] PORT``, ``-lvk -p PORT``, ``-z``); a port-scan line is then parsed
without typer and run without Trio (:mod:`.scan_options`, issue 16: a ``-z`` loop pays
start-up on every call); everything else goes to the typer app (:mod:`.root`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

from .argv import PROGRESS_SPELLINGS as PROGRESS_SPELLINGS
from .argv import rewrite_shorthand as rewrite_shorthand
from .argv import spelled_out

if TYPE_CHECKING:
    import typer


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    sys.exit(run_cli(sys.argv[1:] if argv is None else argv))


def run_cli(args: list[str]) -> int:
    """Parse and run; return the exit code.  One-line errors, no tracebacks for usage."""
    if args in (["--version"], ["-V"]):  # scripts check it; typer is not needed for it
        from .. import runner
        from ..json_summary import write_stdout

        def show() -> int:
            write_stdout(version_line() + "\n")
            return 0

        return runner.run_blocking(show)
    words = spelled_out(args)
    scan = None
    if words and words[0] == "scan":
        from .scan_options import from_argv

        scan = from_argv(words)
    if scan is not None:
        from .. import runner
        from ..modes.scan import scan_main

        return runner.run_blocking(lambda: scan_main(scan))
    from . import root

    return root.run_cli(args)


def version_line() -> str:
    """``ncat-trio --version``'s line."""
    import platform
    from importlib.metadata import version

    from .. import __version__

    # The installed Trio's version, without paying for importing Trio itself.
    trio_version = version("trio")
    return f"ncat-trio {__version__} (Python {platform.python_version()}, Trio {trio_version})"


def __getattr__(name: str) -> typer.Typer:  # ``from ncat_trio.cli import app``
    if name == "app":
        from .root import full_app

        return full_app()
    raise AttributeError(name)

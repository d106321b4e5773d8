"""``python -m ncat_trio`` and the ``ncat-trio`` console script.

A Ctrl-C in the first moments (while typer and Trio are imported and the flags are
parsed, before :func:`ncat_trio.runner.run` owns signals) is one line and exit 130,
like a later one, never a ``KeyboardInterrupt`` traceback (issue 15).  Only this light
module and :mod:`ncat_trio.errors` are imported before the handler is in place.
"""

import contextlib
import os
import signal
import sys
from typing import NoReturn

from ncat_trio.errors import ExitCode, Interrupted, interrupt_startup

_unraisable = sys.unraisablehook


def _quiet_interrupted(unraisable: "sys.UnraisableHookArgs") -> None:
    """An :class:`Interrupted` raised inside a callback (an import lock's weakref
    callback, a ``__del__``) cannot propagate and would be printed as "Exception
    ignored"; ``errors.startup_interrupted`` is set, so the runner stops instead."""
    if unraisable.exc_type is not Interrupted:
        _unraisable(unraisable)


def main() -> NoReturn:
    """Console-script entry point: ``ncat_trio.cli.main`` with start-up SIGINT handled."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt_startup)
        sys.unraisablehook = _quiet_interrupted
    try:
        from ncat_trio.cli import main as cli_main

        cli_main()
    except (Interrupted, KeyboardInterrupt):
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C: a hard stop
        with contextlib.suppress(OSError):
            os.write(2, b"ncat-trio: interrupted by SIGINT\n")
        sys.exit(ExitCode.SIGINT)


if __name__ == "__main__":
    main()

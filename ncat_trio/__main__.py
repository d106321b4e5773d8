"""``python -m ncat_trio`` and the ``ncat-trio`` console script.

A Ctrl-C in the first moments (while typer and Trio are imported and the flags are
parsed, before :func:`ncat_trio.runner.run` owns signals) is one line and exit 130,
like a later one, never a ``KeyboardInterrupt`` traceback (issue 15).  Nothing but this
module, the built-in ``_signal`` and :mod:`ncat_trio.errors` (imported with the package)
runs before the handler is in place.
"""

# Only what is already loaded or built in, so that nothing slow (signal.py builds its
# enums: a few ms) runs before the handler is in place; the rest is imported after.
import _signal  # type: ignore[import-not-found]  # (no typeshed stub; same API as signal)
import sys
from typing import NoReturn  # loaded with the package too (errors.py)

from ncat_trio import errors  # loaded with the package
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
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, interrupt_startup)
        sys.unraisablehook = _quiet_interrupted
    try:
        from ncat_trio.cli import main as cli_main

        cli_main()
    except (Interrupted, KeyboardInterrupt):
        _interrupted()
    except Exception:
        # Our Interrupted raised inside the import machinery comes out as another
        # exception (``__set_name__`` wraps it in a RuntimeError): still that Ctrl-C.
        if not errors.startup_interrupted:
            raise
        _interrupted()


def _interrupted() -> NoReturn:
    """One line and exit 130, as after Trio has started."""
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # a second Ctrl-C: a hard stop
    try:
        sys.stderr.write("ncat-trio: interrupted by SIGINT\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # stderr gone or closed at start
        pass
    sys.exit(ExitCode.SIGINT)


if __name__ == "__main__":
    main()

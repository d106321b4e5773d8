"""The typer app: argv (nc spellings already rewritten, :mod:`.argv`) → frozen options
→ ``runner.run`` → exit code.  Usage errors are one line on stderr and exit 2; help goes
to stdout and exits 0.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Annotated

import typer

from .. import diag
from ..errors import ExitCode, NcatError
from . import version_line
from .argv import spelled_out
from .panels import new_app


def _new_app() -> typer.Typer:
    return new_app(
        "ncat-trio",
        "A netcat, relay and network-test tool built on Trio. Stdout is data only; "
        "diagnostics go to stderr.",
        pretty_exceptions_enable=False,
    )


def _register(app: typer.Typer, only: str | None = None) -> typer.Typer:
    """Every subcommand, or ``only`` the module of one: a run of ``connect``, ``listen``
    or ``scan`` (the nc spelling, ``-z`` loops) imports no ttcp, clock, transfer or relay
    code (issue 16 §4, start-up: about 12 ms of ~160 measured with -X importtime)."""
    app.callback()(_root)
    if only in (None, "connect", "listen", "demo"):
        from . import netcat

        netcat.register(app)
    if only is None:
        from . import clock as clock_cli
        from . import help as help_cli
        from . import relay as relay_cli
        from . import toxiproxy as toxiproxy_cli
        from . import transfer as transfer_cli
        from . import ttcp as ttcp_cli

        app.add_typer(ttcp_cli.app, name="ttcp")
        clock_cli.register(app)
        transfer_cli.register(app)
        relay_cli.register(app)
        toxiproxy_cli.register(app)
        help_cli.register(app)
    if only in (None, "scan"):
        from . import scan as scan_cli

        scan_cli.register(app)
    return app


@functools.cache
def full_app() -> typer.Typer:
    """The app with every subcommand (help, completion, anything but the three below)."""
    return _register(_new_app())


def _app_for(args: list[str]) -> typer.Typer:
    """The slim app for one connect/listen/scan run, else the full one."""
    if args and args[0] in ("connect", "listen", "scan") and not _asks_help(args):
        return _register(_new_app(), only=args[0])
    return full_app()


def _asks_help(args: list[str]) -> bool:
    words = args[: args.index("--")] if "--" in args else args
    return any(a in ("-h", "--help") or a.startswith("--show-completion") for a in words)


def _version(value: bool) -> None:
    if value:
        print(version_line())
        raise typer.Exit(0)


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print versions and exit."
        ),
    ] = False,
) -> None:
    """ncat-trio: connect, listen, relay, measure."""


#: nc.openbsd / ncat flags this tool spells differently, or has not: the usage error
#: names the equivalent instead of only "no such option".
NC_FLAG_EQUIVALENTS = {
    "-I": "nc.openbsd's receive buffer is --rcvbuf BYTES",
    "-O": "nc.openbsd's send buffer is --sndbuf BYTES",
    "-M": "nc.openbsd's outgoing TTL is --ttl N",
    "-T": "nc.openbsd's -T (TOS/DSCP) is --tos VALUE",
    "-b": "nc.openbsd's -b is --broadcast (with -u)",
    "-m": "ncat's -m (--max-conns) is listen -k --max-conns N",
    "-t": "telnet negotiation (-t) is not supported",
    "-r": "random port order (-r) is not supported; scan in order with `scan`",
    "-D": "SO_DEBUG (-D) is not supported",
    "-S": "TCP MD5 signatures (-S) are not supported",
    "-x": "-x (nc.openbsd's proxy) is a connect flag: ncat-trio -x ADDR[:PORT] HOST PORT; "
    "ncat's hex dump -x FILE is -o FILE",
    "-X": "-X (nc.openbsd's proxy protocol) goes with -x ADDR[:PORT] in connect",
    "-g": "source routing (-g/-G) is not supported",
    "-G": "source routing (-g/-G) is not supported",
}


SCAN_TAKES = "a scan takes -v, -n, -4, -6, -w, --concurrency, --json and --json-file"
#: nc.openbsd flags people combine with -z that the scan has not.
SCAN_FLAG_EQUIVALENTS = {
    "-u": "UDP port scans (nc -zu) are not supported; a scan tries TCP connects only",
    "-p": "a scan connects from any source port (nc -z -p has no equivalent)",
    "-s": "a scan connects from the routing's source address (nc -z -s has no equivalent)",
}


def run_cli(args: list[str]) -> int:
    """Parse and run; return the exit code.  One-line errors, no tracebacks for usage."""
    words = spelled_out(args)
    command = typer.main.get_command(_app_for(words))
    try:
        result = command.main(words, prog_name="ncat-trio", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # click's usage errors, vendored by typer
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `ncat-trio` / `ncat-trio listen`
            sys.stderr.write(exc.format_message() + "\n")
        else:
            message = exc.format_message()
            number = re.fullmatch(r"No such option: (-[0-9.]+)", message)
            if number is not None:  # `ncat-trio host -1`: a negative number, not a flag
                message = f"invalid value {number.group(1)!r}: negative numbers are not allowed"
            flag = re.match(r"No such option: (-\w)\b", message)
            if flag is not None and words[:1] == ["scan"]:  # -z's line: say what scan is
                why = SCAN_FLAG_EQUIVALENTS.get(flag.group(1), SCAN_TAKES)
                message = f"no option {flag.group(1)} with -z/scan: {why}"
            elif flag is not None and flag.group(1) in NC_FLAG_EQUIVALENTS:
                message = f"no option {flag.group(1)}: {NC_FLAG_EQUIVALENTS[flag.group(1)]}"
            diag.say(f"{message} (see ncat-trio --help)")
        return ExitCode.USAGE
    except OSError as exc:  # help or a completion script could not be written out
        from ..runner import quiet_stdout_on_exit

        diag.say(f"stdout: {os.strerror(exc.errno).lower() if exc.errno else exc}")
        quiet_stdout_on_exit()
        return ExitCode.LOCAL_IO
    except typer.Abort:
        diag.say("aborted")
        return ExitCode.SIGINT
    except NcatError as exc:  # raised while building options, before anything runs
        diag.say(str(exc))
        return exc.exit_code
    return int(result or 0)

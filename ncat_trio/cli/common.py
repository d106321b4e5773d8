"""Options and helpers that several commands share, defined once."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args

import typer

from ..transport.endpoint import address_family as address_family  # -4/-6

if TYPE_CHECKING:
    from ..transport.access import AccessPolicy

CONN = "Connection"
TIME = "Timeouts"
IO = "I/O"
OUT = "Output"


def option(panel: str, *decls: str, **extra: Any) -> Any:
    """A typer option shown in *panel* of ``--help`` (cli/panels.py orders the panels)."""
    return typer.Option(*decls, rich_help_panel=panel, **extra)


def flag(panel: str, *decls: str, help: str) -> Any:
    """``Annotated[bool, …]``: an on/off flag, for :func:`params`."""
    return Annotated[bool, option(panel, *decls, help=help)]


def value(panel: str, *decls: str, metavar: str, help: str) -> Any:
    """``Annotated[str | None, …]``: a flag with a value the command parses, for :func:`params`."""
    return Annotated[str | None, option(panel, *decls, metavar=metavar, help=help)]


IPv4 = Annotated[bool, option(CONN, "-4", help="IPv4 only.")]
IPv6 = Annotated[bool, option(CONN, "-6", help="IPv6 only.")]
Numeric = Annotated[
    bool, option(CONN, "-n", "--numeric", help="No DNS: hosts are literal addresses.")
]
ConnectTimeout = Annotated[
    str | None,
    option(
        TIME,
        "-w",
        "--connect-timeout",
        metavar="SECS",
        help="Give up connecting after SECS (exit 4).",
    ),
]
Bind = Annotated[
    str | None,
    option(
        CONN, "-b", "--bind", metavar="ADDR", help="Address to bind (default: all, dual-stack)."
    ),
]
NoZeroCopy = Annotated[
    bool,
    option(
        IO,
        "--no-zerocopy",
        help="Copy through user space instead of splice/sendfile (debugging, comparisons).",
    ),
]
#: relay's old spelling of --no-zerocopy, still taken.
NoSplice = Annotated[bool, typer.Option("--no-splice", hidden=True)]
JsonFile = Annotated[
    str | None,
    option(
        OUT,
        "--json-file",
        metavar="FILE",
        help="Append the JSON summary to FILE, one object per line (docs/json.md).",
    ),
]


def verbose_option(help: str) -> Any:
    """``-v/--verbose``, in the Output panel; what it logs is the command's."""
    return option(OUT, "-v", "--verbose", help=help)


def json_option(help: str) -> Any:
    """``--json``, in the Output panel; where the summary goes is the command's."""
    return option(OUT, "--json", help=help)


def checked_json_file(path: str | None) -> str | None:
    """``--json-file``: refused at once (exit 5) if it could not be written at the end."""
    if path is not None:
        from ..json_summary import check_appendable  # lazy: keeps start-up light

        check_appendable(path)
    return path


Command = TypeVar("Command", bound=Callable[..., int])


def params(**aliases: Any) -> list[inspect.Parameter]:
    """typer parameters ``name: Alias`` in this order; a flag defaults to False, else None."""
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if get_args(alias)[0] is bool else None,
            annotation=alias,
        )
        for name, alias in aliases.items()
    ]


def with_params(
    *groups: list[inspect.Parameter], after: str | None = None
) -> Callable[[Command], Command]:
    """Give a command the typer parameters of *groups* after its own (or after its
    parameter *after*), in this order (the order of ``--help`` and the man page); it
    receives them in its ``**values``.

    For flags several commands take alike (connect and listen, send and receive): each
    group is declared once instead of in every signature."""

    def wrap(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        kept = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        extra = [p for group in groups for p in group]
        at = len(kept) if after is None else list(own.parameters).index(after) + 1
        # keyword-only: typer passes every value by name, and so may the order change
        parameters = [p.replace(kind=p.KEYWORD_ONLY) for p in kept[:at] + extra + kept[at:]]
        command.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        return command

    return wrap


def access_params(panel: str, allow: str, deny: str) -> list[inspect.Parameter]:
    """``--allow/--deny/--allowfile/--denyfile`` (listen, relay): the same rules, each
    command's words for what a client kept out gets."""

    def rules(spelling: str, metavar: str, text: str) -> Any:
        return Annotated[list[str] | None, option(panel, spelling, metavar=metavar, help=text)]

    return params(
        allow=rules("--allow", "CIDR", allow),
        deny=rules("--deny", "CIDR", deny),
        allowfile=rules("--allowfile", "FILE", "--allow rules, one per line (# comments)."),
        denyfile=rules("--denyfile", "FILE", "--deny rules, one per line (# comments)."),
    )


def access_policy(values: Mapping[str, Any]) -> AccessPolicy:
    """The policy of :func:`access_params`' flags (rules files are read here)."""
    from ..transport.access import AccessPolicy  # lazy: keeps start-up light

    names = ("allow", "deny", "allowfile", "denyfile")
    return AccessPolicy.from_rules(*(values[name] or () for name in names))

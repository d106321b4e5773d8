"""Plain-text ``--help`` grouped into panels, in the order a person reads them.

typer draws ``rich_help_panel`` groups only with rich markup, and rich turns a usage
error into a multi-line box; we keep ``rich_markup_mode=None`` (one-line errors) and
group the plain help here instead: one section per panel, ordered by
:data:`PANEL_ORDER`, after the arguments.  Options without a panel (``--help``) come last.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from .common import CONN, IO, OUT, TIME

#: Connection first, then what shapes it, timeouts, I/O, TLS, and what we report.
#: A panel missing here sorts after the known ones (tests/e2e/test_help.py lists them all).
PANEL_ORDER = (
    CONN,
    "Transport",
    "Proxy",
    "Socket options",
    "Access control",
    "Limits and access",
    TIME,
    IO,
    "Exec",
    "Text and debugging",
    "TLS",
    "Fault injection (DIR is up, down or both; default both)",
    OUT,
)
UNGROUPED = "Options"


def panel_rank(panel: str) -> int:
    if panel == UNGROUPED:
        return len(PANEL_ORDER) + 1
    return PANEL_ORDER.index(panel) if panel in PANEL_ORDER else len(PANEL_ORDER)


def format_panels(command: Any, ctx: Any, formatter: Any) -> None:
    """Write an Arguments section, then one section per panel (in PANEL_ORDER)."""
    arguments: list[tuple[str, str]] = []
    panels: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":
            arguments.append(record)
        else:
            panels.setdefault(getattr(param, "rich_help_panel", None) or UNGROUPED, []).append(
                record
            )
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    for panel in sorted(panels, key=panel_rank):  # stable: unknown panels keep their order
        with formatter.section(panel):
            formatter.write_dl(panels[panel])


class PanelledCommand(TyperCommand):
    """A typer command whose plain help groups options by ``rich_help_panel``."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_panels(self, ctx, formatter)


class PanelledGroup(TyperGroup):
    """A typer group whose plain help groups options by panel, then lists commands."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_panels(self, ctx, formatter)
        self.format_commands(ctx, formatter)


def new_app(
    name: str, help: str, cls: type[TyperGroup] = PanelledGroup, **extra: Any
) -> typer.Typer:
    """A typer app (the root, or a command with subcommands): ``-h`` is help, plain text,
    bare invocation shows the help."""
    return typer.Typer(
        name=name,
        cls=cls,
        help=help,
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **extra,
    )

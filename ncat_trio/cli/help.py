"""``ncat-trio help [TOPIC]``: the same text as ``--help``, plus reference topics.

Command topics are rendered from the very click commands that parse the arguments,
so ``help connect`` can never drift from ``connect --help``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import EXIT_CODE_MEANINGS
from .panels import PanelledCommand

TOPICS = {"exit-codes": "the exit codes and what each means"}


def exit_codes_text() -> str:
    lines = ["Exit codes (the exit status; after a signal: 128 + its number):", ""]
    lines += [f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command(name="help", cls=PanelledCommand)
    def help_command(
        topic: Annotated[
            list[str] | None,
            typer.Argument(
                metavar="[TOPIC]", help="A command (e.g. connect, ttcp probe) or: exit-codes."
            ),
        ] = None,
    ) -> int:
        """Show help for a command, or a reference topic such as exit-codes."""
        words = list(topic or [])
        if words == ["exit-codes"]:
            print(exit_codes_text())
            return 0
        root = typer.main.get_command(app)
        ctx = root.make_context("ncat-trio", [], resilient_parsing=True)
        command = root
        for word in words:
            sub = command.get_command(ctx, word) if hasattr(command, "get_command") else None
            if sub is None:
                known = ", ".join([*sorted(getattr(command, "commands", {})), *TOPICS])
                raise typer.BadParameter(f"no help topic {' '.join(words)!r} (try: {known})")
            ctx = sub.make_context(word, [], parent=ctx, resilient_parsing=True)
            command = sub
        print(command.get_help(ctx))
        return 0

"""The man page, ``docs/ncat-trio.1``: generated from the CLI, current, renders cleanly.

``tools/manpage.py`` writes it from the click commands typer builds (the records
``--help`` prints); the wheel installs it as ``share/man/man1/ncat-trio.1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main

from ncat_trio.cli import app

from ..support import ROOT, require_program

PAGE = ROOT / "docs" / "ncat-trio.1"


def every_command() -> Iterator[tuple[str, Any]]:
    """(path, command) for every visible command, ``ncat-trio`` itself included."""

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "ncat-trio")


def test_the_committed_page_is_what_the_cli_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "manpage.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + " (regenerate: just man)"


@pytest.fixture(scope="module")
def rendered() -> str:
    """The page as ``man -l`` renders it at 80 columns; no warnings allowed."""
    man = require_program("man")
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    result = subprocess.run(
        [man, "--warnings", "-l", str(PAGE)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # groff's warnings: bad escapes, lines, glyphs
    return result.stdout


def sections(rendered: str) -> dict[str, list[str]]:
    """COMMANDS' subsections of the rendered page: heading → its lines."""
    body = rendered.split("\nCOMMANDS\n", 1)[1].split("\nEXIT STATUS\n", 1)[0]
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in body.replace("\u2010", "-").splitlines():
        if line.startswith("   ") and not line.startswith("    "):  # a .SS heading
            current = found.setdefault(line.strip(), [])
        else:
            current.append(line)
    return found


def test_man_renders_every_command_and_option(rendered: str) -> None:
    """Each command has its subsection, and each of its options a term line in it."""
    by_heading = sections(rendered)
    missing = []
    for path, command in every_command():
        # "ncat-trio ttcp receive [OPTIONS]", "ncat-trio ttcp COMMAND [ARGS]..."
        heading = "Options of ncat-trio itself" if path == "ncat-trio" else path + r" [\[{A-Z].*"
        matches = [h for h in by_heading if re.fullmatch(heading, h)]
        if len(matches) != 1:
            missing.append(path)
            continue
        terms = [line.strip() for line in by_heading[matches[0]] if re.match(r"       \S", line)]
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("-") and not any(
                    re.search(rf"(^|, | / ){re.escape(opt)}( |,|$)", term) for term in terms
                ):
                    missing.append(f"{path} {opt}")
    assert missing == []


def test_man_lists_the_exit_codes(rendered: str) -> None:
    from ncat_trio.errors import EXIT_CODE_MEANINGS

    assert "EXIT STATUS" in rendered
    section = rendered.split("EXIT STATUS", 1)[1]
    for code in EXIT_CODE_MEANINGS:
        assert f"\n       {int(code)}" in section, int(code)


def test_the_wheel_installs_the_page() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"share/man/man1" = ["docs/ncat-trio.1"]' in text

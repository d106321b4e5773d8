"""README.md and docs/*.md: every shell block pastes, and every flag it uses exists.

Each ``sh`` block is split into commands as a shell would (comments, pipes, ``&&``, ``;``,
``&``, redirections); every ``ncat-trio …`` command in it (also ``python3 ncat-trio.pyz …``)
is resolved through the nc shorthand and ttcp's classic spellings to the click command
that would parse it, and each flag must be one of that command's options.  No fenced
block may carry ``$ `` prompts (they don't paste), and the README stays short.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from ncat_trio.cli import PROGRESS_SPELLINGS, app, rewrite_shorthand
from ncat_trio.cli.ttcp import rewrite_classic

from ..support import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
SEPARATORS = {"|", "||", "&&", ";", "&", "|&", ";;", "(", ")"}


def fenced_blocks(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced code block."""
    language: str | None = None
    start = 0
    lines: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            if language is None:
                language, start, lines = line[3:].strip(), number + 1, []
            else:
                yield language, start, lines
                language = None
        elif language is not None:
            lines.append(line)


def shell_commands(text: str) -> Iterator[list[str]]:
    """The simple commands of a shell snippet, as word lists, redirections removed."""
    lexer = shlex.shlex(text.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    tokens = list(lexer)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token in SEPARATORS or "\n" in token:
            if words:
                yield words
            words = []
        elif token in ("<", ">", ">>", "<<", ">&", "<&", "<<<"):
            index += 1  # and its target
        elif token.isdigit() and index < len(tokens) and tokens[index] in (">", ">>", ">&"):
            index += 2  # 2> FILE
        else:
            words.append(token)
    if words:
        yield words


def logical_lines(lines: list[str]) -> Iterator[tuple[int, str]]:
    """(offset of its first line, text) of each shell line, ``\\`` continuations joined."""
    start = 0
    parts: list[str] = []
    for offset, line in enumerate(lines):
        if not parts:
            start = offset
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


def ncat_commands(path: Path) -> Iterator[tuple[str, list[str]]]:
    """("FILE:LINE", args after ncat-trio) for every ncat-trio command in shell blocks."""
    for language, start, lines in fenced_blocks(path):
        if language not in SHELL:
            continue
        for offset, line in logical_lines(lines):
            for words in shell_commands(line):
                for index, word in enumerate(words):
                    zipapp = word.endswith("ncat-trio.pyz") and (
                        index == 0 or words[index - 1].startswith("python")
                    )  # `python3 ncat-trio.pyz …`, not `scp ncat-trio.pyz host:`
                    if word == "ncat-trio" or word.endswith("/ncat-trio") or zipapp:
                        yield f"{path.name}:{start + offset}", words[index + 1 :]
                        break


def resolve(args: list[str]) -> tuple[Any, list[str]]:
    """The click command these arguments run, and the arguments left for it."""
    command: Any = typer.main.get_command(app)
    args = rewrite_shorthand([PROGRESS_SPELLINGS.get(a, a) for a in args])
    while args and args[0] in getattr(command, "commands", {}):
        command = command.commands[args[0]]
        args = args[1:]
        if command.name == "ttcp":
            args = rewrite_classic(args)
    return command, args


def unknown_flags(command: Any, args: list[str]) -> list[str]:
    """Flags in ``args`` that ``command`` does not define (values of options skipped)."""
    options: dict[str, bool] = {"-h": True, "--help": True}  # name -> is a flag
    for param in command.params:
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("-"):
                options[name] = bool(getattr(param, "is_flag", False))
    bad: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            break
        if arg == "-" or not arg.startswith("-") or re.fullmatch(r"-\d[\d.]*", arg):
            continue
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            if name not in options:
                bad.append(name)
            elif not options[name] and "=" not in arg:
                index += 1  # its value
            continue
        for position, letter in enumerate(arg[1:], 1):  # -lvk, -w5, -zv
            name = f"-{letter}"
            if name not in options:
                bad.append(name)
                break
            if not options[name]:
                if position == len(arg) - 1:
                    index += 1  # the value is the next word
                break
    return bad


ALL_COMMANDS = [found for path in DOCS for found in ncat_commands(path)]


def test_the_docs_have_commands_to_check() -> None:
    assert len(ALL_COMMANDS) >= 60, len(ALL_COMMANDS)
    assert any(where.startswith("README.md") for where, _ in ALL_COMMANDS)


@pytest.mark.parametrize(("where", "args"), ALL_COMMANDS, ids=[w for w, _ in ALL_COMMANDS])
def test_every_flag_used_exists(where: str, args: list[str]) -> None:
    command, rest = resolve(args)
    assert unknown_flags(command, rest) == [], f"{where}: ncat-trio {shlex.join(args)}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_block_has_prompts(path: Path) -> None:
    """A ``$ `` prompt doesn't paste: commands go in ``sh`` blocks, output in ``text``."""
    for _language, start, lines in fenced_blocks(path):
        for offset, line in enumerate(lines):
            assert not line.startswith(("$ ", "% ", "# $ ")), f"{path.name}:{start + offset}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_shell_blocks_are_labelled(path: Path) -> None:
    """Every block says what it is, so readers (and this test) know what pastes."""
    for language, start, _lines in fenced_blocks(path):
        assert language, f"{path.name}:{start - 1}: a ``` block without a language"


def test_the_checker_catches_a_wrong_flag() -> None:
    command, rest = resolve(["-lvk", "--nope", "-p", "9000"])
    assert command.name == "listen"
    assert unknown_flags(command, rest) == ["--nope"]
    command, rest = resolve(["ttcp", "-t", "host", "-x"])
    assert command.name == "transmit"
    assert unknown_flags(command, rest) == ["-x"]
    words = list(shell_commands("tar c d | ncat-trio send h 9 - --name x 2>/dev/null # -q"))
    assert words == [["tar", "c", "d"], ["ncat-trio", "send", "h", "9", "-", "--name", "x"]]
    command, rest = resolve(["-zv", "-w", "1", "::1", "443"])
    assert (command.name, unknown_flags(command, rest)) == ("scan", [])


def test_readme_is_short_and_links_every_doc() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name}" in text, doc.name


def test_relative_links_resolve() -> None:
    """Every relative link in README.md and docs/ points at a file that exists."""
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
                broken.append(f"{path.name}: {target}")
    assert broken == []

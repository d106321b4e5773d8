"""Help, reference topics and shell completion come from the same source as parsing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ncat_trio.cli import run_cli
from ncat_trio.errors import EXIT_CODE_MEANINGS, ExitCode
from tests.support import NCAT

README = Path(__file__).resolve().parent.parent / "README.md"


def test_help_topic_is_the_commands_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["help", "connect"]) == 0
    via_help = capsys.readouterr().out
    assert run_cli(["connect", "--help"]) == 0
    assert capsys.readouterr().out == via_help
    assert "--linger" in via_help


def test_help_for_a_nested_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["help", "ttcp", "transmit"]) == 0
    assert "ttcp transmit" in capsys.readouterr().out


def test_exit_codes_topic_lists_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["help", "exit-codes"]) == 0
    out = capsys.readouterr().out
    for code in ExitCode:
        assert re.search(rf"^\s*{int(code)}\s", out, re.MULTILINE), code


def test_unknown_topic_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["help", "nope"]) == 2
    assert "no help topic 'nope'" in capsys.readouterr().err


def test_readme_exit_code_table_matches_the_code() -> None:
    text = README.read_text()
    start = text.index("\n## Exit codes\n")
    table = text[start : text.index("\n## ", start + 1)]
    documented = {int(m) for m in re.findall(r"^\| (\d+)(?: / \d+)* \|", table, re.MULTILINE)}
    documented |= {
        int(n)
        for m in re.findall(r"^\| ((?:\d+ / )+\d+) \|", table, re.MULTILINE)
        for n in m.split(" / ")
    }
    assert documented == {int(code) for code in EXIT_CODE_MEANINGS}


@pytest.mark.parametrize(
    ("shell", "marker"), [("bash", "complete -o"), ("zsh", "#compdef ncat-trio")]
)
def test_completion_script_generation(shell: str, marker: str) -> None:
    env = {**os.environ, "_NCAT_TRIO_COMPLETE": f"source_{shell}"}
    proc = subprocess.run(NCAT, env=env, capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert marker in proc.stdout.decode()


def test_bash_completion_offers_subcommands() -> None:
    env = {
        **os.environ,
        "_NCAT_TRIO_COMPLETE": "complete_bash",
        "COMP_WORDS": "ncat-trio con",
        "COMP_CWORD": "1",
    }
    proc = subprocess.run(NCAT, env=env, capture_output=True, timeout=30, check=False)
    assert proc.stdout.decode().split() == ["connect"]

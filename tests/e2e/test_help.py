"""Help, reference topics and shell completion come from the same source as parsing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ncat_trio.cli import run_cli
from ncat_trio.cli.panels import PANEL_ORDER, UNGROUPED, PanelledCommand, PanelledGroup, panel_rank
from ncat_trio.errors import EXIT_CODE_MEANINGS, ExitCode
from tests.support import NCAT, heavy, one_error_line, run_watching_imports

if TYPE_CHECKING:
    from typer import _click as click_types

README = Path(__file__).resolve().parents[2] / "README.md"


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


def _headings(text: str) -> list[str]:
    """The section headings of a plain click help text (``Connection:`` …)."""
    return re.findall(r"^([A-Z][^\n]*):$", text, re.MULTILINE)


@pytest.mark.parametrize(
    "command",
    [["connect"], ["listen"], ["relay"], ["scan"], ["send"], ["receive"],
     ["ttcp", "transmit"], ["ttcp", "receive"], ["clock", "probe"], ["clock", "serve"]],
    ids=" ".join,
)  # fmt: skip
def test_help_groups_options_in_reading_order(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli([*command, "--help"]) == 0
    headings = _headings(capsys.readouterr().out)
    assert headings[0] == "Arguments" or command == ["ttcp", "receive"] or command[-1] == "serve"
    assert headings[-1] == UNGROUPED  # --help itself
    panels = [h for h in headings if h not in ("Arguments", UNGROUPED)]
    assert panels == sorted(panels, key=panel_rank)
    assert len(set(headings)) == len(headings)  # one section per panel


def test_connect_help_reads_connection_timeouts_io_tls_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(["connect", "--help"]) == 0
    headings = _headings(capsys.readouterr().out)
    wanted = ["Connection", "Timeouts", "I/O", "TLS", "Output"]
    assert [h for h in headings if h in wanted] == wanted


def _all_commands() -> list[tuple[str, click_types.Command]]:
    import typer

    from ncat_trio.cli import app

    found: list[tuple[str, click_types.Command]] = []
    todo: list[tuple[str, click_types.Command]] = [("", typer.main.get_command(app))]
    while todo:
        name, command = todo.pop()
        found.append((name, command))
        for sub_name, sub in getattr(command, "commands", {}).items():
            todo.append((f"{name} {sub_name}".strip(), sub))
    return found


def test_every_panel_has_a_place_and_every_option_is_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, command in _all_commands():
        assert isinstance(command, PanelledCommand | PanelledGroup), name
        assert run_cli([*name.split(), "--help"]) == 0
        text = capsys.readouterr().out
        for param in command.params:
            panel = getattr(param, "rich_help_panel", None)
            assert panel is None or panel in PANEL_ORDER, (name, panel)
            if param.param_type_name == "option" and not getattr(param, "hidden", False):
                assert param.opts[0] in text, (name, param.opts)


def test_usage_errors_stay_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["relay", "0", "127.0.0.1:9", "--no-such-flag"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_version_line_without_typer_or_trio() -> None:
    """``--version``/``-V`` (scripts check it) print the same line with neither typer nor
    Trio imported (start-up, issue 16)."""
    lines = set()
    for args in (["--version"], ["-V"]):
        done, imported = run_watching_imports(args)
        assert (done.returncode, done.stderr) == (0, b""), done.stderr
        lines.add(done.stdout)
        assert heavy(imported) == set()
    assert len(lines) == 1
    assert re.fullmatch(rb"ncat-trio \S+ \(Python \S+, Trio \S+\)\n", lines.pop())


@pytest.mark.parametrize("args", [["--version"], ["-V"], ["--help"], ["scan", "--help"]])
def test_help_and_version_into_a_full_or_closed_stdout_are_one_line(args: list[str]) -> None:
    """Not a traceback (the --version shortcut and typer's help printing both raised one):
    exit 5 and `stdout: …`, as for any output that could not be delivered."""
    with open("/dev/full", "wb") as full:
        done = subprocess.run([*NCAT, *args], stdout=full, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == ExitCode.LOCAL_IO, done.stderr
    assert one_error_line(done.stderr) == "ncat-trio: stdout: no space left on device"
    if args[0] in ("--version", "-V"):  # `>&-`: help prints nothing then, as click does
        closed = subprocess.run(
            [*NCAT, *args], stderr=subprocess.PIPE, timeout=60, pass_fds=(), close_fds=True,
            preexec_fn=lambda: os.close(1),
        )  # fmt: skip
        assert closed.returncode == ExitCode.LOCAL_IO, closed.stderr
        assert one_error_line(closed.stderr) == "ncat-trio: stdout: closed"

"""The layering of DESIGN.md §1, enforced: proto is pure, transport knows no wire format,
only cli imports typer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ncat_trio"

FORBIDDEN_IN_PROTO = {
    "trio",
    "socket",
    "time",
    "os",
    "sys",
    "select",
    "asyncio",
    "selectors",
    "threading",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def files(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


@pytest.mark.parametrize("path", files("proto"), ids=lambda p: p.name)
def test_proto_is_sans_io(path: Path) -> None:
    roots = {name.split(".")[0] for name in imported_modules(path) if not name.startswith(".")}
    assert not roots & FORBIDDEN_IN_PROTO, f"{path.name} imports {roots & FORBIDDEN_IN_PROTO}"


@pytest.mark.parametrize("path", files("transport"), ids=lambda p: p.name)
def test_transport_knows_no_wire_format(path: Path) -> None:
    bad = {n for n in imported_modules(path) if "proto" in n.split(".") or n.startswith("..proto")}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    "path",
    [p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_cli_imports_typer(path: Path) -> None:
    assert not any(n.split(".")[0] in {"typer", "click"} for n in imported_modules(path))

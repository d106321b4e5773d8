"""The layering of DESIGN.md §1, enforced: proto is pure and imports no layer, transport
knows no wire format and imports no mode or cli, modes import no cli, only cli imports
typer, and sockets and fds stay in transport (today's exceptions listed, to shrink)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ncat_trio"

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


# --- imports point one way, and sockets and fds live in transport only ---------------
#
# DESIGN.md §1: proto (pure) ← transport / modes (Trio) ← cli (typer).  proto may use
# the two leaf modules every layer shares, which import nothing of ncat_trio: the error
# tree (its machines raise NcatError subclasses, as h11 raises its own
# LocalProtocolError) and diag.printable (peer text is escaped where it enters a
# message).  transport is the only home of sockets and fds: cli and modes neither import
# the socket-level modules nor call os's fd functions.

PROTO_MAY_IMPORT = {"proto", "errors", "diag"}
LEAVES = ("errors.py", "diag.py")
#: Parts of ncat_trio a layer must not import.
FORBIDDEN_LAYERS = {
    "transport": {"modes", "cli", "proto"},
    "modes": {"cli"},
}
SOCKET_LEVEL_MODULES = {"socket", "select", "selectors", "fcntl", "termios", "pty", "mmap"}
OS_FD_CALLS = {
    *("read", "readv", "pread", "preadv", "write", "writev", "pwrite", "pwritev"),
    *("open", "close", "closerange", "dup", "dup2", "pipe", "pipe2", "fdopen", "openpty"),
    *("fstat", "fstatvfs", "fsync", "fdatasync", "ftruncate", "lseek", "fchmod", "fchown"),
    *("set_blocking", "get_blocking", "set_inheritable", "get_inheritable", "isatty"),
    *("sendfile", "splice", "copy_file_range", "posix_fadvise", "posix_fallocate"),
    *("eventfd", "memfd_create", "ttyname"),
}

#: Breaches of "no sockets or fds outside transport" still to be moved into transport:
#: none left.  It may only shrink: a new breach fails, and so does an entry that is no
#: longer true (delete it).
KNOWN_VIOLATIONS: set[str] = set()


def internal_imports(path: Path) -> set[str]:
    """The part of ncat_trio (``proto``, ``errors``, ...) each ncat_trio import names."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            targets = [[*module, alias.name] for alias in node.names]
        parts.update(t[1] for t in targets if len(t) > 1 and t[0] == "ncat_trio")
    return parts


def socket_and_fd_use(path: Path) -> set[str]:
    """``import socket``-like imports and ``os.<fd function>`` uses, as in KNOWN_VIOLATIONS."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    os_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in SOCKET_LEVEL_MODULES:
                    found.add(f"import {alias.name.split('.')[0]}")
                if alias.name == "os":
                    os_names.add(alias.asname or "os")
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] in SOCKET_LEVEL_MODULES:
                found.add(f"import {node.module.split('.')[0]}")
            if node.module == "os":
                found.update(f"os.{a.name}" for a in node.names if a.name in OS_FD_CALLS)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
            and node.attr in OS_FD_CALLS
        ):
            found.add(f"os.{node.attr}")
    rel = path.relative_to(PACKAGE).as_posix()
    return {f"{rel}: {use}" for use in found}


@pytest.mark.parametrize("path", files("proto"), ids=lambda p: p.name)
def test_proto_imports_nothing_above_it(path: Path) -> None:
    above = internal_imports(path) - PROTO_MAY_IMPORT
    assert not above, f"proto/{path.name} imports ncat_trio.{above}"


@pytest.mark.parametrize("name", LEAVES)
def test_the_shared_leaves_import_no_layer(name: str) -> None:
    assert not internal_imports(PACKAGE / name), f"{name} must stay a leaf"


@pytest.mark.parametrize(
    "path",
    [p for layer in FORBIDDEN_LAYERS for p in files(layer)],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_layer_imports_one_above_it(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    bad = internal_imports(path) & FORBIDDEN_LAYERS[layer]
    assert not bad, f"{layer}/{path.name} imports ncat_trio.{bad}"


def test_sockets_and_fds_stay_in_transport() -> None:
    found = {
        use for layer in ("cli", "modes") for p in files(layer) for use in socket_and_fd_use(p)
    }
    new = found - KNOWN_VIOLATIONS
    gone = KNOWN_VIOLATIONS - found
    assert not new, f"sockets/fds outside transport (move them there): {sorted(new)}"
    assert not gone, f"fixed, now delete from KNOWN_VIOLATIONS: {sorted(gone)}"


def test_the_checks_see_what_they_look_for() -> None:
    """The AST walkers themselves, on files whose imports and calls are known."""
    wire = PACKAGE / "transport" / "blocking.py"  # the fd path of ttcp's bulk loop
    assert {"transport/blocking.py: os.write", "transport/blocking.py: import socket"} <= (
        socket_and_fd_use(wire)
    )
    sample = PACKAGE / "modes" / "ttcp.py"
    assert {"proto", "transport", "errors"} <= internal_imports(sample)
    assert internal_imports(PACKAGE / "cli" / "netcat_flags.py") >= {"modes", "proto"}
    assert "proto" in internal_imports(PACKAGE / "cli" / "ttcp.py")
    assert "diag" in internal_imports(PACKAGE / "modes" / "transfer.py")  # from .. import diag
    assert "errors" in internal_imports(PACKAGE / "proto" / "roundtrip.py")

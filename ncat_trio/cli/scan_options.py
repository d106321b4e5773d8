"""The port scan's options, from typer's ``scan`` command (:mod:`.scan`) or, for the
lines a ``-z`` loop types, straight from argv: no typer and no Trio, so that
``until ncat-trio -z HOST PORT; do …`` pays under half the start-up of ``import trio``
(issue 16).  A line this parser is unsure of (any flag not below, ``--``, a bad value)
goes to typer, which gives the same options or the usage error.
"""

from __future__ import annotations

from typing import Any

from ..errors import NcatError, UsageError
from ..modes.scan import ScanOptions, parse_ports
from ..parse import parse_duration
from ..transport.endpoint import Endpoint, address_family

#: Short flags without a value that a scan line may combine (``-zvn``: the ``z`` is gone).
_SHORT = {"v": "verbose", "4": "ipv4", "6": "ipv6", "n": "numeric"}
_LONG = {"--verbose": "verbose", "--numeric": "numeric", "--json": "json"}
_LONG |= {"--nc-style": "nc_style"}
_VALUED = {"-w": "timeout", "--timeout": "timeout", "--concurrency": "concurrency"}
_VALUED |= {"--json-file": "json_file"}


def build(
    host: str,
    ports: list[str],
    *,
    concurrency: int = 100,
    timeout: str = "3",
    ipv4: bool = False,
    ipv6: bool = False,
    numeric: bool = False,
    verbose: bool = False,
    json: bool = False,
    json_file: str | None = None,
    nc_style: bool = False,
) -> ScanOptions:
    """Checked :class:`ScanOptions` (the one place their rules live)."""
    if not 1 <= concurrency <= 10000:
        raise UsageError(f"invalid --concurrency {concurrency}", "must be 1-10000")
    if json_file is not None:
        from ..json_summary import check_appendable

        check_appendable(json_file)
    family = address_family(ipv4, ipv6)
    return ScanOptions(
        endpoint=Endpoint(host, 0, family, numeric),
        ports=parse_ports(ports),
        concurrency=concurrency,
        timeout=parse_duration(timeout, what="timeout (-w)"),
        verbose=verbose,
        json=json,
        json_file=json_file,
        nc_style=nc_style,  # `ncat-trio -z …` (cli/argv.py): nc.openbsd's output
    )


def from_argv(words: list[str]) -> ScanOptions | None:
    """``scan …`` words (nc spellings rewritten) as options, or None: let typer parse."""
    if not words or words[0] != "scan" or "--" in words:
        return None
    given: dict[str, Any] = {}  # build()'s parameter -> True (a flag) or its text
    positional: list[str] = []
    rest = iter(words[1:])
    for word in rest:
        name, eq, attached = word.partition("=")
        if word in _LONG:
            given[_LONG[word]] = True
        elif word in _VALUED or (eq and name in _VALUED and name.startswith("--")):
            value = attached if eq else next(rest, None)
            if value is None:
                return None
            given[_VALUED[name if eq else word]] = value
        elif word.startswith("-w") and len(word) > 2:  # -w2
            given["timeout"] = word[2:]
        elif len(word) > 1 and word[0] == "-" and all(c in _SHORT for c in word[1:]):
            given.update((_SHORT[c], True) for c in word[1:])
        elif word.startswith("-") and word != "-":
            return None  # typer knows it, or says what is wrong with it
        else:
            positional.append(word)
    concurrency = given.pop("concurrency", "100")
    if len(positional) < 2 or not (concurrency.isascii() and concurrency.isdecimal()):
        return None
    try:
        return build(positional[0], positional[1:], concurrency=int(concurrency), **given)
    except NcatError:
        return None  # typer builds the same options and reports the error its way

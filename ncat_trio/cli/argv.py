"""The nc spellings people type, rewritten into subcommands before anything parses them
(``ncat-trio HOST PORT`` → ``connect``, ``-l`` → ``listen``, ``-z`` → ``scan``).

Typer-free: the port scan's fast path (:mod:`.scan_options`) parses its line without
typer or Trio.
"""

from __future__ import annotations

#: Words that name a subcommand; anything else first on the line is nc shorthand.
SUBCOMMANDS = {
    "connect",
    "listen",
    "demo",
    "ttcp",
    "clock",
    "send",
    "receive",
    "relay",
    "toxiproxy",
    "help",
    "scan",
}


#: typer cannot give a flag an optional value, so `--progress=WHEN` is spelled out here.
PROGRESS_SPELLINGS = {"--progress=auto": "--progress-auto", "--progress=always": "--progress"}
#: Likewise `--keepalive[=IDLE,INTVL,CNT]`: alone, it is on with the kernel's timers.
PROGRESS_SPELLINGS["--keepalive"] = "--keepalive="


def spelled_out(args: list[str]) -> list[str]:
    """``--progress=WHEN`` and (connect/listen's -N with a value) ``--shutdown=WHEN`` as
    typer takes them; another command given ``--shutdown=…`` names it as typed."""
    words = rewrite_shorthand([PROGRESS_SPELLINGS.get(a, a) for a in args])
    if words and words[0] in ("connect", "listen"):
        words = [
            "--shutdown-when=" + a.removeprefix("--shutdown=") if a.startswith("--shutdown=") else a
            for a in words
        ]  # now, idle[:SECS], never
    return words


def rewrite_shorthand(args: list[str]) -> list[str]:
    """Turn nc spellings into subcommands: ``-l`` anywhere means ``listen``, else ``connect``.

    ``-l`` is also pulled out of combined short flags (``-lvk`` → ``-vk``).  Arguments
    after ``--`` are left alone.  A line starting with a subcommand or a root option
    (``--help``, ``--version``) is returned unchanged.
    """
    if not args or args[0] in SUBCOMMANDS or args[0] in ("-h", "--help", "-V", "--version"):
        return args
    if args[0].startswith("--") and "completion" in args[0]:
        return args
    listen = scan = False  # -z: nc's port scan, the `scan` subcommand
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            out.extend(args[index:])
            break
        if arg == "--listen":
            listen = True
            continue
        if len(arg) >= 2 and arg[0] == "-" and arg[1] != "-" and arg[1:].isalpha() and "z" in arg:
            scan = True
            if arg.replace("z", "") != "-":
                out.append(arg.replace("z", ""))
            continue
        if len(arg) >= 2 and arg[0] == "-" and arg[1] != "-" and arg[1:].isalpha() and "l" in arg:
            listen = True
            rest = arg.replace("l", "")
            if rest != "-":
                out.append(rest)
            continue
        out.append(arg)
    if scan:  # nc's -z: nc.openbsd's output (nothing on stdout), `scan` keeps its lines
        return ["scan", "--nc-style", *out]
    return ["listen" if listen else "connect", *out]

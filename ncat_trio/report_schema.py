"""The documented shape of every ``--json`` / ``--json-file`` object, in one place.

Each mode's object is described by a hand-written JSON Schema (draft 2020-12 subset) whose
``description`` strings are also the field tables of docs/json.md (:func:`markdown` renders
them; ``tests/e2e/test_json_schema.py`` keeps docs/json.md and schemas in step and validates real
output of every mode against them).  :func:`validate` is a tiny validator for exactly the
keywords used here, so checking needs no third-party package.

Every object has a ``mode`` field naming the command that wrote it (``connect``,
``listen``, ``relay``, ``scan``, ``ttcp``, ``clock``, ``send``, ``receive``), so one
``--json-file`` can collect several modes; each mode builds its object with :func:`record`.
Pure: no I/O, no Trio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import NcatError

Schema = dict[str, Any]


def _field(kind: str | list[str], description: str, **extra: Any) -> Schema:
    return {"type": kind, "description": description, **extra}


def _object(title: str, description: str, fields: dict[str, Schema]) -> Schema:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "description": description,
        "type": "object",
        "properties": fields,
        "required": list(fields),
        "additionalProperties": False,
    }


def _count(description: str, kind: str = "integer") -> Schema:
    return _field(kind, description, minimum=0)


def _ending(ended: str, endings: list[str], exit_code: str) -> dict[str, Schema]:
    """``ended``, ``exit_code``, ``error``: how a connection or a server ended."""
    return {
        "ended": _field("string", ended, enum=endings),
        "exit_code": _field(["integer", "null"], exit_code),
        "error": _field(["string", "null"], "the one-line error, when `ended` is `error`"),
    }


NETCAT = _object(
    "connect, listen",
    "One object per connection when it ends (`listen -k`: one per client).",
    {
        "mode": _field("string", "`connect` or `listen`", enum=["connect", "listen"]),
        "peer": _field("string", "the other end, `HOST:PORT`"),
        "bytes_sent": _count("bytes sent to the peer"),
        "bytes_received": _count("bytes received from the peer"),
        "seconds": _count("from connection to close", "number"),
        "stdin_eof": _field("boolean", "all of stdin was read and sent"),
        "peer_eof": _field(
            "boolean", "the peer's FIN arrived (everything it sent was written out)"
        ),
        **_ending(
            "`peer closed` (its FIN arrived and everything it sent was written; whether it "
            "read all we sent is not known), `stdout closed` (stdout's reader left with "
            "nothing received unwritten), `linger expired`, `quiet (-w)` (nothing moved either "
            "way for `-w` seconds: nc.openbsd's end, exit 0), `error`, `cancelled` (a signal)",
            ["peer closed", "stdout closed", "linger expired", "quiet (-w)", "error", "cancelled"],
            "the exit code this connection implies (null when cancelled)",
        ),
    },
)

RELAY = _object(
    "relay",
    "One object when the relay stops (with `--workers N`: one per worker).",
    {
        "mode": _field("string", "`relay`", const="relay"),
        "listen": _field("string", "the address it listened on, `HOST:PORT`"),
        "targets": _field("array", "the targets, as given", items={"type": "string"}),
        "worker": _field(["integer", "null"], "the worker number with `--workers`, else null"),
        "seconds": _count("from listening to stopping", "number"),
        "accepted": _count("clients accepted (including denied, rejected, unreachable)"),
        "connections": _count("connections relayed (reached a target)"),
        "denied": _count("clients refused by `--allow`/`--deny`"),
        "rejected": _count("clients reset over `--max-conns`"),
        "unreachable": _count("clients for which no target answered"),
        "endings": _field(
            "object",
            "relayed connections by how they ended: `closed`, `client-reset`, "
            "`target-reset`, `idle-timeout`, `fault-…`, `cancelled` (only those that occurred)",
            additionalProperties={"type": "integer", "minimum": 1},
        ),
        "bytes_up": _count("bytes delivered client → target"),
        "bytes_down": _count("bytes delivered target → client"),
        "peak_buffered": _count("most bytes one direction ever held (never above `--buffer`)"),
        "peak_total_buffered": _count("most bytes held at once, all directions together"),
        **_ending(
            "`drained` (SIGTERM, every transfer finished), `drain timeout` (SIGTERM, some "
            "were cancelled), `cancelled` (SIGINT/SIGHUP), `error`",
            ["drained", "drain timeout", "cancelled", "error"],
            "143 after SIGTERM; null when cancelled",
        ),
    },
)

SCAN = _object(
    "scan",
    "One object per scan; `--json` prints it on stdout instead of the `open` lines.",
    {
        "mode": _field("string", "`scan`", const="scan"),
        "host": _field("string", "the host as given"),
        "address": _field("string", "the address scanned (the first one HOST resolved to)"),
        "ports": _count("how many ports were tried"),
        "open": _field("array", "open ports, ascending", items={"type": "integer"}),
        "closed": _field("array", "refused ports, ascending", items={"type": "integer"}),
        "filtered": _field(
            "array", "ports with no answer within the timeout", items={"type": "integer"}
        ),
        "concurrency": _field("integer", "connects in flight at most", minimum=1),
        "timeout": _count("per-port connect timeout, seconds", "number"),
        "seconds": _count("the whole scan", "number"),
        "exit_code": _field("integer", "0 if any port is open, else 1", enum=[0, 1]),
    },
)

_THROUGHPUT: dict[str, Schema] = {
    "mode": _field("string", "`ttcp`", const="ttcp"),
    "peer": _field("string", "the other end, `HOST:PORT`"),
    "number": _count("payloads (the session's number)"),
    "length": _count("bytes per payload"),
    "seconds": _count("the original's clock (docs/ttcp.md, How to read the numbers)", "number"),
    "bytes": _count("payload data bytes (number × length)"),
    "messages": _count("payloads (same as number)"),
    "mib": _count("bytes / 1048576", "number"),
    "mib_per_s": _count("MiB per second", "number"),
    "messages_per_s": _count("payloads per second", "number"),
}

TTCP_TRANSMIT = _object(
    "ttcp transmit",
    "One object per run; `--json` prints it on stdout instead of the lines.",
    {
        **_THROUGHPUT,
        "role": _field("string", "`transmit`", const="transmit"),
        "window": _field("integer", "payloads in flight before waiting for acks", minimum=1),
        "mean_ack_rtt": _field(
            ["number", "null"], "mean seconds from handing a payload to the socket to its ack"
        ),
        "nodelay": _field("boolean", "TCP_NODELAY was set (`-D`)"),
    },
)

TTCP_RECEIVE = _object(
    "ttcp receive",
    "One object per session (`-k`: one per session served).",
    {
        **_THROUGHPUT,
        "role": _field("string", "`receive`", const="receive"),
        "verified": _field("boolean", "the data was checked against the pattern (`--verify`)"),
    },
)

_SAMPLE: Schema = {
    "type": "object",
    "properties": {
        "probe": {"type": "integer", "minimum": 0},
        "rtt_s": {"type": "number"},
        "offset_s": {"type": "number"},
        "stratum": {"type": "integer"},
    },
    "required": ["probe", "rtt_s", "offset_s"],
    "additionalProperties": False,
}

CLOCK_PROBE = _object(
    "clock probe",
    "One object per run, times in seconds; `--json` prints it on stdout instead of the lines.",
    {
        "mode": _field("string", "`clock`", const="clock"),
        "server": _field("string", "the server, `HOST:PORT`"),
        "proto": _field("string", "`roundtrip` or `ntp`", enum=["roundtrip", "ntp"]),
        "transport": _field("string", "`udp` or `tcp`", enum=["udp", "tcp"]),
        "probes": _count("probes sent"),
        "replies": _count("valid replies in time"),
        "lost": _count("probes without a valid reply in time"),
        "late": _count("replies after their probe's timeout (discarded)"),
        "duplicates": _count("duplicate replies (discarded)"),
        "rejected": _count("replies that failed validation"),
        "best": {
            **_SAMPLE,
            "type": ["object", "null"],
            "description": "the sample with the smallest round trip: `probe`, `rtt_s`, "
            "`offset_s`, `stratum` (ntp); null without replies",
        },
        "median_offset_s": _field(["number", "null"], "median offset; null without replies"),
        "spread_s": _field(["number", "null"], "max − min offset; null without replies"),
        "samples": _field("array", "every valid sample, as `best`", items=_SAMPLE),
    },
)

_TRANSFER: dict[str, Schema] = {
    "name": _field("string", "the file's name as sent"),
    "size": _count("the whole file, bytes"),
    "sha256": _field("string", "hex digest of the whole file", pattern="^[0-9a-f]{64}$"),
    "resumed_from": _count("bytes that were already there (0: a full transfer)"),
    "bytes_moved": _count("data bytes that crossed the connection this time"),
    "seconds": _count("the transfer, seconds", "number"),
    "mib_per_s": _count("bytes_moved in MiB per second", "number"),
    "verified": _field("boolean", "always true: objects are written only after verification"),
}

SEND = _object(
    "send",
    "One object when the receiver confirmed the file (`--json`: on stdout).",
    {
        "mode": _field("string", "`send`", const="send"),
        **_TRANSFER,
    },
)

RECEIVE = _object(
    "receive",
    "One object when the file is verified and in place (`--json`: on stdout, not with `-o -`).",
    {
        "mode": _field("string", "`receive`", const="receive"),
        **_TRANSFER,
        "path": _field(["string", "null"], "where the file now is; null for stdout (`-o -`)"),
    },
)

#: docs/json.md's order: (heading, schema); a schema's title is its heading.
SECTIONS: tuple[tuple[str, Schema], ...] = tuple(
    (schema["title"], schema)
    for schema in (NETCAT, RELAY, SCAN, TTCP_TRANSMIT, TTCP_RECEIVE, CLOCK_PROBE, SEND, RECEIVE)
)


def record(schema: Schema, **fields: Any) -> dict[str, Any]:
    """A mode's object built from its schema: the fields in the documented order, the
    constant ones (``mode``, ttcp's ``role``) filled in.  A field missing or not in the
    schema is a bug here, not something to write: :class:`ValueError`."""
    properties: dict[str, Schema] = schema["properties"]
    values = {name: f["const"] for name, f in properties.items() if "const" in f} | fields
    if values.keys() != properties.keys():
        missing, unknown = properties.keys() - values, values.keys() - properties.keys()
        raise ValueError(f"{schema['title']}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return {name: values[name] for name in properties}


def ending(error: NcatError | None, cancelled: bool, ended: str, exit_code: int) -> dict[str, Any]:
    """The ``ended``, ``exit_code`` and ``error`` fields (:func:`_ending`) for :func:`record`:
    an error wins (``error``, its exit code, its one line), then a signal's cancellation
    (``cancelled``, null), else the mode's own ending ``ended`` with ``exit_code``."""
    if error is not None:
        return {"ended": "error", "exit_code": int(error.exit_code), "error": str(error)}
    if cancelled:
        return {"ended": "cancelled", "exit_code": None, "error": None}
    return {"ended": ended, "exit_code": exit_code, "error": None}


def schema_for(record: Mapping[str, Any]) -> Schema:
    """The schema for an object, chosen by its ``mode`` (and ttcp's ``role``)."""
    mode = record.get("mode")
    if mode == "ttcp":
        return TTCP_RECEIVE if record.get("role") == "receive" else TTCP_TRANSMIT
    by_mode = {
        "connect": NETCAT, "listen": NETCAT, "relay": RELAY, "scan": SCAN, "clock": CLOCK_PROBE,
        "send": SEND, "receive": RECEIVE,
    }  # fmt: skip
    if mode not in by_mode:
        raise KeyError(f"no schema for mode {mode!r}")
    return by_mode[mode]


def _is(instance: object, kind: str) -> bool:
    if kind == "integer":
        return isinstance(instance, int) and not isinstance(instance, bool)
    if kind == "number":
        return isinstance(instance, int | float) and not isinstance(instance, bool)
    simple: dict[str, type | tuple[type, ...]] = {
        "string": str, "boolean": bool, "null": type(None), "object": dict, "array": list,
    }  # fmt: skip
    return isinstance(instance, simple[kind])


def validate(instance: object, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    """The ways ``instance`` breaks ``schema`` (empty: it conforms).

    Knows ``type``, ``enum``, ``const``, ``minimum``, ``pattern``, ``properties``,
    ``required``, ``additionalProperties`` and ``items``: the keywords these schemas use.
    """
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(instance, kind) for kind in allowed):
            return [f"{where}: {instance!r} is not {' or '.join(allowed)}"]
    problems: list[str] = []
    if "const" in schema and not _same(instance, schema["const"]):
        problems.append(f"{where}: {instance!r} is not {schema['const']!r}")
    if "enum" in schema and not any(_same(instance, v) for v in schema["enum"]):
        problems.append(f"{where}: {instance!r} is not one of {schema['enum']!r}")
    # (a bool has already failed "type": every schema with a minimum has one)
    if "minimum" in schema and isinstance(instance, int | float) and instance < schema["minimum"]:
        problems.append(f"{where}: {instance!r} is below {schema['minimum']}")
    if "pattern" in schema and isinstance(instance, str):
        import re

        if re.search(schema["pattern"], instance) is None:
            problems.append(f"{where}: {instance!r} does not match {schema['pattern']!r}")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        problems += [
            f"{where}: {key!r} is missing"
            for key in schema.get("required", ())
            if key not in instance
        ]
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in properties:
                problems += validate(value, properties[key], f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: unexpected field {key!r}")
            elif isinstance(extra, Mapping):
                problems += validate(value, extra, f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            problems += validate(item, schema["items"], f"{where}[{index}]")
    return problems


def _same(a: object, b: object) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    return type(a) is type(b) and a == b


def type_text(field: Mapping[str, Any]) -> str:
    """``integer``, ``string or null``, ``array of integer``: docs/json.md's type column."""
    kinds = field["type"]
    words = [kinds] if isinstance(kinds, str) else list(kinds)
    if words[0] == "array" and "items" in field:
        words[0] = f"array of {field['items']['type']}"
    return " or ".join(words)


def markdown() -> str:
    """The per-mode field tables of docs/json.md, rendered from the schemas."""
    parts: list[str] = []
    for heading, schema in SECTIONS:
        names = ", ".join(f"`{word}`" for word in heading.split(", "))
        lines = [f"## {names}", "", schema["description"], ""]
        lines += ["| field | type | meaning |", "|---|---|---|"]
        for name, field in schema["properties"].items():
            lines.append(f"| `{name}` | {type_text(field)} | {field['description']} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"

"""toxiproxy's toxics as the API shows them, and the relay fault each becomes.

Names, defaults and units are toxiproxy's (toxics/*.go, toxic_collection.go): a toxic is
``{"attributes", "name", "type", "stream", "toxicity"}``; ``stream`` defaults to
``downstream``, ``name`` to ``TYPE_STREAM``, ``toxicity`` to 1; attributes are integers
(Go int64s) in ms, KB/s, bytes or µs as :data:`TOXIC_ATTRIBUTES` says.  A create request
starts from zeros, an update merges into the current values (toxiproxy decodes JSON onto
the toxic's struct).  Every refusal is an :class:`ApiError`, answered as a 4xx.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..transport.faults import (
    AnyFault,
    Bandwidth,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Stall,
)

#: Each toxic type's attributes, in toxiproxy's names; all are integers.
TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),  # ms
    "bandwidth": ("rate",),  # KB/s (1 KB = 1000 bytes, as toxiproxy computes it)
    "slow_close": ("delay",),  # ms
    "timeout": ("timeout",),  # ms; 0 = until removed
    "reset_peer": ("timeout",),  # ms after the first data
    "slicer": ("average_size", "size_variation", "delay"),  # bytes, bytes, µs
    "limit_data": ("bytes",),
    "noop": (),
}
STREAMS = {"upstream": "up", "downstream": "down"}


class ApiError(Exception):
    """An answer other than success: toxiproxy's ``{"error": message, "status": code}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


def bad_body(why: str) -> ApiError:
    return ApiError(400, f"bad request body: {why}")


# ---- toxics ----------------------------------------------------------------------


@dataclass
class Toxic:
    """One toxic as the API shows it; :meth:`fault` is the relay fault it becomes."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]

    def to_json(self) -> dict[str, object]:
        toxicity: float | int = self.toxicity
        if float(toxicity).is_integer():
            toxicity = int(toxicity)  # as Go prints a float32 1.0: `1`
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": toxicity,
        }

    def fault(self) -> AnyFault | None:
        """The relay fault, or None for a toxic that does nothing (noop, rate 0)."""
        a = self.attributes
        common: dict[str, Any] = {"direction": STREAMS[self.stream], "toxicity": self.toxicity}
        try:
            if self.type == "latency":
                return Latency(a["latency"] / 1000, a["jitter"] / 1000, **common)
            if self.type == "bandwidth":
                return Bandwidth(a["rate"] * 1000, **common) if a["rate"] > 0 else None
            if self.type == "slow_close":
                return SlowClose(a["delay"] / 1000, **common)
            if self.type == "timeout":
                return Stall(a["timeout"] / 1000, **common)
            if self.type == "reset_peer":
                return ResetPeer(after=a["timeout"] / 1000, after_bytes=0, **common)
            if self.type == "slicer":
                return Slicer(
                    a["average_size"], a["size_variation"], a["delay"] / 1_000_000, **common
                )
            if self.type == "limit_data":
                return LimitData(a["bytes"], **common)
        except UsageError as exc:
            raise bad_body(str(exc)) from exc
        return None


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body(f"{where} must be an integer, got {json.dumps(value)}")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise bad_body(f"{where} must be an integer, got {value!r}")
        value = int(value)
    if not -(2**63) <= value < 2**63:  # toxiproxy's attributes are Go int64s
        raise bad_body(f"{where} {value} overflows int64")
    return value


def _toxicity(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body(f"toxicity must be a number, got {json.dumps(value)}")
    return float(value)


def _merge_attributes(kind: str, base: dict[str, int], given: object) -> dict[str, int]:
    """toxiproxy decodes ``attributes`` onto the toxic's struct: named fields are set,
    others ignored, absent ones kept."""
    merged = dict(base)
    if given is None:
        return merged
    if not isinstance(given, dict):
        raise bad_body("attributes must be an object")
    for key in TOXIC_ATTRIBUTES[kind]:
        if key in given and given[key] is not None:
            merged[key] = _integer(given[key], f"attributes.{key}")
    return merged


def new_toxic(body: object) -> Toxic:
    """A toxic from a create request's JSON (defaults as toxiproxy's AddToxicJson)."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    stream = body.get("stream", "downstream")
    if stream in (None, ""):
        stream = "downstream"
    if not isinstance(stream, str) or stream not in STREAMS:
        raise ApiError(400, "stream was invalid, can be either upstream or downstream")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in TOXIC_ATTRIBUTES:
        raise ApiError(400, "invalid toxic type")
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise bad_body("name must be a string")
    zero = dict.fromkeys(TOXIC_ATTRIBUTES[kind], 0)
    return updated_toxic(Toxic(name, kind, stream, 1.0, zero), body)


def updated_toxic(toxic: Toxic, body: object) -> Toxic:
    """``toxic`` with an update request applied (attributes merged, toxicity replaced)."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    toxicity = toxic.toxicity if body.get("toxicity") is None else _toxicity(body["toxicity"])
    attributes = _merge_attributes(toxic.type, toxic.attributes, body.get("attributes"))
    new = Toxic(toxic.name, toxic.type, toxic.stream, toxicity, attributes)
    new.fault()  # validate now: a bad value is a 400 before anything changes
    return new


__all__ = [
    "STREAMS",
    "TOXIC_ATTRIBUTES",
    "ApiError",
    "Toxic",
    "bad_body",
    "new_toxic",
    "updated_toxic",
]

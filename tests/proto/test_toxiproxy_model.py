"""The toxiproxy API's request model under arbitrary input: every body is either
accepted or refused with an ``ApiError`` (a 4xx answer), never a crash; and arbitrary
bytes on the HTTP port never stop the server from answering the next client."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncat_trio.modes import toxiproxy as model
from ncat_trio.modes import toxiproxy_toxics as toxics
from ncat_trio.testing import ApiServer

from ..toxiproxy_ends import call, wait_closed

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**63 - 1, -(2**63), 2**64, 10**400, 1e300])
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["name", "type", "stream", "toxicity", "attributes", "listen", "upstream", "enabled",
     "latency", "jitter", "rate", "delay", "timeout", "average_size", "size_variation", "bytes"]
)  # fmt: skip
BODIES = JSON | st.dictionaries(FIELDS, JSON, max_size=6)
TYPES = sorted(toxics.TOXIC_ATTRIBUTES)
T = TypeVar("T")


def accepted(
    fn: Callable[..., T], *args: object, errors: list[toxics.ApiError] | None = None
) -> T | None:
    """``fn(*args)``, or None if it refused with an ApiError, which must be a 4xx."""
    try:
        return fn(*args)
    except toxics.ApiError as exc:
        if not 400 <= exc.status < 500:
            raise AssertionError(f"refused with {exc.status}: {exc.message}") from exc
        if errors is not None:
            errors.append(exc)
        return None


@given(BODIES)
def test_new_toxic_accepts_or_refuses(body: object) -> None:
    toxic = accepted(toxics.new_toxic, body)
    if toxic is not None:
        assert toxic.type in toxics.TOXIC_ATTRIBUTES
        assert toxic.stream in ("upstream", "downstream")
        assert set(toxic.attributes) == set(toxics.TOXIC_ATTRIBUTES[toxic.type])


@given(st.sampled_from(TYPES), BODIES, BODIES)
def test_toxic_update_accepts_or_refuses(kind: str, attributes: object, body: object) -> None:
    toxic = accepted(toxics.new_toxic, {"type": kind, "attributes": attributes})
    updated = None if toxic is None else accepted(toxics.updated_toxic, toxic, body)
    if toxic is not None and updated is not None:
        assert (updated.name, updated.type, updated.stream) == (
            toxic.name,
            toxic.type,
            toxic.stream,
        )


@given(BODIES)
def test_proxy_bodies_accept_or_refuse(body: object) -> None:
    fields = accepted(model._proxy_fields, body, None)
    if fields is not None:
        name, listen, upstream, enabled = fields
        assert isinstance(name, str)
        assert isinstance(listen, str)
        assert isinstance(enabled, bool)
        accepted(model.split_host_port, upstream, "upstream")


@given(st.binary(max_size=64))
def test_decode_refuses_non_json_with_400(raw: bytes) -> None:
    errors: list[toxics.ApiError] = []
    accepted(model._decode, raw, errors=errors)
    assert all(e.message.startswith("bad request body") for e in errors)


@pytest.fixture(scope="module")
def shared_api() -> Iterator[ApiServer]:
    with ApiServer() as api:
        yield api


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(min_size=1, max_size=2048))
def test_garbage_on_the_http_port_never_stops_the_server(
    shared_api: ApiServer, garbage: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", shared_api.port), timeout=30) as conn:
        conn.sendall(garbage)
        conn.shutdown(socket.SHUT_WR)
        wait_closed(conn)
    assert call(shared_api.port, "GET", "/version")[0] == 200

"""ncat-trio: a netcat, relay and network-test tool built on Trio.

The Python API (typed, usable from pytest and scripts)::

    import trio
    from ncat_trio import netcat_session, SessionOptions

    async def talk(stream: trio.abc.HalfCloseableStream) -> None:
        result = await netcat_session(stream, stdin=my_source, stdout=my_sink,
                                      options=SessionOptions(linger=2))

See docs/python-api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from .errors import (
    ConnectError,
    ConnectionLost,
    ExitCode,
    IntegrityError,
    LocalIOError,
    LocalProtocolError,
    NcatError,
    NcatTimeout,
    RemoteProtocolError,
    UsageError,
)

# Everything else loads on first use (PEP 562), so `ncat-trio --version` and the CLI's
# start-up do not pay for modes they will not run; type checkers see the real imports.
if TYPE_CHECKING:
    from .modes.netcat import (
        NetcatOptions,
        SessionOptions,
        SessionResult,
        close_gracefully,
        netcat_session,
    )
    from .relay_api import Relay, open_relay, serve_relay
    from .transport.faults import (
        Bandwidth,
        FaultPlan,
        Latency,
        LimitData,
        ResetPeer,
        Slicer,
        SlowClose,
        Stall,
    )
    from .transport.net import Endpoint, connect_tcp, open_tcp_listener
    from .transport.pump import Side, pump

_LAZY = {
    name: module
    for module, names in {
        ".modes.netcat": "NetcatOptions SessionOptions SessionResult close_gracefully netcat_session",
        ".relay_api": "Relay open_relay serve_relay",
        ".transport.faults": "Bandwidth FaultPlan Latency LimitData ResetPeer Slicer SlowClose Stall",
        ".transport.net": "Endpoint connect_tcp open_tcp_listener",
        ".transport.pump": "Side pump",
    }.items()
    for name in names.split()
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Bandwidth",
    "ConnectError",
    "ConnectionLost",
    "Endpoint",
    "ExitCode",
    "FaultPlan",
    "IntegrityError",
    "Latency",
    "LimitData",
    "LocalIOError",
    "LocalProtocolError",
    "NcatError",
    "NcatTimeout",
    "NetcatOptions",
    "Relay",
    "RemoteProtocolError",
    "ResetPeer",
    "SessionOptions",
    "SessionResult",
    "Side",
    "Slicer",
    "SlowClose",
    "Stall",
    "UsageError",
    "__version__",
    "close_gracefully",
    "connect_tcp",
    "netcat_session",
    "open_relay",
    "open_tcp_listener",
    "pump",
    "serve_relay",
]

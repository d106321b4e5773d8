"""ncat-trio: a netcat, relay and network-test tool built on Trio.

The Python API (typed, usable from pytest and scripts)::

    import trio
    from ncat_trio import netcat_session, SessionOptions

    async def talk(stream: trio.abc.HalfCloseableStream) -> None:
        result = await netcat_session(stream, stdin=my_source, stdout=my_sink,
                                      options=SessionOptions(linger=2))

See README.md, "Python API".
"""

from __future__ import annotations

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

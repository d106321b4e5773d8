"""``toxiproxy``: toxiproxy's HTTP API (v2) served over the relay."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import LocalIOError, reason
from ..parse import parse_port
from ..transport.endpoint import Endpoint
from .common import CONN, OUT, verbose_option
from .panels import PanelledCommand


def toxiproxy(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="HOST",
            help="Address the API listens on. Keep it on loopback: whoever reaches the API can open ports and cut connections on this machine.",
            rich_help_panel=CONN,
        ),
    ] = "127.0.0.1",
    port: Annotated[
        str,
        typer.Option(
            "--port",
            metavar="PORT",
            help="API port (toxiproxy's 8474; 0 picks one, named in the readiness line).",
            rich_help_panel=CONN,
        ),
    ] = "8474",
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Create these proxies at start: toxiproxy's populate JSON, an array of {name, listen, upstream, enabled}.",
            rich_help_panel=CONN,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            metavar="N",
            help="Seed the toxics' randomness (toxicity, jitter, slicer variation).",
            rich_help_panel=OUT,
        ),
    ] = None,
    verbose: Annotated[
        bool, verbose_option("One line per API request and per relayed connection.")
    ] = False,
) -> int:
    """Serve toxiproxy's HTTP API: any toxiproxy client (Ruby, Go, Python, JS, curl) drives ncat-trio's relay.

    A drop-in for Shopify's toxiproxy-server (API version 2): GET /version, POST /reset,
    /proxies, /populate, /proxies/NAME and /proxies/NAME/toxics[/TOXIC] with toxiproxy's
    JSON shapes, defaults and status codes, and its seven toxics (latency, bandwidth,
    slow_close, timeout, reset_peer, slicer, limit_data) in its units. Toxic changes act
    on live connections at their next chunk; half-close passes through every toxic.

    The API listens on 127.0.0.1 unless told otherwise (--host): it opens ports and cuts
    connections, so do not expose it. Browsers are refused (403), as toxiproxy does.
    Prints `ncat-trio: listening on ADDR:PORT` on stderr once ready.
    """
    from .. import runner  # lazy: keeps start-up light
    from ..modes import toxiproxy as toxiproxy_mode  # lazy: keeps start-up light

    where = Endpoint(host, parse_port(port, allow_zero=True, what="--port"))
    proxies: list[object] = []
    if config is not None:
        try:
            with open(config, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise LocalIOError(f"--config {config}", reason(exc)) from exc
        proxies = toxiproxy_mode.load_config(text)
    return runner.run(
        lambda: toxiproxy_mode.toxiproxy_main(where, proxies, seed=seed, verbose=verbose)
    )


def register(app: typer.Typer) -> None:
    app.command(cls=PanelledCommand)(toxiproxy)

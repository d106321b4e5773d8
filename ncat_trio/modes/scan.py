"""``scan HOST PORTS`` (and nc's ``-z``): which TCP ports accept a connection.

* The host is resolved once; its first address (after ``-4``/``-6``) is scanned.
* Up to ``concurrency`` connects are in flight (non-blocking, under one ``poll``:
  :mod:`..transport.probe`; no Trio, so a ``-z`` loop pays little start-up), each
  bounded by ``timeout``: a port that neither accepts nor refuses in time counts as
  not open ("filtered" in ``-v`` lines).
* Output is stable (README, "Scanning"): one line per open port on stdout,
  ``ADDRESS PORT open`` (``127.0.0.1 22 open``, ``::1 8080 open``), in ascending port
  order whatever order the connects finish in, each printed as soon as every lower
  port has its answer.  ``-v`` adds closed/filtered ports and a summary on stderr.
* Exit 0 if any port is open, 1 if none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import diag, report_schema
from ..errors import UsageError
from ..json_summary import Summary, write_stdout
from ..transport.endpoint import Endpoint
from ..transport.probe import PortState, probe_ports, service_name
from ..transport.resolve import resolve_blocking


@dataclass(frozen=True)
class ScanOptions:
    endpoint: Endpoint  # the host; its port is unused
    ports: tuple[int, ...]
    concurrency: int = 100
    timeout: float = 3.0
    verbose: bool = False
    json: bool = False  # one JSON object on stdout instead of the `open` lines
    json_file: str | None = None  # also append that object to this file
    # nc's -z: nothing on stdout; with -v, nc.openbsd's "Connection to HOST PORT port
    # [tcp/NAME] succeeded!" on stderr (issue 16 §4).  `scan` keeps its stdout lines.
    nc_style: bool = False


@dataclass(frozen=True)
class ScanResult:
    address: str
    states: dict[int, PortState]

    @property
    def open_ports(self) -> list[int]:
        return self.ports_in(PortState.OPEN)

    def ports_in(self, state: PortState) -> list[int]:
        return [p for p, got in sorted(self.states.items()) if got is state]


def parse_ports(texts: list[str] | str) -> tuple[int, ...]:
    """``22,80,8000-8100`` (one or more words): sorted, duplicates removed."""
    words = [texts] if isinstance(texts, str) else texts
    ports: set[int] = set()
    for word in words:
        for item in word.split(","):
            text = item.strip()
            low_text, dash, high_text = text.partition("-")
            try:
                low = _port(low_text)
                high = _port(high_text) if dash else low
            except ValueError:
                raise UsageError(
                    f"invalid port range {text!r}", "expected PORT or LOW-HIGH, each 1-65535"
                ) from None
            if high < low:
                raise UsageError(f"invalid port range {text!r}", f"{low} is above {high}")
            ports.update(range(low, high + 1))
    if not ports:
        raise UsageError("no ports to scan", "expected e.g. 22,80,8000-8100")
    return tuple(sorted(ports))


def _port(text: str) -> int:
    if not text.isascii() or not text.isdecimal() or not 1 <= int(text) <= 65535:
        raise ValueError(text)
    return int(text)


def scan(
    options: ScanOptions, on_result: Callable[[str, int, PortState, str], None] | None = None
) -> ScanResult:
    """Try every port; ``on_result(address, port, state, why)`` is called in port order.

    Blocking, without Trio (:mod:`..transport.probe`): run it with ``runner.run_blocking``
    or in a thread."""
    family, _type, _proto, _canon, sockaddr = resolve_blocking(options.endpoint)[0]
    address = str(sockaddr[0])
    answers: dict[int, tuple[PortState, str]] = {}
    ports = list(options.ports)
    printed = 0

    def answer(port: int, state: PortState, why: str) -> None:
        nonlocal printed
        answers[port] = (state, why)
        while printed < len(ports) and ports[printed] in answers:  # in port order
            if on_result is not None:
                on_result(address, ports[printed], *answers[ports[printed]])
            printed += 1

    probe_ports(
        family, sockaddr, ports, answer, concurrency=options.concurrency, timeout=options.timeout
    )
    return ScanResult(address, {port: state for port, (state, _why) in answers.items()})


def scan_json(options: ScanOptions, result: ScanResult, seconds: float) -> dict[str, object]:
    """The ``--json`` object (schema: report_schema.SCAN)."""
    return report_schema.record(
        report_schema.SCAN,
        host=str(options.endpoint.host),
        address=result.address,
        ports=len(result.states),
        open=result.ports_in(PortState.OPEN),
        closed=result.ports_in(PortState.CLOSED),
        filtered=result.ports_in(PortState.FILTERED),
        concurrency=options.concurrency,
        timeout=options.timeout,
        seconds=round(seconds, 6),
        exit_code=0 if result.open_ports else 1,
    )


def scan_main(options: ScanOptions) -> int:
    """Print open ports on stdout (flushed per line); exit 0 if any is open, else 1."""

    def report(address: str, port: int, state: PortState, why: str) -> None:
        if state is PortState.OPEN and options.nc_style:
            if options.verbose:
                line = f"Connection to {address} {port} port [tcp/{service_name(port)}] succeeded!"
                diag.write_raw(line + "\n")
        elif state is PortState.OPEN and not options.json:
            write_stdout(f"{address} {port} open\n")
        elif state is not PortState.OPEN and options.verbose:
            diag.say(f"{address} {port} {state.value} ({why})")

    started = time.monotonic()
    result = scan(options, report)
    opened = len(result.open_ports)
    Summary(options.json, options.json_file).write(
        scan_json(options, result, time.monotonic() - started)
    )
    if options.verbose:
        diag.say(f"scanned {len(result.states)} ports on {result.address}: {opened} open")
    return 0 if opened else 1


__all__ = [
    "PortState",
    "ScanOptions",
    "ScanResult",
    "parse_ports",
    "scan",
    "scan_json",
    "scan_main",
]

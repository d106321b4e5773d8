"""Fuzz every decoder and parser: only the documented error types may escape.

Each *target* takes raw bytes, as a fuzzer produces them, and drives one decoder or
parser with them: the sans-I/O protocol machines (ttcp both ends, roundtrip, NTP, the
transfer format both ends) are fed the bytes in pieces, then EOF, and asked for events
until they need more; the parsers get the bytes as text.  A target may raise only what
its documentation promises for bad input from outside (:data:`DECODER_ERRORS` for the
wire formats, :class:`UsageError` for command-line values); anything else — a
``LocalProtocolError``, an ``IndexError``, a ``struct.error`` — fails the test.

The hypothesis settings come from a profile: ``ci`` (the default, a few hundred inputs
per target) or ``fuzz`` (``NCAT_FUZZ_PROFILE=fuzz``, ``NCAT_FUZZ_EXAMPLES`` per target),
which ``benchmarks/fuzz.py`` uses for its 100k+ run alongside atheris.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncat_trio.cli import rewrite_shorthand
from ncat_trio.cli.relay import parse_host_port
from ncat_trio.errors import ConnectionLost, IntegrityError, RemoteProtocolError, UsageError
from ncat_trio.modes.relay import AccessPolicy, parse_network
from ncat_trio.parse import parse_duration, parse_port, parse_size
from ncat_trio.proto import ntp, roundtrip, transfer, transfer_wire, ttcp
from ncat_trio.transport.faults import FAULT_FLAGS, parse_fault

settings.register_profile(
    "ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("NCAT_FUZZ_EXAMPLES", "10000")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
#: Applied per test (never loaded globally: other test files keep their own settings).
PROFILE = settings.get_profile(os.environ.get("NCAT_FUZZ_PROFILE", "ci"))

#: What a decoder may raise on bad bytes from the peer (errors.py, PROTOCOL.md).
DECODER_ERRORS = (RemoteProtocolError, IntegrityError, ConnectionLost)

#: Inputs tried, per target (benchmarks/fuzz.py reports them).
TRIED: dict[str, int] = {}

Target = Callable[[bytes], None]
TARGETS: dict[str, Target] = {}
PARSERS: set[str] = set()


def target(name: str, *, parser: bool = False) -> Callable[[Target], Target]:
    def register(fn: Target) -> Target:
        def counted(data: bytes) -> None:
            TRIED[name] = TRIED.get(name, 0) + 1
            fn(data)

        TARGETS[name] = counted
        if parser:
            PARSERS.add(name)
        return counted

    return register


def pieces(data: bytes) -> list[bytes]:
    """Cut ``data`` into pieces whose sizes the first byte chooses (1..256, or whole)."""
    if not data:
        return []
    step = data[0] + 1
    body = data[1:]
    return [body[i : i + step] for i in range(0, len(body), step)]


def text_of(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# --- wire formats ---------------------------------------------------------------------


@target("ttcp receiver")
def ttcp_receiver(data: bytes) -> None:
    receiver = ttcp.Receiver(max_length=1 << 16, verify=bool(data[:1]) and data[0] & 1 == 1)
    for piece in [*pieces(data), b""]:
        receiver.receive_data(piece)
        while True:
            event = receiver.next_event()
            if isinstance(event, ttcp.Payload):
                receiver.send(ttcp.Ack(event.length))
                continue
            if event is ttcp.NEED_DATA or isinstance(event, ttcp.ConnectionClosed):
                break


@target("ttcp transmitter")
def ttcp_transmitter(data: bytes) -> None:
    transmitter = ttcp.Transmitter()
    transmitter.send(ttcp.Session(3, 16))
    for _ in range(3):
        transmitter.send(ttcp.Payload(16))
    for piece in [*pieces(data), b""]:
        transmitter.receive_data(piece)
        while True:
            event = transmitter.next_event()
            if event is ttcp.NEED_DATA or isinstance(event, ttcp.ConnectionClosed):
                break


def each(*calls: Callable[[], object]) -> None:
    """Run every call; a documented error ends only its own call, anything else escapes."""
    for call in calls:
        with contextlib.suppress(*DECODER_ERRORS):
            call()


@target("roundtrip")
def roundtrip_frames(data: bytes) -> None:
    def stream() -> None:
        frames = roundtrip.FrameBuffer()
        for piece in [*pieces(data), b""]:
            frames.receive_data(piece)
            while frames.next_event() not in (roundtrip.NEED_DATA, roundtrip.CLOSED):
                pass

    def client() -> None:
        probe = roundtrip.RoundtripClient()
        probe.send_probe(1_700_000_000_000_000_000)
        probe.receive_reply(data, 1_700_000_000_000_100_000)

    each(
        lambda: roundtrip.decode_frame(data[: roundtrip.FRAME_SIZE]),
        lambda: roundtrip.answer_datagram(data, 1_700_000_000_000_000),
        stream,
        client,
    )


@target("ntp")
def ntp_packets(data: bytes) -> None:
    now = 1_700_000_000_000_000_000

    def client() -> None:
        probe = ntp.NtpClient()
        probe.send_probe(now)
        probe.receive_reply(data, now + 100_000)

    each(
        lambda: ntp.check_reply(ntp.decode_packet(data), ntp.unix_ns_to_ntp(now)),
        lambda: ntp.answer_request(data, now, now + 1000, ntp.NtpServerConfig()),
        client,
    )


@target("transfer receiver")
def transfer_receiver(data: bytes) -> None:
    receiver = transfer.TransferReceiver()
    last: object = None
    for piece in [*pieces(data), b""]:
        receiver.receive_data(piece)
        while True:
            event = receiver.next_event()
            if event is transfer.PAUSED:
                if receiver.state is transfer.ReceiverState.OFFER:
                    receiver.send(transfer_wire.Offer(0, transfer_wire.EMPTY_SHA256))
                    continue
                if isinstance(last, transfer_wire.Trailer):  # the ack repeats the trailer
                    receiver.send(transfer_wire.Ack(last.size, last.sha256))
                    continue
                break
            if event is transfer.NEED_DATA or isinstance(event, transfer_wire.Closed):
                break
            last = event
        if receiver.state in (transfer.ReceiverState.DONE, transfer.ReceiverState.FAILED):
            return


@target("transfer receiver (valid header, then bytes)")
def transfer_receiver_after_header(data: bytes) -> None:
    header = transfer.TransferSender().send(transfer_wire.Header("f.bin", len(data) % 97))
    transfer_receiver(bytes([data[0] if data else 0]) + header + data[1:])


@target("transfer sender")
def transfer_sender(data: bytes) -> None:
    payload = b"x" * (len(data) % 50)
    sender = transfer.TransferSender()
    sender.send(transfer_wire.Header("f.bin", len(payload)))
    for piece in [*pieces(data), b""]:
        sender.receive_data(piece)
        while True:
            event = sender.next_event()
            if isinstance(event, transfer_wire.Offer):
                sender.send(transfer_wire.Start(0))
                sender.send(transfer_wire.Data(payload))
                sender.send(transfer_wire.Trailer(len(payload), hashlib.sha256(payload).digest()))
                continue
            if event in (transfer.NEED_DATA, transfer.PAUSED) or isinstance(
                event, (transfer_wire.Closed, transfer_wire.Ack, transfer_wire.Failure)
            ):
                break


# --- command-line values ------------------------------------------------------------


@target("parse_port/duration/size", parser=True)
def scalar_values(data: bytes) -> None:
    text = text_of(data)
    for parse in (parse_port, parse_duration, parse_size):
        with contextlib.suppress(UsageError):
            parse(text)


@target("CIDR rules and peer addresses", parser=True)
def cidr(data: bytes) -> None:
    text = text_of(data)
    policy = AccessPolicy()
    try:
        rule = parse_network(text)
        policy = AccessPolicy(allow=(rule,), deny=(rule,))
    except UsageError:
        pass
    assert isinstance(policy.permits(text), bool)  # never raises, whatever the peer says
    assert isinstance(AccessPolicy(allow=(parse_network("10.0.0.0/8"),)).permits(text), bool)


@target("relay fault flags", parser=True)
def fault_flags(data: bytes) -> None:
    text = text_of(data[1:])
    kinds = sorted(FAULT_FLAGS)
    kind = kinds[data[0] % len(kinds)] if data else kinds[0]
    with contextlib.suppress(UsageError):
        parse_fault(kind, text)


@target("relay HOST:PORT", parser=True)
def host_port(data: bytes) -> None:
    text = text_of(data)
    for allow_zero in (False, True):
        with contextlib.suppress(UsageError):
            parse_host_port(text, what="target", allow_zero=allow_zero)


@target("nc shorthand rewriting", parser=True)
def shorthand(data: bytes) -> None:
    args = text_of(data).split("\x00")
    out = rewrite_shorthand(args)
    assert isinstance(out, list)
    if args and args[0] not in ("connect", "listen") and out[:1] in (["connect"], ["listen"]):
        assert "--" not in out or out.index("--") > 0


def run_target(name: str, data: bytes) -> None:
    """Run one target; re-raise only what is not documented for it."""
    try:
        TARGETS[name](data)
    except DECODER_ERRORS:
        if name in PARSERS:
            raise
    except UsageError:
        if name not in PARSERS:
            raise


# --- the hypothesis tests: garbage, and mutations of valid messages ------------------

garbage = st.binary(max_size=600)


def valid_messages() -> list[bytes]:
    sender = transfer.TransferSender()
    header = sender.send(transfer_wire.Header("name.txt", 5, mtime_ns=1))
    ttcp_tx = ttcp.Transmitter()
    session = ttcp_tx.send(ttcp.Session(2, 8)) + ttcp_tx.send(ttcp.Payload(8)) * 2
    ntp_request = ntp.make_request(ntp.unix_ns_to_ntp(1_700_000_000_000_000_000))
    reply = ntp.answer_request(ntp_request, 1, 2, ntp.NtpServerConfig())
    frame = roundtrip.encode_frame(roundtrip.RoundtripFrame(1, 2))
    return [header, session, ntp_request, reply, frame]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with a few bytes flipped, cut short or extended."""
    data = bytearray(draw(st.sampled_from(valid_messages())))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes([draw(st.integers(0, 255))]) + bytes(data[:cut]) + draw(st.binary(max_size=40))


@PROFILE
@given(name=st.sampled_from(sorted(TARGETS)), data=garbage)
def test_garbage_raises_only_documented_errors(name: str, data: bytes) -> None:
    run_target(name, data)


@PROFILE
@given(name=st.sampled_from(sorted(set(TARGETS) - PARSERS)), data=mutated())
def test_mutated_messages_raise_only_documented_errors(name: str, data: bytes) -> None:
    run_target(name, data)


@PROFILE
@given(text=st.text(max_size=60))
def test_parsers_take_any_text(text: str) -> None:
    for name in PARSERS:
        run_target(name, text.encode("utf-8", "surrogatepass"))


def test_every_decoder_and_parser_has_a_target() -> None:
    assert set(TARGETS) >= {
        "ttcp receiver", "ttcp transmitter", "roundtrip", "ntp", "transfer receiver",
        "transfer sender", "parse_port/duration/size", "CIDR rules and peer addresses",
        "relay fault flags", "relay HOST:PORT", "nc shorthand rewriting",
    }  # fmt: skip


def test_a_valid_exchange_still_passes_through_the_targets() -> None:
    """The targets drive the machines for real: valid input yields no error at all."""
    ttcp_receiver(b"\xff" + valid_messages()[1])
    body = b"hello"
    trailer = b"T" + len(body).to_bytes(8, "big") + hashlib.sha256(body).digest()
    transfer_receiver(b"\xff" + valid_messages()[0] + b"S" + bytes(8) + body + trailer)

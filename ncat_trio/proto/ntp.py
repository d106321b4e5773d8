"""SNTPv4 (RFC 4330, RFC 5905): packets, timestamps, client checks and a server, sans-I/O.

The client sends a 48-byte mode-3 request whose transmit timestamp is T1, its send time;
the server copies it into *originate*, stamps *receive* (T2) and *transmit* (T3) and
answers in mode 4 with the request's version.  At arrival (T4)::

    offset = ((T2 - T1) + (T3 - T4)) / 2     (> 0: the server's clock is ahead)
    delay  = (T4 - T1) - (T3 - T2)           (the round trip minus the server's hold time)

Times are parameters, nanoseconds since the Unix epoch (``now_ns``); the caller reads
the clock.  NTP timestamps are 64-bit fixed point, seconds since 1900 in the high 32
bits; they wrap in February 2036, so a timestamp with the top bit clear is taken to be
in era 1, 2036-2104 (RFC 4330 §3).
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

from ..errors import LocalProtocolError, RemoteProtocolError
from .roundtrip import ClockClient, ClockSample, InFlight

PACKET_SIZE = 48
#: Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01 (the Unix epoch).
NTP_UNIX_EPOCH_DELTA = 2_208_988_800
_NS = 1_000_000_000
_ERA = 1 << 32  # seconds in one NTP era
_PACKET = struct.Struct("!BBbbII4sQQQQ")

MODE_CLIENT = 3
MODE_SERVER = 4
LEAP_UNSYNCHRONISED = 3
MAX_STRATUM = 15  # 16 means "unsynchronised" (RFC 5905 §7.3)

#: Kiss-o'-death codes (RFC 5905 Figure 13, RFC 8915 §5.7): what a stratum-0 reply means.
KISS_CODES = {
    "ACST": "the association belongs to a unicast server",
    "AUTH": "server authentication failed",
    "AUTO": "autokey sequence failed",
    "BCST": "the association belongs to a broadcast server",
    "CRYP": "cryptographic authentication or identification failed",
    "DENY": "access denied by the server",
    "DROP": "lost peer in symmetric mode",
    "RSTR": "access denied by the server's policy",
    "INIT": "the server has not synchronised yet",
    "MCST": "the association belongs to a manycast server",
    "NKEY": "no key found",
    "NTSN": "NTS negative acknowledgment",
    "RATE": "rate exceeded: the server asks us to slow down",
    "RMOT": "alteration of association from a remote host",
    "STEP": "a step change in system time has occurred",
}


def unix_ns_to_ntp(unix_ns: int) -> int:
    """A 64-bit NTP timestamp for a Unix time in ns (rounded to the nearest 2**-32 s)."""
    scaled = ((unix_ns + NTP_UNIX_EPOCH_DELTA * _NS) << 32) + _NS // 2
    return (scaled // _NS) % (1 << 64)


def ntp_to_unix_ns(timestamp: int) -> int:
    """The Unix time in ns (rounded) of a 64-bit NTP timestamp; top bit clear = era 1."""
    if not 0 <= timestamp < 1 << 64:
        raise LocalProtocolError("ntp timestamp", f"{timestamp} is not a 64-bit value")
    if not timestamp >> 63:
        timestamp += _ERA << 32  # RFC 4330 §3: 2036-02-07T06:28:16Z onwards
    return ((timestamp * _NS + (1 << 31)) >> 32) - NTP_UNIX_EPOCH_DELTA * _NS


@dataclass(frozen=True)
class NtpPacket:
    """The 48-byte NTP header; timestamps are raw 64-bit NTP values (0 = unknown)."""

    leap: int = 0
    version: int = 4
    mode: int = MODE_CLIENT
    stratum: int = 0
    poll: int = 0  # log2 seconds
    precision: int = 0  # log2 seconds
    root_delay: int = 0  # 16.16 fixed-point seconds
    root_dispersion: int = 0  # 16.16 fixed-point seconds
    reference_id: bytes = b"\0\0\0\0"
    reference: int = 0
    originate: int = 0
    receive: int = 0
    transmit: int = 0


def encode_packet(packet: NtpPacket) -> bytes:
    """The 48 wire bytes of ``packet``."""
    if not (0 <= packet.leap <= 3 and 0 <= packet.version <= 7 and 0 <= packet.mode <= 7):
        raise LocalProtocolError("ntp packet", "leap/version/mode out of range")
    if len(packet.reference_id) != 4:
        raise LocalProtocolError("ntp packet", "the reference id must be 4 bytes")
    first = packet.leap << 6 | packet.version << 3 | packet.mode
    try:  # the fields after leap, version and mode are in wire order
        return _PACKET.pack(first, *dataclasses.astuple(packet)[3:])
    except struct.error as exc:
        raise LocalProtocolError("ntp packet", str(exc)) from exc


def decode_packet(data: bytes) -> NtpPacket:
    """The header of an NTP packet (extension fields and MAC after byte 48 are ignored)."""
    if len(data) < PACKET_SIZE:
        raise RemoteProtocolError(
            "ntp packet", f"too short: {len(data)} bytes, an NTP header is {PACKET_SIZE}"
        )
    first, *rest = _PACKET.unpack_from(data)
    return NtpPacket(first >> 6, first >> 3 & 7, first & 7, *rest)


def kiss_code(packet: NtpPacket) -> str:
    """The kiss-o'-death code of a stratum-0 packet: 4 ASCII letters (else hex)."""
    code = packet.reference_id
    if all(0x20 < b < 0x7F for b in code):
        return code.decode("ascii")
    return "0x" + code.hex()


class KissOfDeath(RemoteProtocolError):
    """The server sent a kiss-o'-death (stratum 0): stop asking it (RFC 4330 §8)."""

    def __init__(self, code: str) -> None:
        meaning = KISS_CODES.get(code, "unknown code")
        super().__init__("ntp server", f"kiss-o'-death {code} ({meaning})")
        self.code = code


def make_request(t1: int, version: int = 4) -> bytes:
    """A client request whose transmit timestamp is ``t1`` (a raw NTP timestamp).

    Everything else is zero, as RFC 4330 §5 recommends, so the request tells the server
    nothing about our clock.
    """
    return encode_packet(NtpPacket(version=version, mode=MODE_CLIENT, transmit=t1))


def check_reply(packet: NtpPacket, t1: int) -> None:
    """Client checks (RFC 4330 §5): raise :class:`RemoteProtocolError` saying why not.

    In order: mode 4, a version we speak, originate == our T1 (else stale or spoofed;
    checked before the kiss so a forged kiss is ignored), stratum 0 (kiss-o'-death),
    leap 3 or stratum 16+ (unsynchronised), zero receive or transmit timestamps.
    """
    what = "ntp reply"
    if packet.mode != MODE_SERVER:
        raise RemoteProtocolError(what, f"wrong mode {packet.mode} (a server replies in mode 4)")
    if not 1 <= packet.version <= 4:
        raise RemoteProtocolError(what, f"unsupported version {packet.version}")
    if packet.originate != t1:
        raise RemoteProtocolError(
            what, "its originate timestamp is not our request's (stale or spoofed)"
        )
    if packet.stratum == 0:
        raise KissOfDeath(kiss_code(packet))
    if packet.leap == LEAP_UNSYNCHRONISED:
        raise RemoteProtocolError(what, "the server's clock is not synchronised (leap 3)")
    if packet.stratum > MAX_STRATUM:
        raise RemoteProtocolError(
            what, f"the server's clock is not synchronised (stratum {packet.stratum})"
        )
    if packet.transmit == 0:
        raise RemoteProtocolError(what, "zero transmit timestamp")
    if packet.receive == 0:
        raise RemoteProtocolError(what, "zero receive timestamp")


def offset_and_delay(t1_ns: int, t2_ns: int, t3_ns: int, t4_ns: int) -> tuple[int, int]:
    """NTP's on-wire formulas, in ns: ``(offset, delay)``."""
    offset = ((t2_ns - t1_ns) + (t3_ns - t4_ns)) // 2
    delay = (t4_ns - t1_ns) - (t3_ns - t2_ns)
    return offset, delay


class NtpClient(ClockClient):
    """SNTPv4 client; the token is T1, the raw 64-bit transmit timestamp we send."""

    proto = "ntp"

    def __init__(self, version: int = 4) -> None:
        super().__init__()
        self.version = version

    def _token_for(self, now_ns: int) -> int:
        return unix_ns_to_ntp(now_ns)

    def _request(self, token: int) -> bytes:
        return make_request(token, self.version)

    def _token_of(self, data: bytes) -> int:
        packet = decode_packet(data)
        if packet.mode != MODE_SERVER:  # e.g. our own request reflected by an echo service
            raise RemoteProtocolError(
                "ntp reply", f"wrong mode {packet.mode} (a server replies in mode 4)"
            )
        return packet.originate

    def _measure(self, data: bytes, probe: InFlight, now_ns: int) -> ClockSample:
        packet = decode_packet(data)
        check_reply(packet, packet.originate)  # originate was matched to T1 by the table
        offset, delay = offset_and_delay(
            probe.sent_ns, ntp_to_unix_ns(packet.receive), ntp_to_unix_ns(packet.transmit), now_ns
        )
        return ClockSample(probe.probe, delay, offset, stratum=packet.stratum)


# --------------------------------------------------------------------------------------
# Server.

#: 127.127.1.1, the conventional reference id of an undisciplined local clock.
LOCAL_CLOCK_ID = bytes([127, 127, 1, 1])


@dataclass(frozen=True)
class NtpServerConfig:
    """How our simple server describes its clock."""

    stratum: int = 10
    precision: int = -20  # ~1 µs: honest for stamps taken in Python after a wake-up
    reference_ns: int = 0  # when the clock was "last set": the server's start time
    reference_id: bytes = LOCAL_CLOCK_ID


def answer_request(
    data: bytes, received_ns: int, transmit_ns: int, config: NtpServerConfig
) -> bytes:
    """Server: the mode-4 reply to a client request that arrived at ``received_ns``.

    Same version as the request, originate = the request's transmit, poll copied,
    T2 = ``received_ns``, T3 = ``transmit_ns``.  Anything that is not a client request
    of version 1-4 raises :class:`RemoteProtocolError` (drop it): in particular a mode-4
    packet is never answered, or two servers could bounce packets forever.
    """
    request = decode_packet(data)
    if request.mode != MODE_CLIENT:
        raise RemoteProtocolError(
            "ntp request", f"mode {request.mode} is not a client request (mode 3)"
        )
    if not 1 <= request.version <= 4:
        raise RemoteProtocolError("ntp request", f"unsupported version {request.version}")
    reply = NtpPacket(
        leap=0,
        version=request.version,
        mode=MODE_SERVER,
        stratum=config.stratum,
        poll=request.poll,
        precision=config.precision,
        reference_id=config.reference_id,
        reference=unix_ns_to_ntp(config.reference_ns) if config.reference_ns else 0,
        originate=request.transmit,
        receive=unix_ns_to_ntp(received_ns),
        transmit=unix_ns_to_ntp(transmit_ns),
    )
    return encode_packet(reply)


def stamp_transmit(reply: bytes, transmit_ns: int) -> bytes:
    """``reply`` with its transmit timestamp (T3) replaced: call it just before sending.

    Building a reply in Python takes microseconds; a T3 read before that would make every
    client see the server's clock that much behind (RFC 5905 §8 wants T3 as close to
    the send as possible; chrony goes as far as interleaved mode for it).
    """
    if len(reply) < PACKET_SIZE:
        raise LocalProtocolError("ntp reply", f"{len(reply)} bytes is not an NTP packet")
    return reply[:40] + unix_ns_to_ntp(transmit_ns).to_bytes(8, "big") + reply[48:]

"""The clock protocols, pure: roundtrip frames, NTP packets and timestamps, client checks,
pairing of replies with probes, and the sample filter.  No sockets, no clocks: every time
is a number chosen here."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncat_trio.errors import LocalProtocolError, RemoteProtocolError
from ncat_trio.proto import ntp
from ncat_trio.proto import roundtrip as rt
from ncat_trio.proto.roundtrip import ClockSample, DiscardedReply, RoundtripFrame

# The capture in protocols.md ("roundtrip"): a request and its reply, byte for byte.
CAPTURE_REQUEST = bytes.fromhex("96458cb8346106000000000000000000")
CAPTURE_REPLY = bytes.fromhex("96458cb834610600c5498cb834610600")

S = 1_000_000_000  # ns per second
NOW = 1_795_728_922_658_198_000  # a wall-clock time in ns (the capture's send time)


# --- roundtrip frames ------------------------------------------------------------------


def test_capture_decodes_exactly() -> None:
    assert rt.decode_frame(CAPTURE_REQUEST) == RoundtripFrame(1795728922658198, 0)
    assert rt.decode_frame(CAPTURE_REPLY) == RoundtripFrame(1795728922658198, 1795728922659269)


def test_capture_encodes_exactly() -> None:
    assert rt.encode_frame(RoundtripFrame(1795728922658198)) == CAPTURE_REQUEST
    assert rt.encode_frame(RoundtripFrame(1795728922658198, 1795728922659269)) == CAPTURE_REPLY


def test_server_echoes_bytes_0_to_7_and_stamps_8_to_15() -> None:
    assert rt.answer_datagram(CAPTURE_REQUEST, 1795728922659269) == CAPTURE_REPLY
    odd = b"\xff" * 8 + b"\x01" * 8  # whatever the client put there is echoed / overwritten
    assert rt.answer_datagram(odd, 5) == b"\xff" * 8 + (5).to_bytes(8, "little")


@pytest.mark.parametrize("size", [0, 1, 8, 15, 17, 32, 48, 65507])
def test_server_drops_datagrams_that_are_not_16_bytes(size: int) -> None:
    with pytest.raises(RemoteProtocolError, match=f"expected 16 bytes, got {size}"):
        rt.answer_datagram(b"\0" * size, 1)


def test_frames_are_signed_little_endian_int64() -> None:
    assert rt.decode_frame((-1).to_bytes(8, "little", signed=True) * 2) == RoundtripFrame(-1, -1)
    with pytest.raises(LocalProtocolError):
        rt.encode_frame(RoundtripFrame(1 << 63))


def test_frame_buffer_yields_frames_split_at_every_point() -> None:
    stream = CAPTURE_REQUEST + CAPTURE_REPLY
    for cut in range(len(stream) + 1):
        buffer = rt.FrameBuffer()
        frames: list[RoundtripFrame] = []
        for piece in [p for p in (stream[:cut], stream[cut:]) if p] + [b""]:
            buffer.receive_data(piece)
            while isinstance(event := buffer.next_event(), RoundtripFrame):
                frames.append(event)
        assert frames == [rt.decode_frame(CAPTURE_REQUEST), rt.decode_frame(CAPTURE_REPLY)]
        assert event is rt.CLOSED


def test_frame_buffer_needs_data_then_fails_on_eof_in_mid_frame() -> None:
    buffer = rt.FrameBuffer()
    buffer.receive_data(CAPTURE_REQUEST[:5])
    assert buffer.next_event() is rt.NEED_DATA
    assert buffer.pending == 5
    buffer.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="mid-frame"):
        buffer.next_event()
    with pytest.raises(LocalProtocolError):
        buffer.receive_data(b"more")


# --- roundtrip client: formulas and pairing --------------------------------------------


def test_roundtrip_offset_and_rtt_on_hand_made_times() -> None:
    client = rt.RoundtripClient()
    probe = client.send_probe(1_000_000)  # sent at 1000 µs
    assert probe.data == rt.encode_frame(RoundtripFrame(1000, 0))
    reply = rt.answer_datagram(probe.data, 1500)  # the server's clock read 1500 µs
    sample = client.receive_reply(reply, 1_100_000)  # back at 1100 µs
    # rtt = 1100 - 1000; offset = 1500 - (1000 + 1100) / 2 = +450 µs (server ahead)
    assert sample == ClockSample(probe=0, rtt_ns=100_000, offset_ns=450_000)


def test_roundtrip_offset_is_negative_when_the_server_is_behind() -> None:
    client = rt.RoundtripClient()
    probe = client.send_probe(10 * S)
    sample = client.receive_reply(rt.answer_datagram(probe.data, 8_000_000), 10 * S + 2000)
    assert isinstance(sample, ClockSample)
    assert sample.offset_ns == 8 * S - (10 * S + 1000)


def test_late_reply_is_discarded_not_paired_with_the_next_probe() -> None:
    client = rt.RoundtripClient()
    first = client.send_probe(NOW)
    assert client.give_up(first.number)  # its timeout passed
    second = client.send_probe(NOW + S)
    late = client.receive_reply(rt.answer_datagram(first.data, 1), NOW + S + 10)
    assert late == DiscardedReply(probe=0, reason="late")
    sample = client.receive_reply(rt.answer_datagram(second.data, 2), NOW + S + 20)
    assert isinstance(sample, ClockSample)
    assert sample.probe == 1
    assert sample.rtt_ns == 20  # measured from the second probe's send, not the first's
    report = client.report()
    assert (report.probes, report.replies, report.lost, report.late) == (2, 1, 1, 1)


def test_duplicate_reply_is_discarded() -> None:
    client = rt.RoundtripClient()
    probe = client.send_probe(NOW)
    reply = rt.answer_datagram(probe.data, 1)
    assert isinstance(client.receive_reply(reply, NOW + 5), ClockSample)
    assert client.receive_reply(reply, NOW + 6) == DiscardedReply(probe=0, reason="duplicate")
    assert client.report().duplicates == 1
    assert client.report().replies == 1


def test_two_probes_in_one_microsecond_are_never_confused() -> None:
    client = rt.RoundtripClient()
    a = client.send_probe(NOW + 100)
    b = client.send_probe(NOW + 900)  # the same µs: it gets the next token
    assert a.data != b.data
    got_b = client.receive_reply(rt.answer_datagram(b.data, 7), NOW + 2000)
    got_a = client.receive_reply(rt.answer_datagram(a.data, 7), NOW + 3000)
    assert isinstance(got_a, ClockSample)
    assert isinstance(got_b, ClockSample)
    assert (got_a.probe, got_a.rtt_ns) == (0, 2900)
    assert (got_b.probe, got_b.rtt_ns) == (1, 1100)


def test_mark_sent_moves_the_send_time_but_not_the_token() -> None:
    client = rt.RoundtripClient()
    probe = client.send_probe(1_000_000)
    client.mark_sent(probe.number, 1_000_700)  # the clock read again just before sending
    sample = client.receive_reply(rt.answer_datagram(probe.data, 1500), 1_100_700)
    assert sample == ClockSample(probe=0, rtt_ns=100_000, offset_ns=1_500_000 - 1_050_700)


def test_reply_to_nothing_we_sent_is_rejected() -> None:
    client = rt.RoundtripClient()
    client.send_probe(NOW)
    stranger = rt.encode_frame(RoundtripFrame(12345, 67890))
    with pytest.raises(RemoteProtocolError, match="answers no request of ours"):
        client.receive_reply(stranger, NOW + 1)
    assert client.report().rejected == 1


def test_an_echo_is_not_a_roundtrip_reply() -> None:
    client = rt.RoundtripClient()
    probe = client.send_probe(NOW)
    with pytest.raises(RemoteProtocolError, match="server time is 0"):
        client.receive_reply(probe.data, NOW + 1)  # echoed unchanged: bytes 8-15 are 0
    report = client.report()
    assert (report.rejected, report.lost) == (1, 1)


def test_malformed_reply_is_rejected() -> None:
    client = rt.RoundtripClient()
    client.send_probe(NOW)
    with pytest.raises(RemoteProtocolError, match="expected 16 bytes"):
        client.receive_reply(b"hello", NOW)


# --- the sample filter ------------------------------------------------------------------


def sample(probe: int, rtt: int, offset: int) -> ClockSample:
    return ClockSample(probe=probe, rtt_ns=rtt, offset_ns=offset)


def test_filter_picks_the_minimum_round_trip_and_reports_median_spread_loss() -> None:
    samples = [sample(0, 300, 50), sample(1, 100, -10), sample(2, 200, 30), sample(3, 400, 90)]
    report = rt.summarize(samples, probes=6, late=1)
    assert report.best == samples[1]  # offset -10 although others agree on more
    assert report.median_offset_ns == (30 + 50) // 2  # even count: the mean of the middle two
    assert report.spread_ns == 90 - (-10)
    assert (report.replies, report.lost, report.late) == (4, 2, 1)


def test_filter_odd_count_median_and_first_of_equal_round_trips() -> None:
    samples = [sample(0, 100, 7), sample(1, 100, 1), sample(2, 500, 3)]
    report = rt.summarize(samples, probes=3)
    assert report.best == samples[0]
    assert report.median_offset_ns == 3
    assert report.spread_ns == 6


def test_filter_with_no_samples() -> None:
    report = rt.summarize([], probes=4)
    assert report.best is None
    assert report.median_offset_ns is None
    assert report.spread_ns is None
    assert report.lost == 4


# --- NTP timestamps -------------------------------------------------------------------


def test_unix_epoch_is_2208988800_seconds_after_the_ntp_epoch() -> None:
    assert ntp.unix_ns_to_ntp(0) == 2_208_988_800 << 32
    assert ntp.ntp_to_unix_ns(2_208_988_800 << 32) == 0


def test_fractions_both_ways() -> None:
    assert ntp.unix_ns_to_ntp(S // 2) == (2_208_988_800 << 32) | 0x8000_0000
    assert ntp.unix_ns_to_ntp(S // 4) & 0xFFFF_FFFF == 0x4000_0000
    assert ntp.unix_ns_to_ntp(1) & 0xFFFF_FFFF == 4  # 1 ns = 4.29 units of 2**-32 s
    assert ntp.ntp_to_unix_ns((2_208_988_800 << 32) | 0xC000_0000) == 750_000_000
    assert ntp.ntp_to_unix_ns((2_208_988_800 << 32) | 1) == 0  # 0.23 ns rounds to 0
    assert ntp.ntp_to_unix_ns((2_208_988_800 << 32) | 3) == 1  # 0.70 ns rounds to 1


def test_a_known_date() -> None:
    # 2026-01-01T00:00:00Z = 1767225600 s after the Unix epoch.
    assert ntp.unix_ns_to_ntp(1_767_225_600 * S) >> 32 == 1_767_225_600 + 2_208_988_800


def test_era_1_starts_in_february_2036() -> None:
    # 2036-02-07T06:28:16Z is 2**32 s after 1900: the seconds field wraps to 0 (RFC 4330 §3).
    wrap_ns = ((1 << 32) - 2_208_988_800) * S
    assert ntp.unix_ns_to_ntp(wrap_ns) == 0
    assert ntp.unix_ns_to_ntp(wrap_ns + S) == 1 << 32
    assert ntp.ntp_to_unix_ns(1 << 32) == wrap_ns + S
    assert ntp.ntp_to_unix_ns(((1 << 32) - 1) << 32) == wrap_ns - S  # the last era-0 second


# 1968-01-20T03:14:08Z (the top bit of era 0 set) .. 2104-02-26 (the end of era 1's half).
ERA_RANGE = st.integers(
    min_value=(2**31 - 2_208_988_800) * S, max_value=(2**32 + 2**31 - 2_208_988_800) * S - 1
)


@given(ERA_RANGE)
def test_timestamps_round_trip_to_the_nanosecond(unix_ns: int) -> None:
    assert ntp.ntp_to_unix_ns(ntp.unix_ns_to_ntp(unix_ns)) == unix_ns


# --- NTP packets, formulas, client checks ----------------------------------------------


def test_request_is_48_bytes_0x23_with_t1_in_transmit() -> None:
    t1 = ntp.unix_ns_to_ntp(NOW)
    data = ntp.make_request(t1)
    assert len(data) == 48
    assert data[0] == 0x23  # LI 0, VN 4, mode 3
    assert data[1:40] == b"\0" * 39
    assert int.from_bytes(data[40:48], "big") == t1


def test_packet_encode_decode() -> None:
    packet = ntp.NtpPacket(
        leap=1, version=3, mode=4, stratum=2, poll=6, precision=-20, root_delay=0x10000,
        root_dispersion=0x8000, reference_id=b"GPS\0", reference=1, originate=2,
        receive=3, transmit=4,
    )  # fmt: skip
    data = ntp.encode_packet(packet)
    assert data[0] == 1 << 6 | 3 << 3 | 4
    assert ntp.decode_packet(data) == packet
    assert ntp.decode_packet(data + b"\x01" * 20) == packet  # extension fields are ignored


def test_offset_and_delay_on_hand_made_t1_to_t4() -> None:
    # Our clock is 1 s behind the server's; 10 ms out, 1 ms in the server, 10 ms back.
    t1 = 100 * S
    t2 = 101 * S + 10_000_000
    t3 = 101 * S + 11_000_000
    t4 = 100 * S + 21_000_000
    assert ntp.offset_and_delay(t1, t2, t3, t4) == (S, 20_000_000)


def test_offset_and_delay_with_an_asymmetric_path() -> None:
    # Same clocks; 30 ms out, 10 ms back: the offset error is half the asymmetry.
    offset, delay = ntp.offset_and_delay(0, 30_000_000, 30_000_000, 40_000_000)
    assert (offset, delay) == (10_000_000, 40_000_000)


def server_reply(request: bytes, **changes: object) -> ntp.NtpPacket:
    packet = ntp.decode_packet(
        ntp.answer_request(request, NOW + 5_000, NOW + 6_000, ntp.NtpServerConfig(stratum=3))
    )
    return dataclasses.replace(packet, **changes)  # type: ignore[arg-type]


T1 = ntp.unix_ns_to_ntp(NOW)
REQUEST = ntp.make_request(T1)


def test_a_good_reply_passes() -> None:
    ntp.check_reply(server_reply(REQUEST), T1)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"mode": 3}, "wrong mode 3"),
        ({"mode": 5}, "wrong mode 5"),
        ({"version": 0}, "unsupported version 0"),
        ({"originate": T1 + 1}, "originate timestamp is not our request's"),
        ({"leap": 3}, r"not synchronised \(leap 3\)"),
        ({"stratum": 16}, r"not synchronised \(stratum 16\)"),
        ({"transmit": 0}, "zero transmit timestamp"),
        ({"receive": 0}, "zero receive timestamp"),
    ],
)
def test_bad_replies_are_rejected_with_a_reason(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        ntp.check_reply(server_reply(REQUEST, **changes), T1)


@pytest.mark.parametrize(
    ("code", "meaning"), [(b"RATE", "rate exceeded"), (b"DENY", "access denied")]
)
def test_kiss_of_death_names_its_code(code: bytes, meaning: str) -> None:
    kiss = server_reply(REQUEST, stratum=0, reference_id=code)
    with pytest.raises(ntp.KissOfDeath, match=f"kiss-o'-death {code.decode()} .*{meaning}") as info:
        ntp.check_reply(kiss, T1)
    assert info.value.code == code.decode()
    assert isinstance(info.value, RemoteProtocolError)


def test_kiss_of_death_with_an_unknown_or_binary_code() -> None:
    with pytest.raises(ntp.KissOfDeath, match="0x00ff0001"):
        ntp.check_reply(server_reply(REQUEST, stratum=0, reference_id=b"\x00\xff\x00\x01"), T1)


def test_a_forged_kiss_with_the_wrong_originate_is_not_obeyed() -> None:
    forged = server_reply(REQUEST, stratum=0, reference_id=b"DENY", originate=7)
    with pytest.raises(RemoteProtocolError, match="originate") as info:
        ntp.check_reply(forged, T1)
    assert not isinstance(info.value, ntp.KissOfDeath)


def test_short_packet_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError, match="too short: 47 bytes"):
        ntp.decode_packet(b"\0" * 47)


# --- NTP server and client together ---------------------------------------------------


def test_server_reply_fields() -> None:
    config = ntp.NtpServerConfig(stratum=7, reference_ns=NOW - S)
    request = ntp.encode_packet(ntp.NtpPacket(version=3, mode=3, poll=6, transmit=T1))
    reply = ntp.decode_packet(ntp.answer_request(request, NOW + 1000, NOW + 2000, config))
    assert (reply.leap, reply.version, reply.mode, reply.stratum, reply.poll) == (0, 3, 4, 7, 6)
    assert reply.originate == T1
    assert reply.receive == ntp.unix_ns_to_ntp(NOW + 1000)
    assert reply.transmit == ntp.unix_ns_to_ntp(NOW + 2000)
    assert reply.reference == ntp.unix_ns_to_ntp(NOW - S)
    assert reply.reference_id == ntp.LOCAL_CLOCK_ID


def test_stamp_transmit_replaces_only_t3() -> None:
    reply = ntp.answer_request(REQUEST, NOW, NOW, ntp.NtpServerConfig())
    stamped = ntp.stamp_transmit(reply, NOW + 12_345)
    assert stamped[:40] == reply[:40]
    assert ntp.decode_packet(stamped).transmit == ntp.unix_ns_to_ntp(NOW + 12_345)
    with pytest.raises(LocalProtocolError):
        ntp.stamp_transmit(b"short", NOW)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (b"\x23" * 47, "too short"),
        (ntp.encode_packet(ntp.NtpPacket(mode=4)), "mode 4 is not a client request"),
        (ntp.encode_packet(ntp.NtpPacket(mode=1)), "mode 1 is not a client request"),
        (ntp.encode_packet(ntp.NtpPacket(version=0)), "unsupported version 0"),
        (ntp.encode_packet(ntp.NtpPacket(version=5)), "unsupported version 5"),
    ],
)
def test_server_drops_what_is_not_a_client_request(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        ntp.answer_request(data, NOW, NOW, ntp.NtpServerConfig())


def test_client_measures_a_server_two_seconds_ahead() -> None:
    client = ntp.NtpClient()
    probe = client.send_probe(NOW)
    # Server clock = ours + 2 s; 40 µs each way; it holds the request for 15 µs.
    reply = ntp.answer_request(
        probe.data, NOW + 2 * S + 40_000, NOW + 2 * S + 55_000, ntp.NtpServerConfig(stratum=4)
    )
    sample = client.receive_reply(reply, NOW + 95_000)
    assert sample == ClockSample(probe=0, rtt_ns=80_000, offset_ns=2 * S, stratum=4)


def test_ntp_client_discards_late_and_duplicate_and_rejects_kisses() -> None:
    config = ntp.NtpServerConfig()
    client = ntp.NtpClient()
    first = client.send_probe(NOW)
    client.give_up(first.number)
    second = client.send_probe(NOW + S)
    late = client.receive_reply(ntp.answer_request(first.data, NOW, NOW, config), NOW + S)
    assert late == DiscardedReply(probe=0, reason="late")
    good = ntp.answer_request(second.data, NOW + S, NOW + S, config)
    assert isinstance(client.receive_reply(good, NOW + S + 1), ClockSample)
    assert client.receive_reply(good, NOW + S + 2) == DiscardedReply(probe=1, reason="duplicate")
    third = client.send_probe(NOW + 2 * S)
    kiss = ntp.encode_packet(server_reply(third.data, stratum=0, reference_id=b"RATE"))
    with pytest.raises(ntp.KissOfDeath):
        client.receive_reply(kiss, NOW + 2 * S + 1)
    report = client.report()
    assert (report.probes, report.replies, report.late, report.duplicates, report.rejected) == (
        3,
        1,
        1,
        1,
        1,
    )


def test_ntp_client_rejects_a_reflected_request() -> None:
    client = ntp.NtpClient()
    probe = client.send_probe(NOW)
    with pytest.raises(RemoteProtocolError, match="wrong mode 3"):
        client.receive_reply(probe.data, NOW + 1)  # an echo service sent our request back


# --- fuzzing: any bytes give a result or RemoteProtocolError, never anything else --------


@given(st.binary(max_size=128))
def test_fuzz_roundtrip_decoders(data: bytes) -> None:
    client = rt.RoundtripClient()
    client.send_probe(NOW)
    for decode in (
        rt.decode_frame,
        lambda d: rt.answer_datagram(d, 1),
        lambda d: client.receive_reply(d, NOW),
    ):
        with contextlib.suppress(RemoteProtocolError):
            decode(data)


@given(st.lists(st.binary(max_size=40), max_size=8), st.booleans())
def test_fuzz_frame_buffer_any_chunking(chunks: list[bytes], eof: bool) -> None:
    buffer = rt.FrameBuffer()
    joined = b"".join(chunks)
    frames = []
    for chunk in [*(c for c in chunks if c), *([b""] if eof else [])]:
        buffer.receive_data(chunk)  # b"" (only last) is EOF
        try:
            while isinstance(event := buffer.next_event(), RoundtripFrame):
                frames.append(event)
        except RemoteProtocolError:
            assert eof
            assert len(joined) % 16
    whole = len(joined) // 16
    assert frames == [rt.decode_frame(joined[i * 16 : i * 16 + 16]) for i in range(whole)]


@given(st.binary(max_size=128))
def test_fuzz_ntp_decoders(data: bytes) -> None:
    client = ntp.NtpClient()
    client.send_probe(NOW)
    for decode in (
        ntp.decode_packet,
        lambda d: ntp.answer_request(d, NOW, NOW, ntp.NtpServerConfig()),
        lambda d: client.receive_reply(d, NOW),
    ):
        with contextlib.suppress(RemoteProtocolError):
            decode(data)


@given(st.binary(min_size=48, max_size=48), st.integers(min_value=0, max_value=2**64 - 1))
def test_fuzz_check_reply(data: bytes, t1: int) -> None:
    with contextlib.suppress(RemoteProtocolError):
        ntp.check_reply(ntp.decode_packet(data), t1)

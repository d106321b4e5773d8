"""The verified file transfer's two ends (``send`` / ``receive``), sans-I/O.

The messages and their bytes are :mod:`ncat_trio.proto.transfer_wire` (PROTOCOL.md);
this module holds who may send what when.

:class:`TransferSender` and :class:`TransferReceiver` are h11-style connection
objects: ``receive_data(bytes)`` (``b""`` = EOF), ``next_event()`` → an event,
:data:`NEED_DATA` or :data:`PAUSED` (it is our turn to send), ``send(event) → bytes``.
A state table says which message may come next; everything else is a
:class:`RemoteProtocolError`.  Every length is bounded before anything is buffered,
and data is never buffered at all: it is handed out as it arrives.

The digest is the application's business (it hashes in the same pass as its file
I/O, and for a resume the prefix comes from disk); this layer carries and
cross-checks sizes and digests.  No I/O and no clock here.
"""

from __future__ import annotations

import enum

from ..errors import ConnectionLost, IntegrityError, LocalProtocolError, RemoteProtocolError
from .receive_buffer import NEED_DATA, PAUSED, NeedData, ReceiveBuffer
from .transfer_wire import (
    EMPTY_SHA256,
    END_OF_CHUNKS,
    MAX_SIZE,
    TAG_ACK,
    TAG_FAILURE,
    TAG_OFFER,
    TAG_TRAILER,
    Ack,
    Closed,
    Data,
    Failure,
    FromReceiver,
    FromSender,
    Header,
    Offer,
    Start,
    Trailer,
    check_digest,
    check_size,
    encode_chunks,
    encode_failure,
    encode_header,
    encode_size_digest,
    encode_start,
    parse_chunk_length,
    parse_failure,
    parse_header,
    parse_size_digest,
    parse_start,
)


class ShortStream(IntegrityError):
    """The sender's bytes ended (EOF) after the header and before the trailer (exit 7)."""


def _expect_state(current: enum.Enum, wanted: enum.Enum, event: object) -> None:
    """A :class:`LocalProtocolError` unless ``event`` may be sent now."""
    if current is not wanted:
        raise LocalProtocolError(
            f"send {type(event).__name__}", f"not allowed now (state: {current.value})"
        )


class _End:
    """What both ends hold: the peer's bytes not parsed yet, the header, the offer,
    where the data starts and the trailer."""

    def __init__(self) -> None:
        self._input = ReceiveBuffer("receive_data")
        self.header: Header | None = None
        self._offer: Offer | None = None
        self.offset = 0  # where the data started (the accepted resume offset)
        self._trailer: Trailer | None = None

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer; ``b""`` means it closed its direction (EOF)."""
        self._input.feed(data)


# ---------------------------------------------------------------- sender


class SenderState(enum.Enum):
    HEADER = "send the header"
    AWAIT_OFFER = "wait for the offer"
    START = "send start"
    DATA = "send data"
    AWAIT_ACK = "wait for the ack"
    DONE = "acknowledged"
    FAILED = "receiver failed"
    ERROR = "protocol error"


class TransferSender(_End):
    """The sending end's protocol state: encodes what it sends, parses what comes back.

    ``send``: Header → Start → Data* → Trailer, in that order.  ``next_event``: Offer
    (after the Header), Ack (after the Trailer), Failure (any time), Closed (EOF after
    an Ack or a Failure).  EOF anywhere else means the receiver never acknowledged:
    :class:`ConnectionLost` (exit 3; PROTOCOL.md, "Exit codes").
    """

    def __init__(self) -> None:
        super().__init__()
        self.state = SenderState.HEADER
        self._sent = 0  # data bytes after the Start offset

    # -- outgoing

    def send(self, event: Header | Start | Data | Trailer) -> bytes:
        """Encode ``event``; :class:`LocalProtocolError` if it is out of turn or invalid."""
        if isinstance(event, Header):
            _expect_state(self.state, SenderState.HEADER, event)
            out = encode_header(event)
            self.header = event
            self.state = SenderState.AWAIT_OFFER
            return out
        if isinstance(event, Start):
            _expect_state(self.state, SenderState.START, event)
            assert self._offer is not None
            if event.offset not in (0, self._offer.offset):
                raise LocalProtocolError(
                    "start",
                    f"offset {event.offset} is neither 0 nor the offered {self._offer.offset}",
                )
            self.offset = event.offset
            self.state = SenderState.DATA
            return encode_start(event.offset)
        if isinstance(event, Data):
            _expect_state(self.state, SenderState.DATA, event)
            return self._encode_data(event.data)
        if isinstance(event, Trailer):
            _expect_state(self.state, SenderState.DATA, event)
            return self._encode_trailer(event)
        raise LocalProtocolError("send", f"a sender cannot send {type(event).__name__}")

    def _encode_data(self, data: bytes) -> bytes:
        assert self.header is not None
        if not data:
            return b""  # an empty chunk would be the terminator: send nothing
        size = self.header.size
        if size is not None and self.offset + self._sent + len(data) > size:
            raise LocalProtocolError("data", f"more than the announced {size} bytes")
        self._sent += len(data)
        return data if size is not None else encode_chunks(data)  # size known: raw, no copy

    def _encode_trailer(self, trailer: Trailer) -> bytes:
        assert self.header is not None
        check_digest(trailer.sha256, "trailer")
        total = self.offset + self._sent
        if trailer.size != total:
            raise LocalProtocolError("trailer", f"size {trailer.size} but {total} bytes were sent")
        if self.header.size is not None and total != self.header.size:
            raise LocalProtocolError(
                "trailer", f"only {total} of the announced {self.header.size} bytes were sent"
            )
        self._trailer = trailer
        self.state = SenderState.AWAIT_ACK
        end = b"" if self.header.size is not None else END_OF_CHUNKS
        return end + encode_size_digest(TAG_TRAILER, trailer.size, trailer.sha256)

    # -- incoming

    def next_event(self) -> FromReceiver | NeedData:
        """The next message from the receiver, or :data:`NEED_DATA`."""
        if self.state is SenderState.ERROR:
            raise RemoteProtocolError("receiver", "the connection already broke the protocol")
        try:
            return self._next_event()
        except RemoteProtocolError:
            self.state = SenderState.ERROR
            raise

    def _next_event(self) -> FromReceiver | NeedData:
        buf = self._input
        if self.state is SenderState.FAILED:
            buf.discard()
            return Closed() if buf.eof else NEED_DATA
        if not len(buf):
            if not buf.eof:
                return NEED_DATA
            if self.state is SenderState.DONE:
                return Closed()
            raise ConnectionLost("receiver", "closed the connection before acknowledging the file")
        tag = buf.peek(1)
        if tag == TAG_FAILURE and self.state is not SenderState.DONE:
            failure = parse_failure(buf)
            if failure is not None:
                self.state = SenderState.FAILED
                return failure
        elif tag == TAG_OFFER and self.state is SenderState.AWAIT_OFFER:
            parsed = parse_size_digest(buf, TAG_OFFER, "offer")
            if parsed is not None:
                return self._on_offer(Offer(*parsed))
        elif tag == TAG_ACK and self.state is SenderState.AWAIT_ACK:
            parsed = parse_size_digest(buf, TAG_ACK, "ack")
            if parsed is not None:
                return self._on_ack(Ack(*parsed))
        else:
            got = repr(tag) if tag else "nothing"
            raise RemoteProtocolError(
                "receiver", f"sent {got} where {self._expected()} was expected"
            )
        if buf.eof:  # a message was cut short
            raise ConnectionLost("receiver", "closed the connection in the middle of a message")
        return NEED_DATA

    def _expected(self) -> str:
        return {
            SenderState.AWAIT_OFFER: "an offer or a failure",
            SenderState.AWAIT_ACK: "an ack or a failure",
            SenderState.DONE: "EOF",
        }.get(self.state, "nothing (or a failure)")

    def _on_offer(self, offer: Offer) -> Offer:
        assert self.header is not None
        size = self.header.size
        if size is not None and offer.offset > size:
            raise RemoteProtocolError("offer", f"offset {offer.offset} is beyond the size {size}")
        if offer.offset == 0 and offer.prefix_sha256 != EMPTY_SHA256:
            raise RemoteProtocolError("offer", "an empty prefix must carry sha256 of nothing")
        self._offer = offer
        self.state = SenderState.START
        return offer

    def _on_ack(self, ack: Ack) -> Ack:
        assert self._trailer is not None
        if (ack.size, ack.sha256) != (self._trailer.size, self._trailer.sha256):
            raise RemoteProtocolError("ack", "does not match the trailer that was sent")
        self.state = SenderState.DONE
        return ack


# ---------------------------------------------------------------- receiver


class ReceiverState(enum.Enum):
    HEADER = "wait for the header"
    OFFER = "send the offer"
    AWAIT_START = "wait for start"
    DATA = "receive data"
    CHUNK_BODY = "receive a chunk"
    TRAILER = "wait for the trailer"
    ACK = "send the ack"
    DONE = "acknowledged"
    FAILED = "failure sent"
    ERROR = "protocol error"


class TransferReceiver(_End):
    """The receiving end's protocol state.

    ``next_event``: Header, then (after we ``send`` an Offer) Start, Data*, Trailer;
    :data:`PAUSED` while it is our turn: for the Ack, only once the sender's EOF has
    followed the trailer (a byte instead is a :class:`RemoteProtocolError`).  ``send``:
    Offer, then Ack; or Failure at any point, after which everything that still arrives
    is discarded.  EOF before the header is complete is a :class:`RemoteProtocolError`;
    EOF after the header and before the trailer is a short stream:
    :class:`IntegrityError` (exit 7).
    """

    def __init__(self) -> None:
        super().__init__()
        self.state = ReceiverState.HEADER
        self.data_received = 0  # data bytes since the Start (the resumed prefix not included)
        self._chunk_left = 0

    # -- outgoing

    def send(self, event: Offer | Ack | Failure) -> bytes:
        """Encode ``event``; :class:`LocalProtocolError` if it is out of turn or invalid."""
        if isinstance(event, Failure):
            if self.state in (ReceiverState.DONE, ReceiverState.FAILED):
                raise LocalProtocolError("send Failure", f"not allowed now ({self.state.value})")
            out = encode_failure(event)
            self.state = ReceiverState.FAILED
            self._input.discard()
            return out
        if isinstance(event, Offer):
            _expect_state(self.state, ReceiverState.OFFER, event)
            assert self.header is not None
            check_digest(event.prefix_sha256, "offer")
            check_size(event.offset, "offer")
            if self.header.size is not None and event.offset > self.header.size:
                raise LocalProtocolError("offer", "offset beyond the announced size")
            if event.offset == 0 and event.prefix_sha256 != EMPTY_SHA256:
                raise LocalProtocolError("offer", "an empty prefix has sha256 of nothing")
            self._offer = event
            self.state = ReceiverState.AWAIT_START
            return encode_size_digest(TAG_OFFER, event.offset, event.prefix_sha256)
        if isinstance(event, Ack):
            _expect_state(self.state, ReceiverState.ACK, event)
            assert self._trailer is not None
            if not self._input.eof or len(self._input):
                raise LocalProtocolError("send Ack", "not before the sender's FIN ends its stream")
            if (event.size, event.sha256) != (self._trailer.size, self._trailer.sha256):
                raise LocalProtocolError("ack", "must repeat the trailer's size and sha256")
            self.state = ReceiverState.DONE
            return encode_size_digest(TAG_ACK, event.size, event.sha256)
        raise LocalProtocolError("send", f"a receiver cannot send {type(event).__name__}")

    # -- incoming

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the sender; ``b""`` means it closed its direction (EOF)."""
        super().receive_data(data)
        if self.state is ReceiverState.FAILED:
            self._input.discard()

    def next_event(self) -> FromSender | NeedData:
        """The next event from the sender, :data:`NEED_DATA` or :data:`PAUSED`."""
        if self.state is ReceiverState.ERROR:
            raise RemoteProtocolError("sender", "the connection already broke the protocol")
        try:
            return self._next_event()
        except (RemoteProtocolError, IntegrityError):
            self.state = ReceiverState.ERROR
            raise

    def _next_event(self) -> FromSender | NeedData:
        state = self.state
        buf = self._input
        if state is ReceiverState.OFFER:
            return PAUSED
        if state is ReceiverState.ACK or state is ReceiverState.DONE:
            # The trailer must be the sender's last bytes, and its FIN comes before our
            # Ack (PROTOCOL.md): only then is it our turn.  Checked before the file gets
            # its name, so a stream with more after the trailer is never accepted.
            if len(buf):
                raise RemoteProtocolError("sender", "sent bytes after the trailer")
            if not buf.eof:
                return NEED_DATA
            return PAUSED if state is ReceiverState.ACK else Closed()
        if state is ReceiverState.FAILED:  # nothing is buffered: receive_data discards
            return Closed() if buf.eof else NEED_DATA
        if state is ReceiverState.HEADER:
            event: Header | Start | Data | Trailer | None = self._parse_header()
        elif state is ReceiverState.AWAIT_START:
            event = self._parse_start()
        elif state is ReceiverState.TRAILER:
            event = self._parse_trailer()
        else:
            event = self._parse_data()
        if event is not None:
            return event
        if buf.eof:
            self._raise_short()
        return NEED_DATA

    def _raise_short(self) -> None:
        if self.header is None:
            if not len(self._input):
                raise RemoteProtocolError(
                    "sender", "closed the connection without sending a header"
                )
            raise RemoteProtocolError("sender", "closed the connection in the middle of the header")
        got = self.offset + self.data_received
        size = self.header.size
        of = f" of {size}" if size is not None else ""
        raise ShortStream(
            f"transfer of {self.header.name!r}",
            f"short stream: the sender closed after {got}{of} bytes, before the trailer",
        )

    def _parse_header(self) -> Header | None:
        header = parse_header(self._input)
        if header is not None:
            self.header = header
            self.state = ReceiverState.OFFER
        return header

    def _parse_start(self) -> Start | None:
        offset = parse_start(self._input)
        if offset is None:
            return None
        assert self._offer is not None
        if offset not in (0, self._offer.offset):
            raise RemoteProtocolError(
                "start", f"offset {offset} is neither 0 nor the offered {self._offer.offset}"
            )
        self.offset = offset
        self.state = ReceiverState.DATA
        return Start(offset)

    def _parse_data(self) -> Data | Trailer | None:
        assert self.header is not None
        buf = self._input
        size = self.header.size
        if size is not None:
            left = size - self.offset - self.data_received
            if left == 0:
                self.state = ReceiverState.TRAILER
                return self._parse_trailer()
            if not len(buf):
                return None
            return self._deliver(buf.take_up_to(left))
        if self.state is ReceiverState.DATA:  # at a chunk boundary
            length = parse_chunk_length(buf)
            if length is None:
                return None
            if length == 0:
                self.state = ReceiverState.TRAILER
                return self._parse_trailer()
            self._chunk_left = length
            self.state = ReceiverState.CHUNK_BODY
        if not len(buf):
            return None
        data = buf.take_up_to(self._chunk_left)
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self.state = ReceiverState.DATA
        return self._deliver(data)

    def _deliver(self, data: bytes) -> Data:
        if self.offset + self.data_received + len(data) > MAX_SIZE:
            raise RemoteProtocolError("data", "stream longer than 2**63-1 bytes")
        self.data_received += len(data)
        return Data(data)

    def _parse_trailer(self) -> Trailer | None:
        assert self.header is not None
        buf = self._input
        tag = buf.peek(1)
        if tag and tag != TAG_TRAILER:
            raise RemoteProtocolError("sender", f"sent {tag!r} where the trailer was expected")
        parsed = parse_size_digest(buf, TAG_TRAILER, "trailer")
        if parsed is None:
            return None
        size, digest = parsed
        got = self.offset + self.data_received
        if size != got:
            raise RemoteProtocolError("trailer", f"announces {size} bytes but {got} were sent")
        trailer = Trailer(size, digest)
        self._trailer = trailer
        self.state = ReceiverState.ACK
        return trailer


__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ReceiverState",
    "SenderState",
    "ShortStream",
    "TransferReceiver",
    "TransferSender",
]

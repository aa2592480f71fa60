"""The dongle↔host serial link: frames, their messages, and a streaming decoder.

Each frame is COBS-encoded (Cheshire & Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM ToN
1999) and ends with one 0x00 delimiter, so a receiver resynchronises on the next 0x00 after any
damage. Before stuffing a frame is, big-endian::

    version u8 | type u8 | flags u8 | seq u32 | length u16 | payload (length bytes) | crc u32

where ``crc`` is CRC-32C (Castagnoli, RFC 3720 §B.4) of everything before it. Message payloads are
declared with ``construct`` (:data:`MESSAGE_FORMATS`). Swipes carry only the masked card and the
DUKPT ciphertext (ANSI X9.24-3) of the tracks, never clear track data.

On a noisy line a long frame rarely survives (at 3 % damaged bytes a 170-byte frame gets through
0.5 % of the time), so the dongle may send a frame as FRAGMENT frames of a few dozen bytes
(:func:`fragment_frame`); the host answers FRAGMENT_ACK with a bitmap of what it holds and the
dongle resends only the missing pieces (selective repeat); :class:`Reassembler` rebuilds the frame.

Errors: an unknown version or type raises :class:`~posbridge.protocols.errors.UnsupportedFrame`
(the receiver answers NAK); a bad CRC raises :class:`FrameChecksumError` (both a ``FrameError``
and a ``ChecksumError``); any other damage raises ``FrameError``. Nothing a peer sends raises
anything else.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import construct as cs
from posbridge.protocols.errors import ChecksumError, FrameError, UnsupportedFrame
from posbridge.protocols.types import EncryptedCardData, MaskedCard

PROTOCOL_VERSION = 1
DELIMITER = b"\x00"
MAX_PAYLOAD = 2048
HEADER_BYTES = 9
CRC_BYTES = 4
MAX_FRAME_BYTES = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES
MAX_ENCODED_BYTES = MAX_FRAME_BYTES + MAX_FRAME_BYTES // 254 + 2
SEQ_MODULUS = 1 << 32


class FrameChecksumError(FrameError, ChecksumError):
    """A frame's CRC-32C does not match its bytes."""


class MessageType(enum.IntEnum):
    """Link message types."""

    HELLO = 0x01
    DEVICE_INFO = 0x02
    SWIPE = 0x10
    CHIP = 0x11
    HEARTBEAT = 0x20
    ACK = 0x30
    NAK = 0x31
    FRAGMENT_ACK = 0x32
    ERROR = 0x3F
    FRAGMENT = 0x40


class FrameFlags(enum.IntFlag):
    """Frame flags: ``RETRANSMIT`` marks a resend; ``ACK_REQUESTED`` asks the peer for an ACK."""

    NONE = 0
    RETRANSMIT = 0x01
    ACK_REQUESTED = 0x02


class NakReason(enum.IntEnum):
    """Why a frame was refused."""

    BAD_CHECKSUM = 1
    MALFORMED = 2
    UNSUPPORTED = 3


# --------------------------------------------------------------------------- CRC-32C and COBS


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


_CRC32C_WIDE: tuple[tuple[int, ...], tuple[int, ...]] | None = None


def _crc32c_wide_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Tables mapping the low and the high 16 bits of the state to its value after 4 zero bytes.

    Built on first use; threads racing here may each build them, never see half of them.
    """
    global _CRC32C_WIDE
    tables = _CRC32C_WIDE
    if tables is None:
        table = _CRC32C_TABLE

        def four_zero_bytes(state: int) -> int:
            for _ in range(4):
                state = table[state & 0xFF] ^ (state >> 8)
            return state

        low = tuple(four_zero_bytes(bits) for bits in range(1 << 16))
        high = tuple(four_zero_bytes(bits << 16) for bits in range(1 << 16))
        tables = _CRC32C_WIDE = (low, high)
    return tables


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli; reflected, init and final XOR 0xFFFFFFFF) of ``data``.

    Consumes 32 bits per step: the update is linear, so four byte steps fold into two lookups in
    65,536-entry tables (built on first use).
    """
    low, high = _crc32c_wide_tables()
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    words = len(data) >> 2
    for word in struct.unpack_from(f"<{words}I", data):
        crc ^= word
        crc = low[crc & 0xFFFF] ^ high[crc >> 16]
    for byte in data[words << 2 :]:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (the result has no 0x00 and no delimiter)."""
    out = bytearray()
    for block in data.split(b"\x00"):
        while len(block) >= 254:
            out.append(0xFF)
            out += block[:254]
            block = block[254:]
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Undo :func:`cobs_encode`; :class:`FrameError` if ``encoded`` is not valid COBS."""
    if not encoded:
        raise FrameError("empty COBS block")
    if 0 in encoded:
        raise FrameError("a COBS block holds a 0x00 byte", offset=encoded.index(0))
    out = bytearray()
    position, total = 0, len(encoded)
    while position < total:
        code = encoded[position]
        end = position + code
        if end > total:
            raise FrameError("COBS block truncated", offset=position)
        out += encoded[position + 1 : end]
        position = end
        if code != 0xFF and position < total:
            out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------- frames

FRAME_FORMAT = cs.Struct(
    "version" / cs.Int8ub,
    "type" / cs.Int8ub,
    "flags" / cs.Int8ub,
    "seq" / cs.Int32ub,
    "length" / cs.Rebuild(cs.Int16ub, cs.len_(cs.this.payload)),
    "payload" / cs.Bytes(cs.this.length),
    cs.Terminated,
)
"""A frame before its CRC-32C and COBS stuffing (big-endian)."""

_FRAME_COMPILED = FRAME_FORMAT.compile()


@dataclass(frozen=True)
class Frame:
    """One link frame. ``payload`` is the raw message body; :meth:`message` parses it by ``type``."""

    type: MessageType
    seq: int
    payload: bytes = b""
    flags: FrameFlags = FrameFlags.NONE
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.seq < SEQ_MODULUS:
            raise FrameError("frame sequence number out of range", seq=self.seq)
        if len(self.payload) > MAX_PAYLOAD:
            raise FrameError(f"frame payload over {MAX_PAYLOAD} bytes", length=len(self.payload))

    @classmethod
    def of(cls, message: Message, seq: int, flags: FrameFlags = FrameFlags.NONE) -> Frame:
        """The frame carrying ``message``."""
        return cls(type=message.TYPE, seq=seq, payload=message.to_payload(), flags=flags)

    def message(self) -> Message:
        """The typed message (:class:`FrameError` if the payload does not match its type)."""
        return MESSAGE_CLASSES[self.type].from_payload(self.payload)

    def with_flags(self, flags: FrameFlags) -> Frame:
        """This frame with ``flags`` added (e.g. ``RETRANSMIT``)."""
        return Frame(self.type, self.seq, self.payload, self.flags | flags, self.version)


def frame_bytes(frame: Frame) -> bytes:
    """The unstuffed frame: header, payload, CRC-32C."""
    body: bytes = _FRAME_COMPILED.build(
        {
            "version": frame.version,
            "type": frame.type,
            "flags": frame.flags,
            "seq": frame.seq,
            "payload": frame.payload,
        }
    )
    return body + crc32c(body).to_bytes(CRC_BYTES, "big")


def encode_frame(frame: Frame) -> bytes:
    """The frame as sent on the wire: COBS-encoded, ending with the 0x00 delimiter."""
    return cobs_encode(frame_bytes(frame)) + DELIMITER


def parse_frame_bytes(raw: bytes) -> Frame:
    """Parse an unstuffed frame (header, payload, CRC)."""
    if len(raw) < HEADER_BYTES + CRC_BYTES:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than a header and CRC", length=len(raw))
    body, received = raw[:-CRC_BYTES], int.from_bytes(raw[-CRC_BYTES:], "big")
    if crc32c(body) != received:
        raise FrameChecksumError("frame CRC-32C mismatch", length=len(raw))
    version, type_code = body[0], body[1]
    seq = int.from_bytes(body[3:7], "big")
    if version != PROTOCOL_VERSION:
        raise UnsupportedFrame(f"unsupported link protocol version {version}", version=version, seq=seq)
    try:
        message_type = MessageType(type_code)
    except ValueError:
        raise UnsupportedFrame(
            f"unsupported message type 0x{type_code:02X}", type=type_code, seq=seq
        ) from None
    try:
        parsed = _FRAME_COMPILED.parse(body)
    except cs.ConstructError:
        parsed = None
    if parsed is None or len(parsed.payload) != parsed.length:
        raise FrameError("frame length field does not match its payload", seq=seq)
    if parsed.length > MAX_PAYLOAD:
        raise FrameError(f"frame payload over {MAX_PAYLOAD} bytes", length=parsed.length, seq=seq)
    return Frame(message_type, seq, parsed.payload, FrameFlags(parsed.flags), version)


def decode_frame(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame given without its 0x00 delimiter."""
    if len(encoded) > MAX_ENCODED_BYTES:
        raise FrameError("encoded frame longer than the largest frame", length=len(encoded))
    return parse_frame_bytes(cobs_decode(encoded))


@dataclass
class DecoderStats:
    """What a :class:`FrameDecoder` has seen: good frames, CRC failures, other errors."""

    frames_ok: int = 0
    bad_checksum: int = 0
    malformed: int = 0
    unsupported: int = 0
    bytes_in: int = 0


class FrameDecoder:
    """Streaming decoder: feed any chunks of received bytes, get frames and errors in order.

    Bytes up to each 0x00 make one frame; an overlong run without a delimiter is discarded as
    one :class:`FrameError` and decoding resumes after the next 0x00. Any chunking of the same
    byte stream gives the same results.
    """

    def __init__(self, max_encoded: int = MAX_ENCODED_BYTES) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self._max_encoded = max_encoded
        self.stats = DecoderStats()

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Add received bytes; return the frames (and errors) they complete, in order."""
        self.stats.bytes_in += len(data)
        results: list[Frame | FrameError] = []
        chunks = bytes(data).split(DELIMITER)
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            if not self._discarding:
                self._buffer += chunk
                if len(self._buffer) > self._max_encoded:
                    self._buffer.clear()
                    self._discarding = True
                    self.stats.malformed += 1
                    results.append(FrameError("no frame delimiter within the largest frame length"))
            if last:
                break
            if self._discarding:
                self._discarding = False
                continue
            if self._buffer:
                results.append(self._decode(bytes(self._buffer)))
                self._buffer.clear()
        return results

    def _decode(self, encoded: bytes) -> Frame | FrameError:
        try:
            frame = decode_frame(encoded)
        except FrameChecksumError as error:
            self.stats.bad_checksum += 1
            return error
        except UnsupportedFrame as error:
            self.stats.unsupported += 1
            return error
        except FrameError as error:
            self.stats.malformed += 1
            return error
        self.stats.frames_ok += 1
        return frame


def nak_for(error: FrameError) -> Nak:
    """The NAK answering a refused frame (sequence 0 when the header was unreadable)."""
    if isinstance(error, FrameChecksumError):
        reason = NakReason.BAD_CHECKSUM
    elif isinstance(error, UnsupportedFrame):
        reason = NakReason.UNSUPPORTED
    else:
        reason = NakReason.MALFORMED
    return Nak(acked_seq=int(error.context.get("seq", 0)), reason=reason)


# --------------------------------------------------------------------------- messages

_Text = cs.PascalString(cs.Int8ub, "utf8")
_ShortBytes = cs.Prefixed(cs.Int8ub, cs.GreedyBytes)
_LongBytes = cs.Prefixed(cs.Int16ub, cs.GreedyBytes)

MESSAGE_FORMATS: dict[MessageType, cs.Construct] = {
    MessageType.HELLO: cs.Struct("protocol_version" / cs.Int8ub, "role" / _Text, cs.Terminated),
    MessageType.DEVICE_INFO: cs.Struct(
        "serial_number" / _Text, "firmware_version" / _Text, "ksn" / _ShortBytes, cs.Terminated
    ),
    MessageType.SWIPE: cs.Struct(
        "ksn" / _ShortBytes,
        "scheme" / _Text,
        "first6" / _Text,
        "last4" / _Text,
        "pan_length" / cs.Int8ub,
        "brand" / _Text,
        "expiry" / _Text,
        "service_code" / _Text,
        "quality" / cs.Float64b,
        "decoded_at" / cs.Float64b,
        "ciphertext" / _LongBytes,
        cs.Terminated,
    ),
    MessageType.CHIP: cs.Struct("tlv" / cs.GreedyBytes),
    MessageType.HEARTBEAT: cs.Struct("uptime_ms" / cs.Int32ub, "outbox_depth" / cs.Int16ub, cs.Terminated),
    MessageType.ACK: cs.Struct("acked_seq" / cs.Int32ub, cs.Terminated),
    MessageType.NAK: cs.Struct("acked_seq" / cs.Int32ub, "reason" / cs.Int8ub, cs.Terminated),
    MessageType.FRAGMENT_ACK: cs.Struct("acked_seq" / cs.Int32ub, "received" / cs.Int64ub, cs.Terminated),
    MessageType.ERROR: cs.Struct("code" / cs.Int16ub, "text" / _Text, cs.Terminated),
    MessageType.FRAGMENT: cs.Struct(
        "inner_type" / cs.Int8ub, "index" / cs.Int8ub, "count" / cs.Int8ub, "chunk" / cs.GreedyBytes
    ),
}

_COMPILED_FORMATS = {message_type: fmt.compile() for message_type, fmt in MESSAGE_FORMATS.items()}
"""Compiled parsers; compiled code skips some length checks, so a parse is rebuilt and compared."""

_M = TypeVar("_M", bound="Message")


class Message:
    """Base of the typed message bodies; subclasses are frozen dataclasses named by ``TYPE``."""

    TYPE: ClassVar[MessageType]

    def fields(self) -> dict[str, Any]:
        """The values for :data:`MESSAGE_FORMATS` (subclasses convert richer types)."""
        return dict(vars(self))

    def to_payload(self) -> bytes:
        """The message body bytes."""
        try:
            payload: bytes = MESSAGE_FORMATS[self.TYPE].build(self.fields())
        except (cs.ConstructError, UnicodeError, struct.error, OverflowError, ValueError) as error:
            raise FrameError(f"cannot build a {self.TYPE.name} payload: {error}") from None
        return payload

    @classmethod
    def from_fields(cls: type[_M], values: dict[str, Any]) -> _M:
        """Build the message from parsed fields (subclasses convert richer types)."""
        return cls(**values)

    @classmethod
    def from_payload(cls: type[_M], payload: bytes) -> _M:
        """Parse a message body; :class:`FrameError` if it does not match the declaration."""
        compiled = _COMPILED_FORMATS[cls.TYPE]
        try:
            parsed = compiled.parse(payload)
            consistent = compiled.build(parsed) == payload
        except (cs.ConstructError, UnicodeError, struct.error, ValueError, OverflowError) as error:
            raise FrameError(f"malformed {cls.TYPE.name} payload", length=len(payload)) from error
        if not consistent:
            raise FrameError(f"malformed {cls.TYPE.name} payload", length=len(payload))
        values = {key: value for key, value in parsed.items() if not key.startswith("_")}
        try:
            return cls.from_fields(values)
        except (TypeError, ValueError) as error:
            raise FrameError(f"malformed {cls.TYPE.name} payload", length=len(payload)) from error


@dataclass(frozen=True)
class Hello(Message):
    """Sent by either side on (re)connection; ``role`` is ``"dongle"`` or ``"host"``."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    protocol_version: int = PROTOCOL_VERSION
    role: str = "host"


@dataclass(frozen=True)
class DeviceInfo(Message):
    """The dongle's identity and the KSN it will use next."""

    TYPE: ClassVar[MessageType] = MessageType.DEVICE_INFO
    serial_number: str
    firmware_version: str
    ksn: bytes


@dataclass(frozen=True)
class SwipeMessage(Message):
    """An encrypted swipe: masked card and DUKPT ciphertext of the packed tracks.

    ``quality`` is the decoder's 0–1 confidence; ``decoded_at`` the dongle's wall clock (Unix
    seconds) when the swipe finished decoding.
    """

    TYPE: ClassVar[MessageType] = MessageType.SWIPE
    data: EncryptedCardData
    quality: float = 1.0
    decoded_at: float = 0.0

    def fields(self) -> dict[str, Any]:
        masked = self.data.masked
        return {
            "ksn": self.data.ksn,
            "scheme": self.data.scheme,
            "first6": masked.first6,
            "last4": masked.last4,
            "pan_length": masked.pan_length,
            "brand": masked.brand,
            "expiry": masked.expiry or "",
            "service_code": masked.service_code or "",
            "quality": self.quality,
            "decoded_at": self.decoded_at,
            "ciphertext": self.data.ciphertext,
        }

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> SwipeMessage:
        masked = MaskedCard(
            first6=values["first6"],
            last4=values["last4"],
            pan_length=values["pan_length"],
            brand=values["brand"],
            expiry=values["expiry"] or None,
            service_code=values["service_code"] or None,
        )
        data = EncryptedCardData(
            ksn=values["ksn"], ciphertext=values["ciphertext"], masked=masked, scheme=values["scheme"]
        )
        return cls(data=data, quality=values["quality"], decoded_at=values["decoded_at"])


@dataclass(frozen=True)
class ChipMessage(Message):
    """An EMV chip read: the BER-TLV bytes the reader produced (EMV Book 3, Annex B)."""

    TYPE: ClassVar[MessageType] = MessageType.CHIP
    tlv: bytes = field(repr=False)


@dataclass(frozen=True)
class Heartbeat(Message):
    """Periodic liveness from the dongle: uptime (ms, wrapping) and swipes awaiting an ACK."""

    TYPE: ClassVar[MessageType] = MessageType.HEARTBEAT
    uptime_ms: int = 0
    outbox_depth: int = 0


@dataclass(frozen=True)
class Ack(Message):
    """Acknowledges the frame with sequence ``acked_seq``."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    acked_seq: int


@dataclass(frozen=True)
class Nak(Message):
    """Refuses a frame (``acked_seq`` 0 when its header was unreadable)."""

    TYPE: ClassVar[MessageType] = MessageType.NAK
    acked_seq: int
    reason: int = NakReason.MALFORMED


@dataclass(frozen=True)
class ErrorMessage(Message):
    """A fault the sender reports (e.g. its key is missing or its counter exhausted)."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: int
    text: str


@dataclass(frozen=True)
class Fragment(Message):
    """Piece ``index`` of ``count`` of a larger frame of type ``inner_type`` (same ``seq``).

    On a noisy line a short frame survives far more often than a long one, so the dongle sends
    swipes as fragments and resends only the missing ones (selective repeat).
    """

    TYPE: ClassVar[MessageType] = MessageType.FRAGMENT
    inner_type: int
    index: int
    count: int
    chunk: bytes = field(repr=False)


@dataclass(frozen=True)
class FragmentAck(Message):
    """Which fragments of message ``acked_seq`` have arrived: bit ``i`` of ``received`` is fragment ``i``."""

    TYPE: ClassVar[MessageType] = MessageType.FRAGMENT_ACK
    acked_seq: int
    received: int


MESSAGE_CLASSES: dict[MessageType, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        DeviceInfo,
        SwipeMessage,
        ChipMessage,
        Heartbeat,
        Ack,
        Nak,
        FragmentAck,
        ErrorMessage,
        Fragment,
    )
}

MAX_FRAGMENTS = 64
DEFAULT_CHUNK_BYTES = 16


def fragment_frame(frame: Frame, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Frame]:
    """Split ``frame`` into FRAGMENT frames of at most ``chunk_bytes`` payload each (same seq).

    The chunk grows if needed so that there are at most :data:`MAX_FRAGMENTS` fragments.
    """
    if chunk_bytes < 1:
        raise FrameError("fragment chunk size must be positive", chunk_bytes=chunk_bytes)
    chunk_bytes = max(chunk_bytes, -(-len(frame.payload) // MAX_FRAGMENTS))
    pieces = [
        frame.payload[start : start + chunk_bytes] for start in range(0, len(frame.payload), chunk_bytes)
    ]
    pieces = pieces or [b""]
    return [
        Frame.of(Fragment(frame.type, index, len(pieces), piece), frame.seq, frame.flags)
        for index, piece in enumerate(pieces)
    ]


class Reassembler:
    """Collects FRAGMENT frames and returns each whole frame once all its pieces have arrived.

    Keeps at most ``max_pending`` partial messages (the oldest is dropped first).
    """

    def __init__(self, max_pending: int = 16) -> None:
        self.max_pending = max_pending
        self._pending: dict[int, tuple[int, int, dict[int, bytes]]] = {}

    def add(self, frame: Frame) -> Frame | None:
        """Add a FRAGMENT frame; return the reassembled frame when complete, else ``None``.

        Raises :class:`FrameError` for a fragment that contradicts itself or its siblings, and
        :class:`UnsupportedFrame` for an unknown inner type.
        """
        piece = Fragment.from_payload(frame.payload) if frame.type is MessageType.FRAGMENT else None
        if piece is None:
            raise FrameError("not a FRAGMENT frame", seq=frame.seq)
        if not 1 <= piece.count <= MAX_FRAGMENTS or piece.index >= piece.count:
            raise FrameError("fragment index or count out of range", seq=frame.seq)
        try:
            inner_type = MessageType(piece.inner_type)
        except ValueError:
            raise UnsupportedFrame(
                f"unsupported message type 0x{piece.inner_type:02X} in a fragment", seq=frame.seq
            ) from None
        entry = self._pending.get(frame.seq)
        if entry is None or entry[0] != inner_type or entry[1] != piece.count:
            entry = (inner_type, piece.count, {})
            self._pending.pop(frame.seq, None)
            self._pending[frame.seq] = entry
            while len(self._pending) > self.max_pending:
                del self._pending[next(iter(self._pending))]
        entry[2][piece.index] = piece.chunk
        if len(entry[2]) < piece.count:
            return None
        del self._pending[frame.seq]
        payload = b"".join(entry[2][index] for index in range(piece.count))
        if len(payload) > MAX_PAYLOAD:
            raise FrameError("reassembled frame is over the payload limit", seq=frame.seq)
        return Frame(inner_type, frame.seq, payload, frame.flags & ~FrameFlags.RETRANSMIT)

    def received_mask(self, seq: int) -> int:
        """Bit ``i`` set for each fragment ``i`` of message ``seq`` held so far."""
        entry = self._pending.get(seq)
        return sum(1 << index for index in entry[2]) if entry else 0

    def forget(self, seq: int) -> None:
        """Drop any pieces of message ``seq``."""
        self._pending.pop(seq, None)

"""The dongle link frames: COBS, CRC-32C, messages, streaming decode, and fuzzing (typed errors only)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.protocols import link
from posbridge.protocols.errors import ChecksumError, FrameError, UnsupportedFrame
from posbridge.protocols.types import EncryptedCardData, MaskedCard

_MASKED = MaskedCard.from_pan("4000001234567899", "2912", "101")
_SWIPE = link.SwipeMessage(
    EncryptedCardData(
        ksn=bytes.fromhex("123456789012345600000001"), ciphertext=bytes(range(48)), masked=_MASKED
    ),
    quality=0.93,
    decoded_at=1_790_000_000.25,
)
_MESSAGES: list[link.Message] = [
    link.Hello(role="dongle"),
    link.DeviceInfo(serial_number="PB-0001", firmware_version="0.1.0", ksn=bytes(12)),
    _SWIPE,
    link.ChipMessage(tlv=bytes.fromhex("9F2701809F360200015A0840000012345678995F24032912315F2A020840")),
    link.Heartbeat(uptime_ms=123456, outbox_depth=3),
    link.Ack(acked_seq=7),
    link.Nak(acked_seq=8, reason=link.NakReason.BAD_CHECKSUM),
    link.ErrorMessage(code=2, text="key file missing"),
]


def test_crc32c_check_value() -> None:
    assert link.crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    ],
)
def test_cobs_known_encodings(raw: bytes, encoded: bytes) -> None:
    assert link.cobs_encode(raw) == encoded
    assert link.cobs_decode(encoded) == raw


@given(st.binary(max_size=1200))
@settings(max_examples=150)
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    encoded = link.cobs_encode(data)
    assert 0 not in encoded
    assert link.cobs_decode(encoded) == data


@pytest.mark.parametrize("message", _MESSAGES, ids=lambda message: type(message).__name__)
def test_every_message_round_trips(message: link.Message) -> None:
    frame = link.Frame.of(message, seq=41, flags=link.FrameFlags.ACK_REQUESTED)
    wire = link.encode_frame(frame)
    assert wire.endswith(b"\x00")
    assert wire.count(0) == 1
    decoded = link.decode_frame(wire[:-1])
    assert decoded == frame
    assert decoded.message() == message


def test_swipe_frame_carries_no_clear_pan() -> None:
    wire = link.encode_frame(link.Frame.of(_SWIPE, seq=1))
    assert b"4000001234567899" not in wire
    assert b"400000" in link.cobs_decode(wire[:-1])


def test_corrupted_byte_is_a_checksum_error() -> None:
    raw = bytearray(link.frame_bytes(link.Frame.of(_SWIPE, seq=3)))
    raw[20] ^= 0x40
    with pytest.raises(ChecksumError) as caught:
        link.decode_frame(link.cobs_encode(bytes(raw)))
    assert isinstance(caught.value, FrameError)


def _with_crc(body: bytes) -> bytes:
    return link.cobs_encode(body + link.crc32c(body).to_bytes(4, "big"))


def test_unknown_version_and_type_are_unsupported() -> None:
    with pytest.raises(UnsupportedFrame, match="version 9"):
        link.decode_frame(_with_crc(bytes([9, 0x10, 0]) + (5).to_bytes(4, "big") + bytes(2)))
    with pytest.raises(UnsupportedFrame, match="type 0x77") as caught:
        link.decode_frame(_with_crc(bytes([1, 0x77, 0]) + (5).to_bytes(4, "big") + bytes(2)))
    assert link.nak_for(caught.value) == link.Nak(acked_seq=5, reason=link.NakReason.UNSUPPORTED)


def test_length_field_must_match() -> None:
    with pytest.raises(FrameError, match="length"):
        link.decode_frame(
            _with_crc(bytes([1, 0x30, 0]) + (5).to_bytes(4, "big") + (9).to_bytes(2, "big") + b"ab")
        )


def test_payload_not_matching_its_type_is_a_frame_error() -> None:
    frame = link.Frame(link.MessageType.ACK, seq=1, payload=b"\x01\x02")
    decoded = link.decode_frame(link.encode_frame(frame)[:-1])
    with pytest.raises(FrameError, match="ACK"):
        decoded.message()


def test_decoder_same_result_for_any_chunking(rng: random.Random) -> None:
    frames = [link.Frame.of(message, seq=index) for index, message in enumerate(_MESSAGES * 3)]
    stream = b"".join(link.encode_frame(frame) for frame in frames)
    decoder = link.FrameDecoder()
    got: list[link.Frame | FrameError] = []
    position = 0
    while position < len(stream):
        step = rng.randint(1, 40)
        got += decoder.feed(stream[position : position + step])
        position += step
    assert got == frames
    assert decoder.stats.frames_ok == len(frames)


def test_decoder_resynchronises_after_garbage() -> None:
    good = link.Frame.of(link.Ack(acked_seq=1), seq=2)
    decoder = link.FrameDecoder()
    results = decoder.feed(b"\x07garbage\x00\x00" + link.encode_frame(good))
    assert isinstance(results[0], FrameError)
    assert results[1:] == [good]


def test_decoder_discards_overlong_runs_and_recovers() -> None:
    good = link.Frame.of(link.Heartbeat(), seq=9)
    decoder = link.FrameDecoder(max_encoded=64)
    results = decoder.feed(b"\x05" * 200)
    results += decoder.feed(b"\x05" * 10 + b"\x00" + link.encode_frame(good))
    assert sum(isinstance(result, FrameError) for result in results) == 1
    assert results[-1] == good


def test_frame_refuses_out_of_range_fields() -> None:
    with pytest.raises(FrameError):
        link.Frame(link.MessageType.ACK, seq=-1)
    with pytest.raises(FrameError):
        link.Frame(link.MessageType.CHIP, seq=1, payload=bytes(link.MAX_PAYLOAD + 1))
    with pytest.raises(FrameError):
        link.Ack(acked_seq=1 << 40).to_payload()


_FRAMES = st.builds(
    lambda message, seq, flags: link.Frame.of(message, seq=seq, flags=link.FrameFlags(flags)),
    st.sampled_from(_MESSAGES),
    st.integers(min_value=0, max_value=(1 << 32) - 1),
    st.integers(min_value=0, max_value=3),
)


def _parse_everything(encoded: bytes) -> None:
    try:
        frame = link.decode_frame(encoded)
    except FrameError:
        return
    try:
        frame.message()
    except FrameError:
        return


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_fuzz_random_bytes_only_typed_errors(data: bytes) -> None:
    _parse_everything(data)
    for result in link.FrameDecoder().feed(data):
        assert isinstance(result, link.Frame | FrameError)


@given(_FRAMES, st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=6), st.data())
@settings(max_examples=300)
def test_fuzz_mutated_frames_only_typed_errors(
    frame: link.Frame, mutations: list[tuple[int, int]], data: st.DataObject
) -> None:
    raw = bytearray(link.frame_bytes(frame))
    for position, value in mutations:
        raw[position % len(raw)] = value
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
        raw = raw[:cut] if data.draw(st.booleans()) else raw + raw[cut:]
    _parse_everything(link.cobs_encode(bytes(raw)))
    wire = bytearray(link.encode_frame(frame))
    for position, value in mutations:
        wire[position % len(wire)] = value
    for result in link.FrameDecoder().feed(bytes(wire) + link.encode_frame(frame)):
        assert isinstance(result, link.Frame | FrameError)


@given(
    st.sampled_from(list(link.MessageType)),
    st.binary(max_size=200),
)
@settings(max_examples=300)
def test_fuzz_well_framed_random_payloads(message_type: link.MessageType, payload: bytes) -> None:
    frame = link.decode_frame(link.encode_frame(link.Frame(message_type, seq=1, payload=payload))[:-1])
    try:
        message = frame.message()
    except FrameError:
        return
    assert message_type == message.TYPE


def test_fragments_reassemble_to_the_original_frame() -> None:
    frame = link.Frame.of(_SWIPE, seq=77, flags=link.FrameFlags.ACK_REQUESTED)
    pieces = link.fragment_frame(frame, chunk_bytes=10)
    assert len(pieces) > 5
    assert all(piece.seq == 77 and len(piece.payload) <= 13 for piece in pieces)
    reassembler = link.Reassembler()
    results = [reassembler.add(piece) for piece in reversed(pieces)]
    assert results[:-1] == [None] * (len(pieces) - 1)
    assert results[-1] == frame
    assert reassembler.received_mask(77) == 0


def test_fragment_count_is_capped() -> None:
    frame = link.Frame(link.MessageType.CHIP, seq=1, payload=bytes(link.MAX_PAYLOAD))
    assert len(link.fragment_frame(frame, chunk_bytes=1)) == link.MAX_FRAGMENTS


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 255),
            st.integers(0, 255),
            st.integers(0, 255),
            st.binary(max_size=8),
        ),
        max_size=30,
    )
)
@settings(max_examples=200)
def test_fuzz_reassembler_only_typed_errors(pieces: list[tuple[int, int, int, int, bytes]]) -> None:
    reassembler = link.Reassembler(max_pending=4)
    for seq, inner_type, index, count, chunk in pieces:
        payload = bytes([inner_type, index, count]) + chunk
        try:
            whole = reassembler.add(link.Frame(link.MessageType.FRAGMENT, seq=seq, payload=payload))
        except FrameError:
            continue
        if whole is not None:
            assert whole.seq == seq

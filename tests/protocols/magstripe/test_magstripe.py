"""ISO/IEC 7811-2 / 7813 track codecs and card parsing (posbridge.protocols.magstripe)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.protocols.errors import ChecksumError, ParseError, TrackError
from posbridge.protocols.magstripe import (
    ALPHA,
    BCD,
    card_from_tracks,
    decode_track_bits,
    describe_service_code,
    encode_track,
    masked_track_text,
)
from posbridge.protocols.types import Direction, Track, TrackFormat

TRACK1 = "B4111111111111111^DOE/JOHN Q^2512101000000123000"
TRACK2 = "4111111111111111=25121010000012300"


def _chars(bits: list[int], width: int) -> list[list[int]]:
    return [bits[i : i + width] for i in range(0, len(bits), width)]


def test_track2_bits_by_hand() -> None:
    bits = encode_track("1", TrackFormat.BCD)
    # ';' = 0x0B -> 1101 + parity 0; '1' -> 1000 + parity 0; '?' = 0x0F -> 1111 + parity 1
    # LRC = 0x0B ^ 0x01 ^ 0x0F = 0x05 -> 1010 + parity 1
    assert _chars(bits, 5) == [[1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 1]]


def test_track1_bits_by_hand() -> None:
    bits = encode_track("A", TrackFormat.ALPHA)
    # '%' = 0x05 -> 101000 + parity 1; 'A' = 0x21 -> 100001 + 1; '?' = 0x1F -> 111110 + 0
    # LRC = 0x05 ^ 0x21 ^ 0x1F = 0x3B -> 110111 + parity 0
    assert _chars(bits, 7) == [
        [1, 0, 1, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1, 1],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 0, 1, 1, 1, 0],
    ]


@pytest.mark.parametrize(
    ("text", "fmt", "number"),
    [
        (TRACK1, TrackFormat.ALPHA, 1),
        (TRACK2, TrackFormat.BCD, 2),
        ("01" + "2345678901" * 10 + "12", TrackFormat.BCD, 3),
        ("X" * 76, TrackFormat.ALPHA, 1),
    ],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_round_trip_every_format(text: str, fmt: TrackFormat, number: int, reverse: bool) -> None:
    bits = [0] * 15 + encode_track(text, fmt) + [0] * 15
    if reverse:
        bits.reverse()
    track = decode_track_bits(bits, min_trailing_zeros=4)
    assert (track.text, track.format, track.number) == (text, fmt, number)
    assert track.direction is (Direction.REVERSE if reverse else Direction.FORWARD)
    assert list(track.raw_bits) == encode_track(text, fmt)
    assert track.lrc_ok


def test_decoder_skips_false_start_sentinels() -> None:
    bits = encode_track("1", TrackFormat.BCD)[:5] + [0, 1] + encode_track(TRACK2, TrackFormat.BCD) + [0] * 8
    assert decode_track_bits(bits, TrackFormat.BCD).text == TRACK2


def test_parity_and_lrc_errors_are_checksum_errors() -> None:
    bits = encode_track(TRACK2, TrackFormat.BCD)
    flipped = list(bits)
    flipped[12] ^= 1
    with pytest.raises(ChecksumError):
        decode_track_bits(flipped, TrackFormat.BCD, allow_reverse=False)
    lrc_broken = list(bits)
    lrc_broken[-2] ^= 1
    lrc_broken[-1] ^= 1
    with pytest.raises(ChecksumError):
        decode_track_bits(lrc_broken, TrackFormat.BCD, allow_reverse=False)


def test_missing_pieces_are_track_errors() -> None:
    with pytest.raises(TrackError):
        decode_track_bits([0] * 40)
    with pytest.raises(ParseError):
        decode_track_bits(encode_track(TRACK2, TrackFormat.BCD)[:-5])
    with pytest.raises(TrackError, match="clocking zeros"):
        decode_track_bits([*encode_track(TRACK2, TrackFormat.BCD), 0, 1, 0, 0], min_trailing_zeros=4)
    with pytest.raises(TrackError):
        decode_track_bits([])


@pytest.mark.parametrize(
    ("text", "fmt"),
    [("ABC", TrackFormat.BCD), ("1;2", TrackFormat.BCD), ("A?B", TrackFormat.ALPHA), ("é", TrackFormat.ALPHA),
     ("1" * 105, TrackFormat.BCD), ("A" * 77, TrackFormat.ALPHA), ("a", TrackFormat.ALPHA)],
)
def test_encode_rejects_bad_text(text: str, fmt: TrackFormat) -> None:
    with pytest.raises(TrackError):
        encode_track(text, fmt)


def test_card_from_tracks() -> None:
    tracks = [decode_track_bits(encode_track(text, fmt)) for text, fmt in
              ((TRACK1, TrackFormat.ALPHA), (TRACK2, TrackFormat.BCD))]
    card = card_from_tracks(tracks)
    assert card.pan == "4111111111111111"
    assert card.name == "DOE/JOHN Q"
    assert card.expiry == "2512"
    assert card.service_code == "101"
    assert card.discretionary == "0000012300"
    assert card.masked.masked_pan == "411111******1111"
    only_track1 = card_from_tracks(tracks[:1])
    assert (only_track1.pan, only_track1.discretionary) == ("4111111111111111", "000000123000")


def test_card_from_tracks_without_expiry_fields() -> None:
    card = card_from_tracks([Track(2, TrackFormat.BCD, "4111111111111111==")])
    assert (card.expiry, card.service_code) == (None, None)


@pytest.mark.parametrize(
    "texts",
    [
        [("4111111111111112=2512101", TrackFormat.BCD)],
        [("12345=2512101", TrackFormat.BCD)],
        [("HELLO WORLD", TrackFormat.ALPHA)],
        [("4111111111111111=2512", TrackFormat.BCD), ("5555555555554444=2512", TrackFormat.BCD)],
        [],
    ],
)
def test_card_from_tracks_rejects(texts: list[tuple[str, TrackFormat]]) -> None:
    tracks = [Track(1 if fmt is TrackFormat.ALPHA else 2, fmt, text) for text, fmt in texts]
    with pytest.raises(TrackError) as raised:
        card_from_tracks(tracks)
    assert "4111111111111111" not in str(raised.value)


def test_service_code_meaning() -> None:
    assert describe_service_code("201") == {
        "interchange": "international interchange, use IC (chip) where feasible",
        "authorization": "normal authorization",
        "services": "no restrictions",
    }
    assert describe_service_code("999")["authorization"] == "reserved"
    with pytest.raises(TrackError):
        describe_service_code("12")


def test_masked_track_text() -> None:
    track1 = Track(1, TrackFormat.ALPHA, TRACK1)
    assert masked_track_text(track1) == "B411111******1111^**********^2512101************"
    track2 = Track(2, TrackFormat.BCD, TRACK2)
    assert masked_track_text(track2) == "411111******1111=2512101**********"
    other = Track(2, TrackFormat.BCD, "9=4111111111111111")
    assert "4111111111111111" not in masked_track_text(other)
    assert masked_track_text(Track(3, TrackFormat.BCD, "0123")) == "****"
    unparsed = Track(1, TrackFormat.ALPHA, "A4111111111111111^DOE/JOHN^30121011234")
    assert masked_track_text(unparsed) == "*411111******1111^***/****^***********"


_alpha_characters = [chr(c) for c in range(0x20, 0x60) if chr(c) not in "%?"]
_alpha_text = st.text(alphabet=st.sampled_from(_alpha_characters), min_size=1, max_size=76)
_bcd_text = st.text(alphabet=st.sampled_from(list("0123456789:<=>")), min_size=1, max_size=104)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), alpha=st.booleans(), lead=st.integers(0, 30), reverse=st.booleans())
def test_codec_round_trip_property(data: st.DataObject, alpha: bool, lead: int, reverse: bool) -> None:
    fmt = TrackFormat.ALPHA if alpha else TrackFormat.BCD
    text = data.draw(_alpha_text if alpha else _bcd_text)
    bits = [0] * lead + encode_track(text, fmt) + [0] * 6
    charset = ALPHA if alpha else BCD
    assert len(encode_track(text, fmt)) == (len(text) + 3) * charset.bits_per_character
    if reverse:
        bits.reverse()
    track = decode_track_bits(bits, fmt, min_trailing_zeros=4 if not reverse else 0)
    assert track.text == text


@settings(max_examples=150, deadline=None)
@given(text=_bcd_text, position=st.integers(0, 10_000))
def test_single_bit_error_is_never_accepted(text: str, position: int) -> None:
    bits = encode_track(text, TrackFormat.BCD)
    bits[position % len(bits)] ^= 1
    try:
        track = decode_track_bits(bits, TrackFormat.BCD, allow_reverse=False)
    except ParseError:
        return
    assert track.text != text or False, "a corrupted stream decoded as the original"


@settings(max_examples=200, deadline=None)
@given(bits=st.lists(st.integers(0, 1), max_size=400))
def test_decoder_fuzz_raises_only_parse_errors(bits: list[int]) -> None:
    try:
        track = decode_track_bits(bits, min_trailing_zeros=4)
    except ParseError:
        return
    assert track.lrc_ok
    again = decode_track_bits([*track.raw_bits, 0, 0, 0, 0], track.format, allow_reverse=False)
    assert again.text == track.text

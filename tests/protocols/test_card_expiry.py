"""A card's expiry date is YYMM with month 01-12 (ISO/IEC 7813 §10.2, §11.2; EMV 5F24 is YYMMDD)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.emv import CardDataError, build_tlv, card_from_tlv, chip_read_from_tlv, parse_tlv
from posbridge.protocols.errors import ParseError, TlvError, TrackError
from posbridge.protocols.magstripe import card_from_tracks
from posbridge.protocols.types import Card, Track, TrackFormat, validate_expiry

PAN = generate_test_pan(random.Random(7813), prefix="411111")


@pytest.mark.parametrize("expiry", ["0001", "3012", "2906", "9912", None])
def test_a_card_takes_a_yymm_expiry_or_none(expiry: str | None) -> None:
    assert Card(PAN, expiry).expiry == expiry


@pytest.mark.parametrize(
    "expiry", ["9999", "3000", "3013", "301", "30121", "", "30-1", "３０１２", "3012\n", " 3012"]
)
def test_a_card_refuses_an_expiry_that_is_not_yymm(expiry: str) -> None:
    with pytest.raises(TrackError) as raised:
        Card(PAN, expiry, "101")
    assert isinstance(raised.value, ParseError)
    assert isinstance(raised.value, ValueError)
    assert raised.value.context["field"] == "expiry"
    message = str(raised.value)
    assert "\n" not in message
    assert PAN not in message
    assert PAN[-4:] not in message


def test_a_card_refuses_an_expiry_that_is_not_text() -> None:
    with pytest.raises(TrackError):
        Card(PAN, 3012)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(year=st.integers(0, 99), month=st.integers(0, 99))
def test_every_four_digit_expiry_is_valid_exactly_when_its_month_is_1_to_12(year: int, month: int) -> None:
    expiry = f"{year:02d}{month:02d}"
    if 1 <= month <= 12:
        assert validate_expiry(expiry) == expiry
    else:
        with pytest.raises(TrackError):
            validate_expiry(expiry)


def test_a_track_with_month_13_is_a_track_error_without_card_data() -> None:
    with pytest.raises(TrackError) as raised:
        card_from_tracks([Track(2, TrackFormat.BCD, f"{PAN}=99131010000012300")])
    assert PAN not in str(raised.value)


def _pan_tlv(pan: str) -> bytes:
    return build_tlv("5A", bytes.fromhex(pan if len(pan) % 2 == 0 else pan + "F"))


def test_emv_5f24_yymmdd_gives_a_yymm_expiry() -> None:
    card = card_from_tlv(
        parse_tlv(_pan_tlv(PAN) + build_tlv("5F24", bytes.fromhex("291231")) + build_tlv("5F30", b"\x02\x01"))
    )
    assert (card.pan, card.expiry, card.service_code) == (PAN, "2912", "201")


@pytest.mark.parametrize("date", ["291331", "290031", "99AA31"])
def test_emv_5f24_with_a_bad_month_is_card_data_error(date: str) -> None:
    with pytest.raises(CardDataError) as raised:
        card_from_tlv(parse_tlv(_pan_tlv(PAN) + build_tlv("5F24", bytes.fromhex(date))))
    assert PAN not in str(raised.value)


def test_emv_57_with_a_bad_month_is_a_tlv_error() -> None:
    track2_equivalent = bytes.fromhex(f"{PAN}D991320100000F")
    with pytest.raises(TlvError) as raised:
        chip_read_from_tlv(build_tlv("70", build_tlv("57", track2_equivalent)))
    assert PAN not in str(raised.value)


def test_emv_5a_without_5f24_keeps_its_service_code() -> None:
    card = card_from_tlv(parse_tlv(_pan_tlv(PAN) + build_tlv("5F30", b"\x02\x01")))
    assert (card.pan, card.expiry, card.service_code) == (PAN, None, "201")


@pytest.mark.parametrize("date", ["", "29", "2912", "29123100", "3012"])
def test_emv_5f24_that_is_not_3_bytes_is_card_data_error_naming_5f24(date: str) -> None:
    objects = parse_tlv(
        _pan_tlv(PAN) + build_tlv("5F24", bytes.fromhex(date)) + build_tlv("5F30", b"\x02\x01")
    )
    with pytest.raises(CardDataError) as raised:
        card_from_tlv(objects)
    assert raised.value.context["tag"] == "5F24"
    assert PAN not in str(raised.value)
    assert PAN[-4:] not in str(raised.value)

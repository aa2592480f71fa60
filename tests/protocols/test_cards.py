"""Luhn, brand, masking and redaction of PANs (posbridge.protocols.cards)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from posbridge.protocols.cards import (
    card_brand,
    generate_test_pan,
    luhn_valid,
    mask_pan,
    redact_pans,
)
from posbridge.protocols.errors import ParseError, PosBridgeError
from posbridge.protocols.types import Card, MaskedCard


def test_luhn_known_numbers() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111111111a1111")
    assert not luhn_valid("")


def test_brands() -> None:
    assert card_brand("4111111111111111") == "visa"
    assert card_brand("5555555555554444") == "mastercard"
    assert card_brand("2223003122003222") == "mastercard"
    assert card_brand("378282246310005") == "amex"
    assert card_brand("6011111111111117") == "discover"
    assert card_brand("3530111333300000") == "jcb"
    assert card_brand("9999999999999995") == "unknown"


def test_mask_keeps_first6_last4() -> None:
    assert mask_pan("4111111111111111") == "411111******1111"
    assert mask_pan("378282246310005") == "378282*****0005"


@given(st.integers(min_value=0, max_value=2**32))
def test_generated_pans_are_luhn_valid_and_masked_in_text(seed: int) -> None:
    pan = generate_test_pan(random.Random(seed))
    assert luhn_valid(pan)
    text = redact_pans(f"declined card {pan} at lane 3")
    assert pan not in text
    assert mask_pan(pan) in text


def test_errors_never_show_a_pan() -> None:
    pan = generate_test_pan(random.Random(1))
    error = ParseError(f"bad track near {pan}")
    assert pan not in str(error)
    assert pan not in repr(error)
    assert pan not in error.message
    assert all(pan not in str(argument) for argument in error.args)
    assert isinstance(error, ValueError)
    assert isinstance(error, PosBridgeError)


def test_card_repr_is_masked() -> None:
    pan = generate_test_pan(random.Random(2))
    card = Card(pan=pan, expiry="2812", service_code="101", name="TEST/CARD")
    assert pan not in repr(card)
    assert "TEST" not in repr(card)
    assert card.masked == MaskedCard.from_pan(pan, "2812", "101")
    assert card.masked.masked_pan == mask_pan(pan)
    assert card.masked.to_json()["pan"] == mask_pan(pan)

"""Format code B fields after the PAN (ISO/IEC 7813 §10.2 Track 1, §11.2 Track 2): expiry YYMM,
service code, discretionary data. A track whose parity and LRC check out but whose expiry or service
code field is present and malformed is a malformed track (TrackError, no card data in the message).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.protocols.cards import generate_test_pan, mask_pan
from posbridge.protocols.errors import TrackError
from posbridge.protocols.magstripe import card_from_tracks, decode_track_bits, encode_track, masked_track_text
from posbridge.protocols.types import Card, Track, TrackFormat

PAN = generate_test_pan(random.Random(7811), prefix="400000")
NAME = "DOE/JANE"


def _track1(rest: str) -> Track:
    return Track(1, TrackFormat.ALPHA, f"B{PAN}^{NAME}^{rest}")


def _track2(rest: str) -> Track:
    return Track(2, TrackFormat.BCD, f"{PAN}={rest}")


def _swiped(track: Track) -> Track:
    """The track as the decoder returns it after a clean read (parity and LRC good)."""
    decoded = decode_track_bits([0] * 8 + encode_track(track.text, track.format) + [0] * 8)
    assert decoded.lrc_ok
    assert decoded.text == track.text
    return decoded


@pytest.mark.parametrize(
    ("make", "rest", "field"),
    [
        (_track1, "XX12101000000123", "expiry"),
        (_track1, "25A2101000000123", "expiry"),
        (_track1, "2513101000000123", "expiry"),
        (_track1, "25 2101000000123", "expiry"),
        (_track1, "25", "expiry"),
        (_track1, "2512X01000000123", "service_code"),
        (_track1, "2512 01000000123", "service_code"),
        (_track1, "251210", "service_code"),
        (_track2, "2:12101000000123", "expiry"),
        (_track2, "9999101000000123", "expiry"),
        (_track2, "2500101000000123", "expiry"),
        (_track2, "2512<01000000123", "service_code"),
        (_track2, "25121", "service_code"),
    ],
)
def test_a_malformed_expiry_or_service_code_is_a_track_error(
    make: Callable[[str], Track], rest: str, field: str
) -> None:
    track = _swiped(make(rest))
    with pytest.raises(TrackError) as raised:
        card_from_tracks([track])
    assert raised.value.context["field"] == field
    message = str(raised.value)
    assert PAN not in message
    assert NAME not in message
    assert rest not in message


def test_a_malformed_track1_sinks_the_swipe_even_with_a_good_track2() -> None:
    tracks = [_swiped(_track1("XX12101000000123")), _swiped(_track2("2512101000000"))]
    with pytest.raises(TrackError, match="Track 1"):
        card_from_tracks(tracks)


@pytest.mark.parametrize(
    ("make", "rest", "expiry", "service_code", "discretionary"),
    [
        (_track1, "2512101000000123", "2512", "101", "000000123"),
        (_track1, "^101000000123", None, "101", "000000123"),
        (_track1, "^^000000123", None, None, "000000123"),
        (_track1, "2512^ABC", "2512", None, "ABC"),
        (_track1, "", None, None, None),
        (_track1, "2512", "2512", None, None),
        (_track2, "2512101000000", "2512", "101", "000000"),
        (_track2, "==", None, None, None),
        (_track2, "=201", None, "201", None),
        (_track2, "2512=", "2512", None, None),
        (_track2, "2512101", "2512", "101", None),
    ],
)
def test_absent_fields_are_empty_or_a_separator(
    make: Callable[[str], Track],
    rest: str,
    expiry: str | None,
    service_code: str | None,
    discretionary: str | None,
) -> None:
    card = card_from_tracks([_swiped(make(rest))])
    assert (card.pan, card.expiry, card.service_code, card.discretionary) == (
        PAN,
        expiry,
        service_code,
        discretionary,
    )


def test_a_malformed_track_is_still_shown_masked() -> None:
    track = _track1("XX12101000000123")
    shown = masked_track_text(track)
    assert PAN not in shown
    assert "DOE" not in shown
    assert "000000123" not in shown


def _card_or_error(track: Track) -> Card | TrackError:
    try:
        return card_from_tracks([track])
    except TrackError as error:
        return error


_field_characters = st.sampled_from(list("0123456789:<=>^AZ /"))


@settings(max_examples=200, deadline=None)
@given(rest=st.text(_field_characters, max_size=24), alpha=st.booleans())
def test_any_field_text_gives_a_well_formed_card_or_a_track_error(rest: str, alpha: bool) -> None:
    rest = rest if alpha else "".join(char for char in rest if char in "0123456789:<=>")
    track = _track1(rest) if alpha else _track2(rest)
    outcome = _card_or_error(track)
    assert PAN not in masked_track_text(track)
    if isinstance(outcome, TrackError):
        assert PAN not in str(outcome)
        return
    assert outcome.pan == PAN
    assert outcome.expiry is None or (outcome.expiry.isdigit() and 1 <= int(outcome.expiry[2:]) <= 12)
    assert outcome.service_code is None or (len(outcome.service_code) == 3 and outcome.service_code.isdigit())


@settings(max_examples=100, deadline=None)
@given(year=st.integers(0, 99), month=st.integers(0, 99), service=st.integers(0, 999))
def test_a_digit_expiry_parses_exactly_when_its_month_is_1_to_12(year: int, month: int, service: int) -> None:
    track = _track2(f"{year:02d}{month:02d}{service:03d}1234")
    if 1 <= month <= 12:
        card = card_from_tracks([track])
        assert (card.expiry, card.service_code) == (f"{year:02d}{month:02d}", f"{service:03d}")
    else:
        with pytest.raises(TrackError):
            card_from_tracks([track])


@pytest.mark.parametrize(
    ("track", "shown_after_pan"),
    [
        (_track2("9913101987654321"), "=****************"),
        (_track2("2512:01987654321000"), "=*******************"),
        (_track1("9913101987654321000"), "^********^*******************"),
    ],
)
def test_a_malformed_format_b_track_hides_all_but_the_masked_pan(track: Track, shown_after_pan: str) -> None:
    """Its fields cannot be told apart, so no part of the discretionary data (which may hold a
    card verification value) is shown, not even the last four digits of a PAN-length digit run."""
    shown = masked_track_text(track)
    assert shown.endswith(shown_after_pan)
    assert shown.removesuffix(shown_after_pan) in (mask_pan(PAN), "B" + mask_pan(PAN))
    assert "4321" not in shown
    assert "9913" not in shown

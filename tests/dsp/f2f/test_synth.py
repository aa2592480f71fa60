"""The swipe synthesizer (posbridge.dsp.synth)."""

from __future__ import annotations

import numpy as np
import pytest
from posbridge.dsp.synth import BITS_PER_CM, SwipeParams, card_tracks, synthesize_swipe, test_card_tracks
from posbridge.protocols.cards import luhn_valid
from posbridge.protocols.errors import ConfigError
from posbridge.protocols.magstripe import card_from_tracks, encode_track
from posbridge.protocols.types import Card, Track, TrackFormat


def test_test_cards_are_luhn_valid_and_fit_their_tracks(np_rng: np.random.Generator) -> None:
    for _ in range(50):
        card, tracks = test_card_tracks(np_rng)
        assert luhn_valid(card.pan)
        assert [fmt for _, fmt in tracks] == [TrackFormat.ALPHA, TrackFormat.BCD]
        for text, fmt in tracks:
            encode_track(text, fmt)
        assert tracks[1][0].startswith(card.pan + "=")


def test_shape_dtype_level_and_duration(np_rng: np.random.Generator) -> None:
    _, tracks = test_card_tracks(np_rng)
    params = SwipeParams(rate=44_100, speed_cm_s=50, silence_s=0.2, peak=0.4, snr_db=None)
    samples = synthesize_swipe([tracks[1]], params, np_rng)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert np.max(np.abs(samples)) == pytest.approx(0.4, rel=1e-3)
    cells = 20 + len(encode_track(*tracks[1])) + 20
    swipe_seconds = (cells / BITS_PER_CM[TrackFormat.BCD] + 0.6) / 50
    assert samples.size / 44_100 == pytest.approx(0.4 + swipe_seconds, rel=0.02)
    assert np.max(np.abs(samples[: int(0.19 * 44_100)])) < 1e-6


def test_faster_swipes_are_shorter_and_speed_ramps_raise_amplitude(np_rng: np.random.Generator) -> None:
    _, tracks = test_card_tracks(np_rng)
    slow = synthesize_swipe([tracks[0]], SwipeParams(speed_cm_s=20, snr_db=None, silence_s=0), np_rng)
    fast = synthesize_swipe([tracks[0]], SwipeParams(speed_cm_s=80, snr_db=None, silence_s=0), np_rng)
    assert slow.size == pytest.approx(4 * fast.size, rel=0.02)
    ramp = synthesize_swipe(
        [tracks[0]], SwipeParams(speed_ramp=5, snr_db=None, silence_s=0, ac_coupling_hz=None), np_rng
    )
    quarter = ramp.size // 4
    assert np.abs(ramp[-quarter:]).max() > 3 * np.abs(ramp[:quarter]).max()


def test_stereo_and_reverse(np_rng: np.random.Generator) -> None:
    card, _ = test_card_tracks(np_rng)
    stereo = synthesize_swipe(card, SwipeParams(channels=2, snr_db=None, ac_coupling_hz=None), np_rng)
    assert stereo.shape[1] == 2
    assert not np.allclose(stereo[:, 0], stereo[:, 1])
    params = SwipeParams(snr_db=None, ac_coupling_hz=None, silence_s=0)
    forward = synthesize_swipe([("123456", TrackFormat.BCD)], params, np_rng)
    reverse = SwipeParams(snr_db=None, ac_coupling_hz=None, silence_s=0, reverse=True)
    backward = synthesize_swipe([("123456", TrackFormat.BCD)], reverse, np_rng)
    assert abs(forward.size - backward.size) <= 1
    size = min(forward.size, backward.size)
    assert abs(np.corrcoef(forward[:size], backward[::-1][:size])[0, 1]) > 0.8


def test_noise_follows_the_snr(np_rng: np.random.Generator) -> None:
    params = SwipeParams(snr_db=None, ac_coupling_hz=None, silence_s=0.5)
    clean = synthesize_swipe([("1234567890", TrackFormat.BCD)], params, np_rng)
    noisy = synthesize_swipe(
        [("1234567890", TrackFormat.BCD)], SwipeParams(snr_db=10, ac_coupling_hz=None, silence_s=0.5), np_rng
    )
    head = int(0.5 * 48_000)
    swipe = slice(head, clean.size - head)
    noise_power = float(np.mean(noisy[:head] ** 2))
    signal_power = float(np.mean(noisy[swipe] ** 2)) - noise_power
    assert 10 * np.log10(signal_power / noise_power) == pytest.approx(10, abs=2.5)


@pytest.mark.parametrize(
    "bad",
    [dict(rate=0), dict(speed_cm_s=0), dict(speed_ramp=0), dict(wobble=1.5), dict(polarity=0),
     dict(channels=3), dict(contact_ramp_from=0), dict(clip_level=2), dict(leading_zeros=-1)],
)
def test_bad_parameters_are_config_errors(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SwipeParams(**bad)  # type: ignore[arg-type]


def test_no_tracks_is_a_config_error(np_rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError):
        synthesize_swipe([], SwipeParams(), np_rng)


def test_card_tracks_parse_back_to_the_card(np_rng: np.random.Generator) -> None:
    card, tracks = test_card_tracks(np_rng)
    assert card_tracks(card) == tracks
    long_tail = Card(pan=card.pan, expiry="3012", service_code="201", name="DOE/JO", discretionary="9" * 30)
    (text1, fmt1), (text2, fmt2) = card_tracks(long_tail)
    assert (fmt1, fmt2) == (TrackFormat.ALPHA, TrackFormat.BCD)
    assert len(text2) == 37
    parsed = card_from_tracks([Track(1, fmt1, text1), Track(2, fmt2, text2)])
    fields = (parsed.pan, parsed.expiry, parsed.service_code, parsed.name)
    assert fields == (card.pan, "3012", "201", "DOE/JO")
    with pytest.raises(ConfigError):
        card_tracks([])

"""F2F demodulation of synthesized swipes across the synthesizer's parameter space (posbridge.dsp.f2f)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from posbridge.dsp.f2f import decode_bits, decode_segment, recover_bits, recover_bursts
from posbridge.dsp.synth import BITS_PER_CM, SwipeParams, synthesize_swipe, test_card_tracks
from posbridge.protocols.errors import AudioFormatError
from posbridge.protocols.magstripe import encode_track
from posbridge.protocols.types import Direction, TrackFormat

SWEEP = [
    # rate, speed cm/s, ramp, wobble, snr dB, hum dB, clip, contact from, ac Hz
    (8_000, 12, 1.0, 0.0, 35, None, None, 1.0, 20),
    (16_000, 25, 2.0, 0.1, 30, -15, None, 0.3, 10),
    (22_050, 40, 0.4, 0.2, 25, None, 0.7, 0.2, 30),
    (32_000, 60, 3.0, 0.0, 28, -10, None, 0.2, None),
    (44_100, 150, 1.0, 0.0, 32, None, None, 0.5, 20),
    (44_100, 20, 4.0, 0.2, 24, -8, 0.6, 0.1, 20),
    (48_000, 8, 1.5, 0.1, 30, -6, None, 0.2, 5),
    (48_000, 100, 0.2, 0.1, 20, -12, None, 0.1, 15),
    (96_000, 80, 4.0, 0.2, 18, -10, 0.8, 0.1, 20),
    (192_000, 30, 2.5, 0.15, 24, -10, None, 0.2, 20),
]


def _fits(rate: float, speed: float, ramp: float, wobble: float, fmt: TrackFormat) -> bool:
    fastest = speed * math.sqrt(max(ramp, 1 / ramp)) * (1 + wobble)
    return rate / (fastest * BITS_PER_CM[fmt]) >= 3.2


@pytest.mark.parametrize(("rate", "speed", "ramp", "wobble", "snr", "hum", "clip", "contact", "ac"), SWEEP)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("track_index", [0, 1])
def test_parameter_sweep_decodes_exactly(
    np_rng: np.random.Generator,
    rate: float,
    speed: float,
    ramp: float,
    wobble: float,
    snr: float,
    hum: float | None,
    clip: float | None,
    contact: float,
    ac: float | None,
    reverse: bool,
    track_index: int,
) -> None:
    _, tracks = test_card_tracks(np_rng)
    text, fmt = tracks[track_index]
    if not _fits(rate, speed, ramp, wobble, fmt):
        pytest.skip("too few samples per bit cell for this track at this speed")
    params = SwipeParams(
        rate=rate, speed_cm_s=speed, speed_ramp=ramp, wobble=wobble, snr_db=snr, hum_db=hum, clip_level=clip,
        contact_ramp_from=contact, ac_coupling_hz=ac, reverse=reverse, polarity=-1 if reverse else 1,
    )
    samples = synthesize_swipe([(text, fmt)], params, np_rng)
    decoded = decode_segment(samples, rate)
    assert [track.text for track in decoded] == [text]
    assert decoded[0].format is fmt
    assert decoded[0].direction is (Direction.REVERSE if reverse else Direction.FORWARD)


def test_track1_at_three_and_a_half_samples_per_bit(np_rng: np.random.Generator) -> None:
    _, tracks = test_card_tracks(np_rng)
    params = SwipeParams(rate=44_100, speed_cm_s=150, snr_db=30)
    assert 44_100 / (150 * BITS_PER_CM[TrackFormat.ALPHA]) < 3.6
    samples = synthesize_swipe([tracks[0]], params, np_rng)
    assert [track.text for track in decode_segment(samples, 44_100)] == [tracks[0][0]]


def test_integer_and_scaled_input_give_the_same_tracks(np_rng: np.random.Generator) -> None:
    _, tracks = test_card_tracks(np_rng)
    samples = synthesize_swipe([tracks[1]], SwipeParams(), np_rng)
    as_int16 = np.round(samples * 32767).astype(np.int16)
    tiny = samples * 1e-4
    texts = {track.text for data in (samples, as_int16, tiny) for track in decode_segment(data, 48_000)}
    assert texts == {tracks[1][0]}


def test_recover_bits_returns_the_recorded_bits(np_rng: np.random.Generator) -> None:
    text = "4000001234567899=29121010000000000"
    params = SwipeParams(snr_db=35, leading_zeros=20, trailing_zeros=20)
    samples = synthesize_swipe([(text, TrackFormat.BCD)], params, np_rng)
    bursts = recover_bits(samples, 48_000)
    assert len(bursts) == 1
    recorded = "".join(map(str, encode_track(text, TrackFormat.BCD)))
    assert recorded in "".join(map(str, bursts[0]))
    reversed_bursts = recover_bits(samples[::-1].copy(), 48_000)
    assert recorded[::-1] in "".join(map(str, reversed_bursts[0]))


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros(0),
        np.zeros(1),
        np.array([np.nan] * 1000),
        np.array([np.inf, -np.inf, 0.0] * 500),
        np.zeros(48_000),
        np.random.default_rng(3).normal(0, 0.1, 48_000),
        np.random.default_rng(4).normal(0, 1e-30, 4_800),
    ],
    ids=["empty", "one-sample", "nan", "inf", "silence", "noise", "denormal-noise"],
)
def test_bad_or_empty_input_gives_no_track(samples: np.ndarray) -> None:
    assert decode_segment(samples, 48_000) == ()
    assert all(len(bits) >= 16 for bits in recover_bits(samples, 48_000))


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), 10, 1e9])
def test_impossible_rate_is_a_typed_error(rate: float) -> None:
    with pytest.raises(AudioFormatError):
        decode_segment(np.zeros(100), rate)


def test_multichannel_array_is_a_typed_error() -> None:
    with pytest.raises(AudioFormatError):
        decode_segment(np.zeros((100, 2)), 48_000)


def test_noise_never_gives_a_track() -> None:
    rng = np.random.default_rng(99)
    for rate in (8_000, 44_100, 96_000):
        for _ in range(5):
            noise = rng.normal(0, 1, int(rate * 0.5))
            assert decode_segment(noise, rate) == ()
            tone = np.sin(2 * np.pi * rng.uniform(100, rate / 3) * np.arange(int(rate * 0.5)) / rate)
            assert decode_segment(tone + 0.1 * noise, rate) == ()


@pytest.mark.parametrize("profile", ["uniform", "confident"])
def test_random_bursts_never_give_a_track(profile: str) -> None:
    """Garbage bits (what a clock locked on noise would produce) must never pass as a track,
    even with the weak-bit re-decision that parity failures trigger."""
    rng = np.random.default_rng(2026 if profile == "uniform" else 2027)
    for _ in range(800):
        size = int(rng.integers(50, 700))
        bits = rng.integers(0, 2, size).tolist()
        if profile == "uniform":
            confidence = rng.uniform(0, 1, size)
        else:
            confidence = np.where(rng.random(size) < 0.08, 0.1, 0.9)
        assert decode_bits(bits, confidence.tolist()) is None


def test_weak_bit_is_re_decided() -> None:
    text = "4000001234567899=29121010000000000"
    bits = [0] * 12 + encode_track(text, TrackFormat.BCD) + [0] * 12
    confidence = [0.95] * len(bits)
    flipped = 12 + 5 * 7 + 2
    bits[flipped] ^= 1
    confidence[flipped] = 0.05
    assert decode_bits(bits) is None
    track = decode_bits(bits, confidence)
    assert track is not None
    assert track.text == text
    confidence[flipped] = 0.9
    assert decode_bits(bits, confidence) is None


def test_bursts_carry_their_cell_boundaries(np_rng: np.random.Generator) -> None:
    _, tracks = test_card_tracks(np_rng)
    params = SwipeParams(snr_db=35, speed_ramp=2.0, silence_s=0.05, ac_coupling_hz=None)
    samples = synthesize_swipe([tracks[1]], params, np_rng)
    (burst,) = recover_bursts(samples, 48_000)
    cells = np.diff(burst.boundaries)
    assert len(burst.boundaries) == len(burst.bits) + 1
    assert (burst.start, burst.end) == (burst.boundaries[0], burst.boundaries[-1])
    assert np.all(cells > 0)
    assert cells[-20:].mean() < 0.6 * cells[:20].mean()  # the hand doubled its speed
    assert 0.05 * 48_000 < burst.start < burst.end < samples.size

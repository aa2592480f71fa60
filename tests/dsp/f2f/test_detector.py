"""Streaming swipe detection (posbridge.dsp.detector): block-size invariance, memory, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from posbridge.dsp.detector import SwipeDetector, decode_recording
from posbridge.dsp.synth import SwipeParams, synthesize_swipe, test_card_tracks
from posbridge.protocols.errors import AudioFormatError, ConfigError
from posbridge.protocols.magstripe import card_from_tracks
from posbridge.protocols.types import Swipe, TrackFormat

RATE = 48_000


Session = tuple[NDArray[np.float32], list[tuple[float, str]]]


def _session(rng: np.random.Generator, seconds: float, count: int) -> Session:
    """Room noise with ``count`` swipes at random moments: samples and (start second, track text)."""
    session = rng.normal(0, 0.001, int(seconds * RATE)).astype(np.float32)
    slots = np.sort(rng.choice(np.arange(1, int(seconds) - 1), size=count, replace=False))
    truth = []
    for slot in slots:
        _, tracks = test_card_tracks(rng)
        spec = tracks[int(rng.integers(0, 2))]
        params = SwipeParams(
            rate=RATE, speed_cm_s=float(rng.uniform(15, 100)), speed_ramp=float(rng.uniform(0.5, 2.5)),
            snr_db=None, silence_s=0, ac_coupling_hz=None, reverse=bool(rng.random() < 0.5),
            peak=float(rng.uniform(0.05, 0.6)), contact_ramp_from=0.3,
        )
        swipe = synthesize_swipe([spec], params, rng)
        start = int((slot + rng.uniform(0, 0.3)) * RATE)
        session[start : start + swipe.size] += swipe
        truth.append((start / RATE, spec[0]))
    return session, truth


def _feed(detector: SwipeDetector, samples: NDArray[np.generic], sizes: list[int]) -> list[Swipe]:
    found: list[Swipe] = []
    position = 0
    for size in sizes:
        found += detector.process(samples[position : position + size])
        position += size
    found += detector.process(samples[position:])
    return found + detector.flush()


def test_session_gives_every_swipe_in_order(np_rng: np.random.Generator) -> None:
    session, truth = _session(np_rng, 24, 8)
    swipes = decode_recording(session, RATE)
    assert [swipe.tracks[0].text for swipe in swipes] == [text for _, text in truth]
    for swipe, (start, _) in zip(swipes, truth, strict=True):
        assert start - 0.05 <= swipe.started_at <= start + 0.2
        assert swipe.started_at < swipe.ended_at < start + 1.5


@pytest.mark.parametrize("seed", [1, 2])
def test_random_block_sizes_give_the_same_swipes(np_rng: np.random.Generator, seed: int) -> None:
    session, _ = _session(np_rng, 20, 6)
    batch = decode_recording(session, RATE)
    sizes = np.random.default_rng(seed).integers(1, 8193, size=session.size // 2000).tolist()
    assert _feed(SwipeDetector(RATE), session, sizes) == batch


def test_tiny_blocks_give_the_same_swipes(np_rng: np.random.Generator) -> None:
    session, _ = _session(np_rng, 3, 1)
    sizes = np.random.default_rng(5).integers(1, 97, size=session.size // 48).tolist()
    assert _feed(SwipeDetector(RATE), session, sizes) == decode_recording(session, RATE)


def test_int16_blocks_match_float(np_rng: np.random.Generator) -> None:
    session, truth = _session(np_rng, 6, 2)
    as_int16 = np.round(np.clip(session, -1, 1) * 32767).astype(np.int16)
    swipes = decode_recording(as_int16, RATE)
    assert [swipe.tracks[0].text for swipe in swipes] == [text for _, text in truth]


def test_swipe_is_reported_soon_after_it_ends(np_rng: np.random.Generator) -> None:
    session, _ = _session(np_rng, 4, 1)
    detector = SwipeDetector(RATE)
    block = RATE // 100
    for index in range(0, session.size, block):
        if detector.process(session[index : index + block]):
            reported_at = (index + block) / RATE
            break
    else:
        pytest.fail("the swipe was never reported")
    assert detector.flush() == []
    swipe = decode_recording(session, RATE)[0]
    assert swipe.ended_at < reported_at < swipe.ended_at + 0.15


def test_stereo_heads_give_one_swipe_with_both_tracks(np_rng: np.random.Generator) -> None:
    card, _ = test_card_tracks(np_rng)
    stereo = synthesize_swipe(card, SwipeParams(channels=2, speed_cm_s=40, silence_s=0.3), np_rng)
    assert stereo.shape[1] == 2
    swipes = decode_recording(stereo, RATE)
    assert len(swipes) == 1
    assert [track.format for track in swipes[0].tracks] == [TrackFormat.ALPHA, TrackFormat.BCD]
    parsed = card_from_tracks(swipes[0].tracks)
    assert (parsed.pan, parsed.name, parsed.expiry) == (card.pan, card.name, card.expiry)


def test_memory_stays_bounded_and_nothing_is_found_while_idle() -> None:
    detector = SwipeDetector(RATE)
    rng = np.random.default_rng(8)
    largest = 0
    for minute in range(10):
        gain = 1.0 + minute  # an input AGC turning the room up
        for _ in range(60):
            assert detector.process(rng.normal(0, 0.001 * gain, RATE).astype(np.float32)) == []
            largest = max(largest, detector.buffered_samples)
    assert detector.flush() == []
    assert largest <= RATE * 0.3


@pytest.mark.parametrize(
    "noise",
    ["hum", "clicks", "tone", "thump", "nan"],
)
def test_noise_only_recordings_claim_no_tracks(noise: str) -> None:
    rng = np.random.default_rng(12)
    t = np.arange(3 * RATE) / RATE
    base = rng.normal(0, 0.001, t.size)
    if noise == "hum":
        base += 0.3 * np.sin(2 * np.pi * 60 * t) + 0.1 * np.sin(2 * np.pi * 180 * t)
    elif noise == "clicks":
        for at in rng.integers(0, t.size - 50, 30):
            base[at : at + 20] += rng.uniform(-0.9, 0.9)
    elif noise == "tone":
        base += np.where((t > 0.5) & (t < 2.5), 0.5 * np.sin(2 * np.pi * 1200 * t), 0)
    elif noise == "thump":
        start = RATE
        base[start : start + 9000] += 0.9 * np.exp(-np.arange(9000) / 1500)
    else:
        base[RATE : RATE + 100] = np.nan
    assert all(swipe.tracks == () for swipe in decode_recording(base.astype(np.float32), RATE))


def test_bad_input_is_a_typed_error_or_no_swipe() -> None:
    assert decode_recording(np.zeros(0, dtype=np.float32), RATE) == []
    assert decode_recording(np.zeros(1, dtype=np.int16), RATE) == []
    assert decode_recording(np.zeros((RATE, 2), dtype=np.float32), RATE) == []
    with pytest.raises(AudioFormatError):
        decode_recording(np.zeros(10), 0)
    with pytest.raises(AudioFormatError):
        SwipeDetector("48000x")  # type: ignore[arg-type]
    assert SwipeDetector(np.int64(44_100)).rate == 44_100.0  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError):
        decode_recording(np.zeros((2, 2, 2)), RATE)
    with pytest.raises(AudioFormatError):
        SwipeDetector(RATE, 2).process(np.zeros((10, 3)))
    with pytest.raises(AudioFormatError):
        SwipeDetector(RATE).process(np.array(["a", "b"]))
    with pytest.raises(ConfigError):
        SwipeDetector(RATE, 0)
    with pytest.raises(ConfigError):
        SwipeDetector(RATE, no_such_setting=1)


def test_segments_reach_the_callback_with_pre_roll(np_rng: np.random.Generator) -> None:
    session, truth = _session(np_rng, 4, 1)
    segments: list[tuple[int, float, int]] = []
    detector = SwipeDetector(RATE, on_segment=lambda channel, start, samples: segments.append(
        (channel, start, samples.size)))
    swipes = detector.process(session) + detector.flush()
    assert len(segments) == 1
    channel, start, size = segments[0]
    assert channel == 0
    assert start < truth[0][0] <= swipes[0].started_at + 0.05
    assert start + size / RATE >= swipes[0].ended_at


def test_long_tone_then_swipe_is_block_size_invariant(np_rng: np.random.Generator) -> None:
    """A tone longer than max_swipe_s forces a close and resets the floor; blocks must not matter."""
    session, truth = _session(np_rng, 5, 1)
    mixed = np.concatenate((np.random.default_rng(2).normal(0, 0.001, 6 * RATE).astype(np.float32), session))
    t = np.arange(mixed.size) / RATE
    mixed += np.where((t > 0.2) & (t < 5.5), 0.05 * np.sin(2 * np.pi * 700 * t), 0.0).astype(np.float32)
    batch = decode_recording(mixed, RATE)
    assert [swipe.tracks[0].text for swipe in batch] == [text for _, text in truth]
    sizes = np.random.default_rng(3).integers(1, 8193, size=mixed.size // 3000).tolist()
    assert _feed(SwipeDetector(RATE), mixed, sizes) == batch


def test_stereo_blocks_give_the_same_swipes(np_rng: np.random.Generator) -> None:
    parts = [np_rng.normal(0, 0.001, (RATE // 2, 2)).astype(np.float32)]
    for _ in range(3):
        card, _ = test_card_tracks(np_rng)
        params = SwipeParams(channels=2, speed_cm_s=float(np_rng.uniform(20, 90)))
        parts.append(synthesize_swipe(card, params, np_rng))
    stereo = np.concatenate(parts)
    batch = decode_recording(stereo, RATE)
    assert [len(swipe.tracks) for swipe in batch] == [2, 2, 2]
    sizes = np.random.default_rng(9).integers(1, 4097, size=stereo.shape[0] // 1500).tolist()
    assert _feed(SwipeDetector(RATE, 2), stereo, sizes) == batch
    assert _feed(SwipeDetector(RATE, 2), np.round(stereo * 32767).astype(np.int16), sizes) != []


ONE_PASS_PARAMS = {
    "default": SwipeParams(),
    "slow-decelerating": SwipeParams(speed_cm_s=12.0, speed_ramp=0.4),
    "fast-accelerating": SwipeParams(speed_cm_s=100.0, speed_ramp=3.0, contact_ramp_from=0.2),
    "hard": SwipeParams(speed_ramp=5.0, wobble=0.3, contact_ramp_from=0.1, snr_db=24.0, hum_db=-10.0),
    "reverse-22k": SwipeParams(rate=22_050.0, reverse=True),
    "long-zeros-clipped": SwipeParams(leading_zeros=60, trailing_zeros=60, clip_level=0.5, snr_db=45.0),
    "stereo": SwipeParams(channels=2),
    "stereo-ramp": SwipeParams(channels=2, speed_ramp=4.0, contact_ramp_from=0.1),
}


@pytest.mark.parametrize("room_rms", [0.0, 1e-4, 1e-3])
@pytest.mark.parametrize("name", sorted(ONE_PASS_PARAMS))
def test_one_pass_of_a_card_is_one_swipe(np_rng: np.random.Generator, name: str, room_rms: float) -> None:
    """A synthesized swipe (its own noise 35 dB under the signal) in a quieter or silent room: the
    squelch must not reopen on the swipe's noisy tail, nor a second segment's pre-roll reach back
    into the swipe, so batch and any block sizes give exactly one Swipe holding every track."""
    params = ONE_PASS_PARAMS[name]
    card, tracks = test_card_tracks(np_rng)
    swipe = synthesize_swipe(card, params, np_rng)
    room = np_rng.normal(0.0, room_rms, (2 * round(params.rate), *swipe.shape[1:])).astype(np.float32)
    half = room.shape[0] // 2
    recording = np.concatenate((room[:half], swipe + room[: swipe.shape[0]], room[half:]))
    expected = {1: tracks[0][0]} if params.channels == 1 else {1: tracks[0][0], 2: tracks[1][0]}

    batch = decode_recording(recording, params.rate)
    assert len(batch) == 1
    assert {track.number: track.text for track in batch[0].tracks} == expected
    sizes = np_rng.integers(1, 8193, size=recording.shape[0] // 2000).tolist()
    streamed = _feed(SwipeDetector(params.rate, params.channels), recording, sizes)
    assert streamed == batch


def test_pre_roll_never_reaches_into_the_previous_swipe(np_rng: np.random.Generator) -> None:
    """Two swipes 80 ms apart: both decode, and the second segment starts where the first ended."""
    parts = [np_rng.normal(0, 1e-4, RATE // 2).astype(np.float32)]
    texts = []
    for _ in range(2):
        _, tracks = test_card_tracks(np_rng)
        texts.append(tracks[0][0])
        parts.append(synthesize_swipe([tracks[0]], SwipeParams(silence_s=0.0, snr_db=None), np_rng))
        parts.append(np_rng.normal(0, 1e-4, int(0.08 * RATE)).astype(np.float32))
    parts.append(np.zeros(RATE // 2, dtype=np.float32))
    segments: list[tuple[float, float]] = []
    detector = SwipeDetector(RATE, on_segment=lambda channel, start, samples: segments.append(
        (start, start + samples.size / RATE)))
    swipes = detector.process(np.concatenate(parts)) + detector.flush()
    assert [swipe.tracks[0].text for swipe in swipes] == texts
    assert len(segments) == 2
    assert segments[1][0] >= segments[0][1]

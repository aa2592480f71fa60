"""Real swipes through a bare read head (NYC MetroCards, tests/dsp/fixtures/metrocard).

MetroCards use F2F recording but not the ISO character layout, so these recordings check
segmentation, raw F2F bit recovery and robustness rather than track text.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from posbridge.dsp.detector import SwipeDetector, decode_recording
from posbridge.dsp.f2f import decode_segment, recover_bits

from .conftest import METROCARD_DIR, read_wav_int16

EXPECTED: dict[str, dict[str, object]] = {
    name: value
    for name, value in json.loads((METROCARD_DIR / "expected-swipes.json").read_text()).items()
    if not name.startswith("_")
}


def _segments(samples: NDArray[np.int16], rate: int, block: int | None = None) -> list[NDArray[np.float32]]:
    found: list[NDArray[np.float32]] = []
    detector = SwipeDetector(rate, keep_undecoded=True, on_segment=lambda _c, _t, audio: found.append(audio))
    step = block or samples.size or 1
    for start in range(0, samples.size, step):
        detector.process(samples[start : start + step])
    detector.flush()
    return found


def test_every_fixture_is_listed(metrocard_files: list[Path]) -> None:
    assert sorted(path.name for path in metrocard_files) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_swipe_is_found(name: str) -> None:
    samples, rate = read_wav_int16(METROCARD_DIR / name)
    assert rate == EXPECTED[name]["rate"]
    swipes = decode_recording(samples, rate, keep_undecoded=True)
    expected = EXPECTED[name]["swipes"]
    assert isinstance(expected, list)
    found = [edge for swipe in swipes for edge in (swipe.started_at, swipe.ended_at)]
    assert found == pytest.approx([edge for span in expected for edge in span], abs=0.1)
    assert all(swipe.tracks == () for swipe in swipes)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_silence_between_swipes_stays_silent(name: str) -> None:
    samples, rate = read_wav_int16(METROCARD_DIR / name)
    keep = np.ones(samples.size, dtype=bool)
    for start, end in EXPECTED[name]["swipes"]:  # type: ignore[attr-defined]
        keep[max(0, int((start - 0.2) * rate)) : int((end + 0.2) * rate)] = False
    quiet = samples[keep]
    assert decode_recording(quiet, rate, keep_undecoded=True) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_time_reversed_recording_gives_reversed_bits(name: str) -> None:
    samples, rate = read_wav_int16(METROCARD_DIR / name)
    longest_seen = 0
    for segment in _segments(samples, rate):
        forward = recover_bits(segment, rate)
        if not forward:
            continue
        backward = ["".join(map(str, bits[::-1])) for bits in recover_bits(segment[::-1].copy(), rate)]
        longest = max(("".join(map(str, bits)) for bits in forward), key=len)
        longest_seen = max(longest_seen, len(longest))
        matches = [difflib.SequenceMatcher(None, longest, other, autojunk=False) for other in backward]
        assert max(match.ratio() for match in matches) >= 0.97
    assert abs(longest_seen - EXPECTED[name]["bits"]) <= 4  # type: ignore[operator]


@pytest.mark.parametrize("block", [1000, 4096, 777])
def test_block_sizes_give_the_same_bits(block: int) -> None:
    samples, rate = read_wav_int16(METROCARD_DIR / "samples_metrocard-ulm.wav")
    whole = [recover_bits(segment, rate) for segment in _segments(samples, rate)]
    chunked = [recover_bits(segment, rate) for segment in _segments(samples, rate, block)]
    assert chunked == whole
    assert len(whole) == 3


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_robust_to_odd_cuts(name: str) -> None:
    samples, rate = read_wav_int16(METROCARD_DIR / name)
    rng = np.random.default_rng(len(name))
    for _ in range(4):
        start = int(rng.integers(0, samples.size))
        piece = samples[start : start + int(rng.integers(1, 20_000))]
        assert decode_segment(piece, rate) == ()
        recover_bits(piece, rate)
        assert all(swipe.tracks == () for swipe in decode_recording(piece, rate))

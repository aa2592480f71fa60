"""Fixtures for the F2F demodulator, swipe detector and synthesizer tests."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

METROCARD_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "metrocard"


def read_wav_int16(path: Path) -> tuple[NDArray[np.int16], int]:
    """A 16-bit PCM mono WAV as int16 samples and its rate (test-only reader: `wave` + NumPy)."""
    with wave.open(str(path), "rb") as handle:
        assert handle.getsampwidth() == 2
        assert handle.getnchannels() == 1
        frames = handle.readframes(handle.getnframes())
        return np.frombuffer(frames, dtype="<i2").copy(), handle.getframerate()


@pytest.fixture
def np_rng() -> np.random.Generator:
    """A seeded NumPy random source, so a failure can be replayed."""
    return np.random.default_rng(20261126)


@pytest.fixture(scope="session")
def metrocard_files() -> list[Path]:
    """The real MetroCard recordings copied into tests/dsp/fixtures/metrocard."""
    files = sorted(METROCARD_DIR.glob("*.wav"))
    assert files, "MetroCard fixtures are missing"
    return files

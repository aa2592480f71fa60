"""Fixtures for the modem tests: WAV files via the ``wave`` module, minimodem, channel impairments."""

from __future__ import annotations

import shutil
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.signal import resample_poly

Channel = Callable[[NDArray[np.floating], float, int], NDArray[np.float64]]


def write_wav(path: Path, samples: NDArray[np.floating], rate: int) -> None:
    """16-bit mono PCM."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def read_wav(path: Path) -> tuple[NDArray[np.float32], int]:
    """Mono float32 samples and the rate of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as source:
        raw = source.readframes(source.getnframes())
        rate = source.getframerate()
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, rate


@pytest.fixture
def minimodem() -> str:
    """Path of Debian's minimodem (installed by .ci/run); the test is skipped where it is absent."""
    path = shutil.which("minimodem")
    if path is None:
        pytest.skip("minimodem is not installed (scripts/install-system-packages installs it)")
    return path


def impair(
    samples: NDArray[np.floating], snr_db: float, clock_permille: int, seed: int = 7
) -> NDArray[np.float64]:
    """A sender whose crystal is off by ``clock_permille``/1000 (resampled), plus white noise at
    ``snr_db`` over the full band, with 2400 samples of noise-only lead-in and tail."""
    rng = np.random.default_rng(seed)
    signal = np.asarray(samples, dtype=np.float64)
    if clock_permille:
        signal = resample_poly(signal, 1000, 1000 + clock_permille)
    power = float(np.mean(signal**2))
    pad = np.zeros(2400)
    signal = np.concatenate((pad, signal, pad))
    return signal + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), signal.size)


@pytest.fixture
def channel() -> Channel:
    """``channel(samples, snr_db, clock_permille)``: see :func:`impair`."""
    return impair

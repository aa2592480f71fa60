"""Fixtures for the chip reader tests: a seeded test transcript and a noisy, clock-skewed channel."""

from __future__ import annotations

import random

import numpy as np
import pytest
from numpy.typing import NDArray
from posbridge.firmware.chip_reader import make_test_transcript
from posbridge.protocols.emv import ApduExchange
from scipy.signal import resample_poly


@pytest.fixture
def transcript(rng: random.Random) -> list[ApduExchange]:
    """A full contact transaction for a generated Luhn-valid test PAN."""
    return make_test_transcript(rng, amount=4250, currency="978")


def skewed_noisy(samples: NDArray[np.floating], snr_db: float, clock_permille: int) -> NDArray[np.float64]:
    """The reader's crystal off by ``clock_permille``/1000, plus full-band white noise at ``snr_db``."""
    signal = resample_poly(np.asarray(samples, dtype=np.float64), 1000, 1000 + clock_permille)
    signal = np.concatenate((np.zeros(1000), signal, np.zeros(1000)))
    noise_power = float(np.mean(samples.astype(np.float64) ** 2)) / 10 ** (snr_db / 10)
    return signal + np.random.default_rng(11).normal(0.0, np.sqrt(noise_power), signal.size)

"""Fixtures for the chip reader tests: a seeded test transcript and a noisy, clock-skewed channel."""

from __future__ import annotations

import random

import numpy as np
import pytest
from numpy.typing import NDArray
from posbridge.dsp.modem.channel import impair
from posbridge.firmware.chip_reader import make_test_transcript
from posbridge.protocols.emv import ApduExchange


@pytest.fixture
def transcript(rng: random.Random) -> list[ApduExchange]:
    """A full contact transaction for a generated Luhn-valid test PAN."""
    return make_test_transcript(rng, amount=4250, currency="978")


def skewed_noisy(samples: NDArray[np.floating], snr_db: float, clock_permille: int) -> NDArray[np.float64]:
    """The reader's crystal off by ``clock_permille``/1000, plus full-band white noise at ``snr_db``."""
    return impair(samples, snr_db, clock_permille / 1000, rng=11, pad=1000)

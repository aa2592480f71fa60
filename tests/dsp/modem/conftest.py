"""Fixtures for the modem tests: minimodem and channel impairments (noise, sender clock error)."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from posbridge.dsp.modem.channel import impair as channel_impair

Channel = Callable[[NDArray[np.floating], float, int], NDArray[np.float64]]


@pytest.fixture
def minimodem() -> str:
    """Path of Debian's minimodem (installed by .ci/run); the test is skipped where it is absent."""
    path = shutil.which("minimodem")
    if path is None:
        pytest.skip("minimodem is not installed (scripts/install-system-packages installs it)")
    return path


def impair(samples: NDArray[np.floating], snr_db: float, clock_permille: int) -> NDArray[np.float64]:
    """A sender whose crystal is off by ``clock_permille``/1000, white noise at ``snr_db`` over the
    full band, 2400 samples of noise-only lead-in and tail."""
    return channel_impair(samples, snr_db, clock_permille / 1000, rng=7, pad=2400)


@pytest.fixture
def channel() -> Channel:
    """``channel(samples, snr_db, clock_permille)``: see :func:`impair`."""
    return impair

"""A simulated audio channel for modem tests, benchmarks and rigs: white noise and sender clock error.

Noise is white Gaussian over the whole band (0 to rate/2), its power set ``snr_db`` below the
signal's mean power: the "SNR over the full band" of the issue 5 benchmarks. A reader whose
crystal runs ``clock_error`` fast (positive) or slow plays the same samples faster or slower:
simulated by polyphase resampling by ``1 / (1 + clock_error)``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import NDArray
from scipy.signal import resample_poly


def add_noise(
    samples: NDArray[np.floating],
    snr_db: float,
    rng: np.random.Generator | int = 0,
    signal_power: float | None = None,
) -> NDArray[np.float64]:
    """``samples`` (shape ``(n,)``) plus white Gaussian noise ``snr_db`` below ``signal_power``
    (default: the samples' mean power)."""
    signal = np.asarray(samples, dtype=np.float64)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if signal_power is None:
        signal_power = float(np.mean(signal**2)) if signal.size else 0.0
    return signal + generator.normal(0.0, np.sqrt(signal_power / 10 ** (snr_db / 10)), signal.size)


def skew_clock(samples: NDArray[np.floating], clock_error: float) -> NDArray[np.float64]:
    """What ``samples`` sound like from a sender whose clock is off by ``clock_error`` (0.02 = +2 %)."""
    signal = np.asarray(samples, dtype=np.float64)
    if clock_error == 0:
        return signal
    ratio = Fraction(1 / (1 + clock_error)).limit_denominator(1000)
    resampled: NDArray[np.float64] = resample_poly(signal, ratio.numerator, ratio.denominator)
    return resampled


def impair(
    samples: NDArray[np.floating],
    snr_db: float,
    clock_error: float = 0.0,
    rng: np.random.Generator | int = 0,
    pad: int = 0,
) -> NDArray[np.float64]:
    """Clock error, then ``pad`` silent samples either side, then noise at ``snr_db`` over the band."""
    signal = skew_clock(samples, clock_error)
    power = float(np.mean(signal**2)) if signal.size else 0.0
    return add_noise(np.concatenate((np.zeros(pad), signal, np.zeros(pad))), snr_db, rng, power)

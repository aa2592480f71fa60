"""Streaming sliding-window tone correlators with exact, block-size independent arithmetic.

Each tone's complex correlation over the last ``window`` samples is a moving sum of the mixed
signal. Samples are rounded to 16-bit fixed point (clipped to +-64) and mixed with a 14-bit
fixed-point table of the tone indexed by the absolute sample number, so every product is an
exact int64 and ``cumsum[n] - cumsum[n - window]`` is exact however the stream is cut into
blocks: a recording fed in any chunks gives bit-identical features (scipy.signal's ``zi`` idea,
made exact).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

_SAMPLE_BITS = 16
_TABLE_BITS = 14
_CLIP = 64.0


class ToneBank:
    """Energies of tones over a sliding rectangular window of ``window`` samples.

    Tones are given in cycles per sample (``Fraction(f_hz) / rate``). :meth:`process` takes
    ``(n,)`` samples and returns ``(energies, power)``: ``energies`` of shape ``(tones, n)`` holds
    ``|sum x[m] exp(-2j pi f m)|**2`` over the window ending at each sample; ``power`` of shape
    ``(n,)`` holds ``sum x[m]**2`` over the same window (both in squared sample units).
    """

    def __init__(self, cycles_per_sample: tuple[Fraction, ...], window: int) -> None:
        self.window = int(window)
        self.samples_seen = 0
        self._periods = [tone.denominator for tone in cycles_per_sample]
        self._tables: list[NDArray[np.int64]] = []
        for tone in cycles_per_sample:
            turns = np.arange(tone.denominator) * tone.numerator % tone.denominator / tone.denominator
            angle = 2 * np.pi * turns
            scaled = np.stack((np.cos(angle), -np.sin(angle))) * (1 << _TABLE_BITS)
            self._tables.append(np.rint(scaled).astype(np.int64))
        self._channels = 2 * len(cycles_per_sample) + 1
        self._tail = np.zeros((self._channels, self.window), dtype=np.int64)
        self._mix_scale = float(1 << (_SAMPLE_BITS + _TABLE_BITS))
        self._power_scale = float(1 << (2 * _SAMPLE_BITS))

    def process(self, samples: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        x = np.clip(np.asarray(samples, dtype=np.float64), -_CLIP, _CLIP)
        count = x.size
        quantized = np.rint(x * (1 << _SAMPLE_BITS)).astype(np.int64)
        index = np.arange(self.samples_seen, self.samples_seen + count, dtype=np.int64)
        self.samples_seen += count
        mixed = np.empty((self._channels, count), dtype=np.int64)
        for tone, (period, table) in enumerate(zip(self._periods, self._tables, strict=True)):
            np.multiply(table[:, index % period], quantized, out=mixed[2 * tone : 2 * tone + 2])
        np.multiply(quantized, quantized, out=mixed[-1])
        running = np.cumsum(mixed, axis=1)
        running += self._tail[:, -1:]
        history = np.concatenate((self._tail, running), axis=1)
        sums = history[:, self.window :] - history[:, :count]
        self._tail = history[:, -self.window :]
        parts = sums[:-1].astype(np.float64) / self._mix_scale
        energies = parts[0::2] ** 2 + parts[1::2] ** 2
        return energies, sums[-1].astype(np.float64) / self._power_scale

"""Streaming sliding-window tone correlators with exact, block-size independent arithmetic.

Each tone's complex correlation over the last ``window`` samples is a moving sum of the mixed
signal. Samples are rounded to 16-bit fixed point (clipped to +-4, far beyond full scale) and
mixed with a 14-bit fixed-point table of the tone indexed by the absolute sample number, so every
product is an integer below 2**32, held exactly in a float64. Moving sums are taken by a cumulative
sum restarted at every block (over at most 2**16 samples plus the carried window), whose partial
sums stay below 2**53 and are therefore exact: a recording fed in any chunks gives bit-identical
features (scipy.signal's ``zi`` idea, made exact).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

_SAMPLE_SCALE = float(1 << 16)
_TABLE_SCALE = float(1 << 14)
_CLIP = 4.0
_CHUNK = 1 << 16


class ToneBank:
    """Energies of tones over a sliding rectangular window of ``window`` samples.

    Tones are given in cycles per sample (``Fraction(f_hz) / rate``). :meth:`process` takes
    ``(n,)`` samples (nominally in [-1, 1]) and returns ``(energies, power)``: ``energies`` of shape
    ``(tones, n)`` holds ``|sum x[m] exp(-2j pi f m)|**2`` over the window ending at each sample;
    ``power`` of shape ``(n,)`` holds ``sum x[m]**2`` over the same window.
    """

    def __init__(self, cycles_per_sample: tuple[Fraction, ...], window: int) -> None:
        self.window = int(window)
        self.samples_seen = 0
        self._periods = [tone.denominator for tone in cycles_per_sample]
        self._tables: list[NDArray[np.float64]] = []  # each tone's table repeated over a whole chunk
        for tone in cycles_per_sample:
            turns = np.arange(tone.denominator) * tone.numerator % tone.denominator / tone.denominator
            angle = 2 * np.pi * turns
            table = np.rint(np.stack((np.cos(angle), -np.sin(angle))) * _TABLE_SCALE)
            self._tables.append(np.tile(table, (1, -(-(_CHUNK + tone.denominator) // tone.denominator))))
        self._channels = 2 * len(cycles_per_sample) + 1
        self._tail = np.zeros((self._channels, self.window))

    def process(self, samples: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        x = np.asarray(samples, dtype=np.float64)
        if x.size > _CHUNK:
            pieces = [self.process(x[start : start + _CHUNK]) for start in range(0, x.size, _CHUNK)]
            return np.concatenate([p[0] for p in pieces], axis=1), np.concatenate([p[1] for p in pieces])
        count = x.size
        quantized = np.rint(np.clip(x, -_CLIP, _CLIP) * _SAMPLE_SCALE)
        first = self.samples_seen
        self.samples_seen += count
        mixed = np.empty((self._channels, self.window + count))
        mixed[:, : self.window] = self._tail
        for tone, (period, table) in enumerate(zip(self._periods, self._tables, strict=True)):
            phase = first % period
            rows = mixed[2 * tone : 2 * tone + 2, self.window :]
            np.multiply(table[:, phase : phase + count], quantized, out=rows)
        np.multiply(quantized, quantized, out=mixed[-1, self.window :])
        self._tail = mixed[:, -self.window :].copy()
        running = np.cumsum(mixed, axis=1)
        sums = running[:, self.window :] - running[:, :count]
        parts = sums[:-1] / (_SAMPLE_SCALE * _TABLE_SCALE)
        energies = parts[0::2] ** 2 + parts[1::2] ** 2
        return energies, sums[-1] / (_SAMPLE_SCALE * _SAMPLE_SCALE)

"""FSK modulators for the profiles of :mod:`posbridge.dsp.modem.profiles`.

Both keep the phase continuous across bit and symbol boundaries (CPFSK), as a reader's
microcontroller does with a phase accumulator, and as ``minimodem --tx`` does: sample ``n`` is
``amplitude * sin(phase[n])`` with ``phase[0] = 0``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.modem.profiles import BURST_HEADER_BYTES, ModemProfile, get_profile
from posbridge.protocols.errors import UsageError

GRAY_TONE_OF_DIBIT = (0, 1, 3, 2)
DIBIT_OF_GRAY_TONE = (0, 1, 3, 2)


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, initial value 0, no reflection) of ``data``: the burst header check."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def uart_bits(data: bytes) -> list[int]:
    """Asynchronous 8N1 line bits of ``data``: a 0 start bit, eight data bits LSB first, a 1 stop bit."""
    bits: list[int] = []
    for byte in data:
        bits.append(0)
        bits.extend((byte >> index) & 1 for index in range(8))
        bits.append(1)
    return bits


def burst_symbols(profile: ModemProfile, data: bytes) -> list[int]:
    """Tone indices (0-3) of one fast-profile burst carrying ``data`` (at most ``max_burst_bytes``)."""
    header = len(data).to_bytes(2, "big")
    header += bytes([crc8(header)])
    assert len(header) == BURST_HEADER_BYTES
    symbols = [0 if index % 2 == 0 else 3 for index in range(profile.preamble_symbols)]
    symbols += profile.sync_word
    for byte in header + data:
        symbols += [GRAY_TONE_OF_DIBIT[(byte >> shift) & 3] for shift in (6, 4, 2, 0)]
    symbols += [0] * profile.tail_symbols
    return symbols


#: The highest sample rate a modulator accepts (Hz): sound cards stop at 384 kHz.
MAX_MODEM_RATE = 384_000


class FskModulator:
    """Turns bytes into audio for one profile at one sample rate.

    ``rate`` is in Hz (44100 or 48000 for ``fast``; 4.4 kHz to :data:`MAX_MODEM_RATE` for ``bell202``).
    ``amplitude`` is the peak sample value (``minimodem`` uses 1.0).
    """

    def __init__(self, profile: str | ModemProfile, rate: int = 48000, amplitude: float = 1.0) -> None:
        self.profile = get_profile(profile)
        self.rate = int(rate)
        self.amplitude = float(amplitude)
        if self.profile.kind == "async" and self.rate < 2 * self.profile.space_hz * 1.25:
            raise UsageError(f"sample rate {rate} Hz is too low for {self.profile.name}", rate=rate)
        if self.profile.kind == "burst" and self.rate < 8000:
            raise UsageError(f"sample rate {rate} Hz is too low for {self.profile.name}", rate=rate)
        if self.rate > MAX_MODEM_RATE:
            raise UsageError(f"sample rate {rate} Hz is above {MAX_MODEM_RATE} Hz", rate=rate)

    def modulate(self, data: bytes) -> NDArray[np.float32]:
        """Audio carrying ``data``: shape ``(n,)`` float32 samples in ``[-amplitude, amplitude]``.

        ``bell202``: one transmission (leader, 8N1 characters, trailer), like ``minimodem --tx``.
        ``fast``: one burst per ``max_burst_bytes`` of data, back to back. Empty data gives an
        empty array.
        """
        if not data:
            return np.zeros(0, dtype=np.float32)
        if self.profile.kind == "async":
            return self._synthesize_async(bytes(data))
        size = self.profile.max_burst_bytes
        starts = range(0, len(data), size)
        bursts = [self._synthesize_burst(bytes(data[start : start + size])) for start in starts]
        return np.concatenate(bursts)

    def _synthesize_async(self, data: bytes) -> NDArray[np.float32]:
        profile = self.profile
        bits = [1] * profile.leader_bits + uart_bits(data) + [1] * profile.trailer_bits
        edges = np.round(np.arange(len(bits) + 1) * (self.rate / profile.baud)).astype(np.int64)
        lengths = np.diff(edges)
        frequency = np.repeat(np.where(np.array(bits) == 1, profile.mark_hz, profile.space_hz), lengths)
        return self._phase_to_audio(2 * np.pi * frequency / self.rate)

    def _synthesize_burst(self, data: bytes) -> NDArray[np.float32]:
        profile = self.profile
        bins = np.array(profile.tone_bins, dtype=np.float64)[burst_symbols(profile, data)]
        step = np.repeat(2 * np.pi * bins / 32.0, profile.samples_per_symbol)
        return self._phase_to_audio(step)

    def _phase_to_audio(self, step: NDArray[np.float64]) -> NDArray[np.float32]:
        phase = np.concatenate(([0.0], np.cumsum(step[:-1])))
        return (self.amplitude * np.sin(phase)).astype(np.float32)

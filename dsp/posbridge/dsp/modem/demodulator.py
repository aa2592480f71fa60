"""FSK demodulators: asynchronous Bell 202 (8N1) and the fast burst 4-FSK, both streaming.

Both work on the exact sliding-window tone energies of :class:`~posbridge.dsp.modem._tones.ToneBank`
(non-coherent matched filters, one symbol long), keep every piece of state explicitly, and make
decisions only from sample values at absolute positions, so any block sizes give the same bytes.

``bell202`` (Bell 202 / minimodem ``1200``): the soft decision is ``|C_mark| - |C_space|``. A
run of characters is acquired at a mark→space crossing (timed to a fraction of a sample; a clear
mark before a clear start bit, with carrier: tone energy at least ``carrier_ratio`` of the window's
full-band energy); each character is read at the ends of its ten bit windows, its timing measured
from the frame's soft evidence, and the next character predicted right after its stop bit by a
second-order timing loop that learns the sender's bit period (so a crystal off by +-2 % is
followed). Inside a run one weak framing violation is tolerated; a clear one, or a pause between
characters, ends the run and the next crossing acquires again.

``fast``: carrier and symbol timing come from the dotting preamble (its fundamental at half the
symbol rate gives the symbol phase, its phase drift the sender's clock error); symbols are then
tracked in blocks with a second-order timing loop on the square-law eye, the sync word is found,
the length header checked by its CRC-8, and the payload read; the burst is dropped if the carrier
goes away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.modem._tones import ToneBank
from posbridge.dsp.modem.modulator import DIBIT_OF_GRAY_TONE, crc8
from posbridge.dsp.modem.profiles import BURST_HEADER_BYTES, ModemProfile, get_profile
from posbridge.protocols.errors import UsageError


@dataclass
class DemodulatorStats:
    """Counts kept by a demodulator: bytes out, characters rejected, bursts found, lost, bad headers."""

    bytes_out: int = 0
    characters_rejected: int = 0
    bursts_ok: int = 0
    bursts_lost: int = 0  # preamble detections that gave no burst (noise, cut audio, no sync)
    bad_headers: int = 0


def _as_mono(block: NDArray[np.floating] | NDArray[np.integer]) -> NDArray[np.float64]:
    samples = np.asarray(block, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise UsageError("audio blocks must have shape (n,) or (n, channels)", shape=samples.shape)
    return samples


class _AsyncReceiver:
    timing_gain = 0.5
    weak_framing = 0.35
    pause_evidence = 1.1
    period_gain = 0.15

    def __init__(self, profile: ModemProfile, rate: int, carrier_ratio: float, stats: DemodulatorStats):
        self.bit_samples = rate / profile.baud
        window = max(round(self.bit_samples), 2)
        tones = (Fraction(profile.mark_hz) / rate, Fraction(profile.space_hz) / rate)
        self.bank = ToneBank(tones, window)
        self.window = window
        self.carrier_ratio = carrier_ratio
        self.stats = stats
        self.reach = math.ceil(10 * self.bit_samples) + 2
        bit_ends = self.bit_samples / 2 + self.bit_samples * np.arange(-1, 10)
        shifts = self.bit_samples * np.linspace(-0.5, 0.5, 17)
        self._grid = shifts[:, None] + bit_ends[None, :]
        self._shifts: list[float] = shifts.tolist()
        self._shift_step = self._shifts[1] - self._shifts[0]
        self._bit_ends = bit_ends
        self._predicted: float | None = None
        self._period = self.bit_samples
        self._decision = np.zeros(0)
        self._carrier = np.zeros(0)
        self._base = 0
        self._position = 1

    def process(self, samples: NDArray[np.float64]) -> bytes:
        energies, power = self.bank.process(samples)
        decision = np.sqrt(energies[0]) - np.sqrt(energies[1])
        total = energies[0] + energies[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            carrier = np.where(power > 0, 2 * total / (self.window * power), 0.0)
        self._decision = np.concatenate((self._decision, decision))
        self._carrier = np.concatenate((self._carrier, carrier))
        out = self._scan()
        keep_from = max(self._position - self.window - 4 - self._base, 0)
        self._decision = self._decision[keep_from:]
        self._carrier = self._carrier[keep_from:]
        self._base += keep_from
        return out

    def _scan(self) -> bytes:
        d, base = self._decision, self._base
        last = base + d.size - self.reach
        start = max(self._position, base + self.window + 4)
        out = bytearray()
        crossings: list[int] = []
        if last > start:
            before, after = d[start - 1 - base : last - 1 - base], d[start - base : last - base]
            gate = self._carrier[start - base : last - base] >= 0.5 * self.carrier_ratio
            crossings = (np.flatnonzero((before >= 0) & (after < 0) & gate) + start).tolist()
        pending = iter(crossings)
        while True:
            if self._predicted is not None:
                if self._predicted > last:
                    return bytes(out)
                predicted, self._predicted = self._predicted, None
                if self._read_character(predicted, out, predicted=True):
                    continue
            n = next(pending, None)
            if n is None:
                break
            if n < self._position:
                continue
            previous, current = d[n - 1 - base], d[n - base]
            if not self._read_character(n - 1 + previous / (previous - current), out):
                self.stats.characters_rejected += 1
                self._position = n + 1
        self._position = max(self._position, last)
        return bytes(out)

    def _read_character(self, zero: float, out: bytearray, predicted: bool = False) -> bool:
        """Read the 8N1 character whose start-bit crossing is near ``zero``; False if it does not frame.

        The frame's soft evidence on a grid of +-1/4 bit around ``zero`` measures the timing error;
        a character found from a crossing takes it whole, one ``predicted`` right after the last
        stop bit takes part of it (a timing loop that also learns the sender's bit period). In a
        predicted run one weak framing violation (a start or stop bit near zero) does not break
        the run; a clear one, or two, does, and so does evidence peaking clearly further out (up
        to +-1/2 bit) with a start bit that is not clearly space (the sender paused). Acquiring
        from a crossing needs a clear mark before a clear start bit, both with carrier.
        """
        d, q, base = self._decision, self._carrier, self._base
        candidates = np.rint(zero + self._grid).astype(np.int64) - base
        trial = d[candidates]
        score = (trial[:, 10] - trial[:, 1] + np.abs(trial[:, 2:10]).sum(axis=1)).tolist()
        inner = score[4:13]
        best = 4 + min(max(inner.index(max(inner)), 1), len(inner) - 2)
        left, middle, right = score[best - 1], score[best], score[best + 1]
        curvature = left - 2 * middle + right
        vertex = min(max(0.5 * (left - right) / curvature, -0.5), 0.5) if curvature < 0 else 0.0
        error = self._shifts[best] + self._shift_step * vertex
        timing = zero + (self.timing_gain * error if predicted else error)
        points = np.rint(timing + self._bit_ends).astype(np.int64) - base
        values, carrier = d[points].tolist(), q[points].tolist()
        data = values[2:10]
        start, stop = values[1], values[10]
        weak = self.weak_framing * sum(abs(value) for value in data) / 8
        if predicted:
            paused = max(score) > self.pause_evidence * max(inner) and start > -weak
            framed = not paused and ((start < 0 and stop > -weak) or (stop > 0 and start < weak))
        else:
            framed = values[0] > weak and start < -weak and stop > 0
            framed = framed and min(carrier[0], carrier[1]) >= self.carrier_ratio
        if not framed or sum(carrier) < self.carrier_ratio * len(carrier):
            return False
        out.append(sum(1 << index for index, value in enumerate(data) if value > 0))
        if predicted:
            period = self._period + self.period_gain * error / 10
            self._period = min(max(period, 0.97 * self.bit_samples), 1.03 * self.bit_samples)
        self._predicted = timing + 10 * self._period
        self._position = int(points[10]) + base
        return True

    def flush(self) -> bytes:
        return self.process(np.zeros(self.reach + self.window))


class _BurstReceiver:
    block_symbols = 128
    acquire_symbols = 16
    window = 256
    lookahead = 256
    detect_ratio = 0.38

    def __init__(self, profile: ModemProfile, rate: int, stats: DemodulatorStats):
        self.profile = profile
        self.symbol = profile.samples_per_symbol
        self.bank = ToneBank(tuple(Fraction(b, 32) for b in profile.tone_bins), self.symbol)
        self.stats = stats
        self.sync = np.array(profile.sync_word)
        self._eye_offsets = np.arange(-2, 3)[:, None]
        self._dotting_phasor = np.exp(-1j * np.pi * np.arange(2 * self.symbol) / self.symbol)
        self._tones = len(profile.tone_bins)
        self._features = np.zeros((self._tones + 2, 0))  # tone energies, power, strongest energy
        self._base = 0
        self._position = 0
        self._locked = False
        self._reset_burst()

    def _reset_burst(self) -> None:
        self._locked = False
        self._tau = 0.0
        self._period = float(self.symbol)
        self._symbols: list[int] = []
        self._sync_end = -1
        self._length = -1
        self._emitted = 0

    def process(self, samples: NDArray[np.float64]) -> bytes:
        energies, power = self.bank.process(samples)
        features = np.concatenate((energies, power[None, :], energies.max(axis=0)[None, :]))
        self._features = np.concatenate((self._features, features), axis=1)
        out = bytearray()
        while True:
            progressed = self._track(out) if self._locked else self._search()
            if not progressed:
                break
        anchor = self._tau if self._locked else self._position
        keep_from = max(int(anchor) - self.window - 2 * self.symbol - self._base, 0)
        self._features = self._features[:, keep_from:]
        self._base += keep_from
        return bytes(out)

    def flush(self) -> bytes:
        tail = 2 * self.window + (self.block_symbols + 4) * self.symbol * 2
        out = self.process(np.zeros(tail))
        if self._locked:
            self.stats.bursts_lost += 1
            self._reset_burst()
        return out

    # ------------------------------------------------------------------ preamble search

    def _search(self) -> bool:
        base, window = self._base, self.window
        end = base + self._features.shape[1] - 4 * self.symbol
        last = end - self.lookahead
        first = max(self._position + window - 1, base + window)
        if last <= first:
            return False
        lo = first - window + 1 - base
        dotting = self._features[0, lo : end - base] - self._features[3, lo : end - base]
        both = self._features[0, lo : end - base] + self._features[3, lo : end - base]
        index = np.arange(first - window + 1, end)
        rotated = dotting * self._dotting_phasor[index % (2 * self.symbol)]
        sums = np.concatenate(([0], np.cumsum(rotated)))
        levels = np.concatenate(([0.0], np.cumsum(both)))
        fundamental = np.abs(sums[window:] - sums[:-window])
        level = levels[window:] - levels[:-window]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(level > 0, fundamental / level, 0.0)
        hits = np.flatnonzero(ratio[: last - first] >= self.detect_ratio)
        if hits.size == 0:
            self._position = last - window + 1
            return False
        hit = int(hits[0])
        fullest = hit + int(np.argmax(fundamental[hit : hit + self.lookahead + 1]))
        self._lock(first + fullest - window + 1)
        self._position = first + hit + 1
        return True

    def _lock(self, start: int) -> None:
        half = self.window // 2
        index = np.arange(start, start + 2 * half)
        span = slice(start - self._base, start - self._base + 2 * half)
        dotting = self._features[0, span] - self._features[3, span]
        rotated = dotting * self._dotting_phasor[index % (2 * self.symbol)]
        first, second = rotated[:half].sum(), rotated[half:].sum()
        cycles = half / (2 * self.symbol)
        error = -float(np.angle(second / first)) / (2 * np.pi * cycles) if abs(first) > 0 else 0.0
        error = float(np.clip(error, -0.05, 0.05))
        dot_period = 2 * self.symbol * (1 + error)
        center = start + half - 0.5
        residual = float(np.angle(first + second))
        phase = residual + 2 * np.pi * (center % (2 * self.symbol)) / (2 * self.symbol)
        peak = center - (phase % (2 * np.pi)) / (2 * np.pi) * dot_period
        self._reset_burst()
        self._locked = True
        self._tau = peak
        self._period = dot_period / 2

    # ------------------------------------------------------------------ symbol tracking

    def _interpolate(self, rows: NDArray[np.float64], positions: NDArray[np.floating]) -> NDArray[np.float64]:
        relative = positions - self._base
        floor = np.floor(relative).astype(np.int64)
        fraction = relative - floor
        blended: NDArray[np.float64] = rows[..., floor] * (1 - fraction) + rows[..., floor + 1] * fraction
        return blended

    def _track(self, out: bytearray) -> bool:
        count = self.block_symbols if self._length >= 0 else self.acquire_symbols
        if self._length >= 0:
            wanted = 4 * (BURST_HEADER_BYTES + self._length)
            count = min(count, self._sync_end + wanted - len(self._symbols))
        positions = self._tau + self._period * np.arange(count)
        end = self._base + self._features.shape[1]
        if positions[-1] + 4 >= end:
            return False
        eye = self._interpolate(self._features[-1], positions[None, :] + self._eye_offsets).mean(axis=1)
        levels = eye.tolist()
        best = min(max(levels.index(max(levels)), 1), 3)
        left, middle, right = levels[best - 1], levels[best], levels[best + 1]
        curvature = left - 2 * middle + right
        vertex = min(max(0.5 * (left - right) / curvature, -0.5), 0.5) if curvature < 0 else 0.0
        shift = best - 2 + vertex
        positions = positions + shift
        sampled = self._interpolate(self._features, positions)
        energies, power = sampled[: self._tones], sampled[self._tones]
        strongest = 2 * energies.max(axis=0)
        carrier = np.divide(strongest, self.symbol * power, out=np.zeros_like(power), where=power > 0)
        if carrier.mean() < 0.7:
            self.stats.bursts_lost += 1
            self._position = max(self._position, int(positions[0]))
            self._reset_burst()
            return True
        self._symbols.extend(np.argmax(energies, axis=0).tolist())
        self._tau = float(positions[-1]) + self._period
        self._period += 0.1 * shift / count
        return self._advance(out, int(positions[-1]))

    def _advance(self, out: bytearray, where: int) -> bool:
        symbols = self._symbols
        sync_length = len(self.sync)
        if self._sync_end < 0:
            found = self._find_sync()
            if found < 0:
                if len(symbols) > self.profile.preamble_symbols + 2 * sync_length + self.block_symbols:
                    self.stats.bursts_lost += 1
                    self._position = where
                    self._reset_burst()
                return True
            self._sync_end = found
        header_end = self._sync_end + 4 * BURST_HEADER_BYTES
        if self._length < 0:
            if len(symbols) < header_end:
                return True
            header = self._bytes_of(self._sync_end, BURST_HEADER_BYTES)
            if crc8(header[:2]) != header[2]:
                self.stats.bad_headers += 1
                self._position = where
                self._reset_burst()
                return True
            self._length = int.from_bytes(header[:2], "big")
        ready = min((len(symbols) - header_end) // 4, self._length)
        if ready > self._emitted:
            out += self._bytes_of(header_end + 4 * self._emitted, ready - self._emitted)
            self.stats.bytes_out += ready - self._emitted
            self._emitted = ready
        if self._emitted == self._length:
            self.stats.bursts_ok += 1
            self._position = where
            self._reset_burst()
        return True

    def _find_sync(self) -> int:
        symbols = np.array(self._symbols)
        span = len(self.sync)
        if symbols.size < span:
            return -1
        windows = np.lib.stride_tricks.sliding_window_view(symbols, span)
        mismatches = (windows != self.sync).sum(axis=1)
        good = np.flatnonzero(mismatches <= 2)
        return int(good[0]) + span if good.size else -1

    def _bytes_of(self, start: int, count: int) -> bytes:
        tones = np.array(self._symbols[start : start + 4 * count]).reshape(count, 4)
        dibits = np.array(DIBIT_OF_GRAY_TONE)[tones]
        return bytes((dibits @ np.array([64, 16, 4, 1])).astype(np.uint8).tolist())


class FskDemodulator:
    """Streaming FSK receiver: feed audio blocks of any size, get the bytes they complete.

    ``profile`` is ``"bell202"``, ``"fast"`` or a :class:`ModemProfile`; ``rate`` the sample rate
    in Hz. :meth:`process` takes ``(n,)`` or ``(n, channels)`` samples (channel 0 is used; any
    scale) and returns the bytes completed so far; :meth:`flush` ends the stream and returns what
    is left. ``stats`` counts rejected characters and lost or bad bursts. ``carrier_ratio`` (Bell
    202 only) is the least fraction of a bit window's energy that must lie at the two tones.
    """

    def __init__(self, profile: str | ModemProfile, rate: int = 48000, carrier_ratio: float = 0.25) -> None:
        self.profile = get_profile(profile)
        self.rate = int(rate)
        self.stats = DemodulatorStats()
        self._receiver: _AsyncReceiver | _BurstReceiver
        if self.profile.kind == "async":
            self._receiver = _AsyncReceiver(self.profile, self.rate, carrier_ratio, self.stats)
        else:
            self._receiver = _BurstReceiver(self.profile, self.rate, self.stats)

    def process(self, block: NDArray[np.floating] | NDArray[np.integer]) -> bytes:
        """Demodulate one block; return the bytes it completes."""
        samples = _as_mono(block)
        if samples.size == 0:
            return b""
        out = self._receiver.process(samples)
        if self.profile.kind == "async":
            self.stats.bytes_out += len(out)
        return out

    def flush(self) -> bytes:
        """End of stream: decode what the buffered audio still holds and return it."""
        out = self._receiver.flush()
        if self.profile.kind == "async":
            self.stats.bytes_out += len(out)
        return out

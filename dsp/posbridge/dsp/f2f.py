"""F2F (Aiken biphase) demodulation of a magnetic read head's signal (ISO/IEC 7811-2 §7.2).

A flux transition sits at every bit-cell boundary and one more in the middle of a cell holding a
one; a read head turns each into a pulse of alternating sign. The demodulator has no amplitude
threshold to tune:

1. **Scale.** The segment's power spectrum (median per sixth of an octave, so mains-hum lines do not
   count) gives the typical bit-cell length; the signal is decimated to about 20 samples per cell
   when it is longer than that, and band-limited around the F2F band with a zero-phase Butterworth
   band-pass whose corners follow that cell length (never a fixed high-pass corner: slow swipes
   have bit rates of 100-250 Hz).
2. **Pulses.** Every local extremum is a candidate, timed between samples by parabolic
   interpolation, with a strength relative to the local envelope (the largest excursion within a
   few cells), so amplitude that grows 15-40× across a swipe does not matter.
3. **Lock.** The bit clock locks only on a run of mutually consistent intervals between strong
   alternating pulses (the clocking zeros), so noise before a swipe cannot set it.
4. **Clock tracking.** A per-cell tracker predicts the next cell boundary, scores the hypotheses
   "zero" (no mid-cell pulse, next boundary pulse of opposite sign) and "one" (a mid-cell pulse,
   boundary pulse of the same sign), keeps the margin as the bit's confidence and re-times the cell
   on the chosen boundary pulse, following speed changes continuously. The burst ends when
   boundary pulses stop.
5. **Decision.** Every start-sentinel candidate, both character sets (5- or 7-bit) and both
   directions are tried; when a character fails parity its least confident bit is re-decided. A
   track is returned only if every parity bit, the end sentinel, the LRC and its parity check and
   clocking zeros follow the LRC (:func:`posbridge.protocols.magstripe.decode_track_bits`).

Polarity does not matter (only the alternation is used) and a reverse swipe is a reversed bit
stream. Time reversal of the recording reverses the recovered bits: every filter is zero-phase.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from posbridge.protocols.errors import AudioFormatError, ParseError, TrackError
from posbridge.protocols.magstripe import CHARACTER_SETS, decode_track_bits
from posbridge.protocols.types import Direction, Track, TrackFormat

MIN_RATE = 1000.0
MAX_RATE = 400_000.0
#: Shortest track text accepted from audio (shorter decodes are treated as noise).
MIN_TEXT_CHARACTERS = 5
#: Clocking zeros that must follow the LRC for a track to count.
MIN_TRAILING_ZEROS = 4
LOCK_INTERVALS = 8
MIN_BURST_BITS = 16


@dataclass(frozen=True)
class Pulses:
    """Candidate pulses of one channel: times in samples (of the original rate), signed amplitude
    relative to the local envelope (``strength`` = |amplitude|, 0-1), and the typical cell length."""

    times: NDArray[np.float64]
    signs: NDArray[np.int8]
    strengths: NDArray[np.float64]
    cell_samples: float


@dataclass(frozen=True)
class Burst:
    """Bits recovered from one clock-locked run of pulses, with per-bit confidence (0-1) and the
    times (samples) of the first and last cell boundary."""

    bits: list[int]
    confidence: list[float]
    start: float
    end: float


def _check_input(samples: NDArray[np.floating] | NDArray[np.integer], rate: float) -> NDArray[np.float64]:
    if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
        raise AudioFormatError(f"sample rate must be {MIN_RATE:g}-{MAX_RATE:g} Hz, got {rate}", rate=rate)
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim != 1:
        raise AudioFormatError(f"expected one channel of samples, got shape {data.shape}", shape=data.shape)
    if not np.all(np.isfinite(data)):
        data = np.where(np.isfinite(data), data, 0.0)
    return data


def estimate_cell_samples(data: NDArray[np.float64], rate: float) -> float | None:
    """Typical bit-cell length in samples from the spectrum's peak (None: nothing F2F-like)."""
    n = data.size
    if n < 64:
        return None
    spectrum = np.abs(np.fft.rfft(data - data.mean())) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    low = 80.0
    high = rate / 2
    if high <= low * 1.5:
        return None
    edges = low * 2.0 ** (np.arange(0, math.log2(high / low) * 6 + 1) / 6)
    index = np.unique(np.searchsorted(freqs, edges))
    index = index[index < spectrum.size]
    if index.size < 2:
        return None
    log_power = np.log(spectrum + 1e-300)
    sums = np.add.reduceat(log_power, index)[:-1]
    counts = np.diff(index)
    centres = np.sqrt(freqs[index[:-1]] * freqs[np.maximum(index[1:] - 1, index[:-1])] + 1e-9)
    densities = sums / counts
    peak = float(centres[int(np.argmax(densities))])
    if peak <= 0:
        return None
    return 0.75 * rate / peak


@functools.lru_cache(maxsize=256)
def _band_filter(log_cell_step: int) -> NDArray[np.float64]:
    """Zero-phase band-pass sections for a cell length of exp(log_cell_step / 40) samples."""
    from scipy.signal import butter

    cell = math.exp(log_cell_step / 40)
    low = 0.15 / cell
    high = 4.0 / cell
    if high < 0.45:
        sos = butter(2, [low / 0.5, high / 0.5], btype="bandpass", output="sos")
    else:
        sos = butter(2, low / 0.5, btype="highpass", output="sos")
    return np.asarray(sos, dtype=np.float64)


def find_pulses(samples: NDArray[np.floating], rate: float) -> Pulses | None:
    """Candidate pulses of one channel (see module docstring, steps 1-2); None if nothing to find."""
    from scipy.ndimage import maximum_filter1d
    from scipy.signal import resample_poly, sosfiltfilt

    data = _check_input(samples, rate)
    cell = estimate_cell_samples(data, rate)
    if cell is None:
        return None
    factor = max(1, int(cell // 20))
    work = data - data.mean()
    if factor > 1:
        work = resample_poly(work, 1, factor)
    work_cell = cell / factor
    if work.size < 16:
        return None
    sos = _band_filter(round(math.log(work_cell) * 40))
    padlen = min(work.size - 1, 3 * int(work_cell * 4))
    filtered = sosfiltfilt(sos, work, padlen=padlen)
    y = filtered
    left = y[1:-1] - y[:-2]
    right = y[1:-1] - y[2:]
    is_max = (left > 0) & (right >= 0)
    is_min = (left < 0) & (right <= 0)
    centre = np.flatnonzero(is_max | is_min) + 1
    if centre.size < LOCK_INTERVALS + 2:
        return None
    ym, y0, yp = y[centre - 1], y[centre], y[centre + 1]
    curvature = ym - 2 * y0 + yp
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature != 0, 0.5 * (ym - yp) / curvature, 0.0)
    offset = np.clip(offset, -0.5, 0.5)
    peak = y0 - 0.25 * (ym - yp) * offset
    window = max(3, int(4 * work_cell) | 1)
    envelope = maximum_filter1d(np.abs(y), size=window, mode="nearest")[centre]
    envelope = np.maximum(envelope, 1e-30)
    strengths = np.abs(peak) / envelope
    keep = strengths > 0.12
    times = (centre[keep] + offset[keep]) * factor
    return Pulses(
        times=times.astype(np.float64),
        signs=np.where(peak[keep] > 0, 1, -1).astype(np.int8),
        strengths=strengths[keep].astype(np.float64),
        cell_samples=float(cell),
    )


def _lock_points(pulses: Pulses, start: int) -> tuple[int, float] | None:
    """First pulse index >= start where LOCK_INTERVALS intervals between strong alternating
    pulses agree (each within 25 % of their median): returns (index into pulses, cell length)."""
    strong = np.flatnonzero(pulses.strengths > 0.45)
    strong = strong[strong >= start]
    if strong.size < LOCK_INTERVALS + 1:
        return None
    times = pulses.times[strong]
    signs = pulses.signs[strong]
    intervals = np.diff(times)
    alternating = signs[1:] != signs[:-1]
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(intervals, LOCK_INTERVALS)
    alt_windows = sliding_window_view(alternating, LOCK_INTERVALS)
    medians = np.median(windows, axis=1)
    consistent = np.all(np.abs(windows - medians[:, None]) <= 0.25 * medians[:, None], axis=1)
    consistent &= np.all(alt_windows, axis=1)
    consistent &= medians >= 2.0
    hits = np.flatnonzero(consistent)
    if hits.size == 0:
        return None
    first = int(hits[0])
    return int(strong[first]), float(medians[first])


def track_clock(pulses: Pulses, lock_index: int, cell: float) -> tuple[Burst, int]:
    """Follow the bit clock from a locked pulse (step 4). Returns the burst and the index of the
    first pulse after it."""
    times: list[float] = pulses.times.tolist()
    signs: list[int] = pulses.signs.tolist()
    strengths: list[float] = pulses.strengths.tolist()
    count = len(times)
    t = float(times[lock_index])
    sign = int(signs[lock_index])
    j = lock_index + 1
    bits: list[int] = []
    confidence: list[float] = []
    misses = 0
    last_boundary = t
    while j < count:
        mid_best = 0.0
        same_best = 0.0
        same_time = 0.0
        opposite_best = 0.0
        opposite_time = 0.0
        k = j
        while k < count and times[k] < t + 0.25 * cell:
            k += 1
        j = k
        while k < count and times[k] < t + 1.35 * cell:
            dt = (times[k] - t) / cell
            s = strengths[k]
            if dt < 0.72:
                if signs[k] != sign and s > mid_best:
                    mid_best = s
            elif signs[k] == sign:
                if s > same_best:
                    same_best, same_time = s, times[k]
            elif s > opposite_best:
                opposite_best, opposite_time = s, times[k]
            k += 1
        one_score = 0.5 * (mid_best + same_best)
        zero_score = opposite_best
        if max(one_score, zero_score) < 0.15:
            misses += 1
            if misses > 2:
                break
            bits.append(0)
            confidence.append(0.0)
            t += cell
            continue
        misses = 0
        bit = 1 if one_score > zero_score else 0
        boundary_time = same_time if bit else opposite_time
        boundary_strength = same_best if bit else opposite_best
        bits.append(bit)
        confidence.append(min(1.0, abs(one_score - zero_score)))
        if boundary_strength > 0.15:
            measured = boundary_time - t
            cell += 0.3 * (measured - cell)
            t = boundary_time
            last_boundary = t
        else:
            t += cell
        if not bit:
            sign = -sign
    # drop the coasted cells at the end
    while bits and confidence[-1] == 0.0:
        bits.pop()
        confidence.pop()
    return Burst(bits, confidence, float(times[lock_index]), last_boundary), j


def recover_bursts(samples: NDArray[np.floating], rate: float) -> list[Burst]:
    """Every clock-locked burst of one channel, in time order, with per-bit confidence."""
    pulses = find_pulses(samples, rate)
    if pulses is None:
        return []
    bursts: list[Burst] = []
    start = 0
    while start < pulses.times.size:
        lock = _lock_points(pulses, start)
        if lock is None:
            break
        index, cell = lock
        burst, next_index = track_clock(pulses, index, cell)
        if len(burst.bits) >= MIN_BURST_BITS:
            bursts.append(burst)
        start = max(next_index, index + 1)
    return bursts


def recover_bits(samples: NDArray[np.floating], rate: float) -> list[list[int]]:
    """Raw F2F bits of each burst in one channel's samples, in time order (for non-ISO cards).

    ``samples`` has shape (n,), any float or int dtype; ``rate`` in Hz.
    """
    return [burst.bits for burst in recover_bursts(samples, rate)]


def _repaired_candidates(bits: Sequence[int], confidence: Sequence[float]) -> list[list[int]]:
    """Bit streams with the weakest bit of each parity-failing character re-decided, one per
    start-sentinel candidate and character set (forward order of ``bits``)."""
    candidates: list[list[int]] = []
    for fmt in (TrackFormat.ALPHA, TrackFormat.BCD):
        charset = CHARACTER_SETS[fmt]
        width = charset.bits_per_character
        pattern = [(charset.code(charset.start_sentinel) >> i) & 1 for i in range(charset.data_bits)]
        end_code = charset.code(charset.end_sentinel)
        for start in range(len(bits) - width):
            if list(bits[start : start + charset.data_bits]) != pattern:
                continue
            repaired = list(bits)
            flips = 0
            position = start
            ok = False
            for _ in range(charset.max_characters):
                if position + width > len(repaired):
                    break
                chunk = repaired[position : position + width]
                if sum(chunk) % 2 == 0:
                    weakest = min(range(width), key=lambda i: confidence[position + i])
                    if confidence[position + weakest] > 0.5 or flips >= 3:
                        break
                    repaired[position + weakest] ^= 1
                    flips += 1
                    chunk = repaired[position : position + width]
                code = sum(bit << i for i, bit in enumerate(chunk[: charset.data_bits]))
                position += width
                if code == end_code:
                    ok = True
                    break
            if not ok or flips == 0 or position + width > len(repaired):
                continue
            lrc = repaired[position : position + width]
            if sum(lrc) % 2 == 0:
                weakest = min(range(width), key=lambda i: confidence[position + i])
                if confidence[position + weakest] <= 0.5 and flips < 3:
                    repaired[position + weakest] ^= 1
            candidates.append(repaired)
    return candidates


def decode_bits(bits: Sequence[int], confidence: Sequence[float] | None = None) -> Track | None:
    """The validated track in one burst's bits, or None (step 5)."""
    try:
        return _validated(bits, allow_reverse=True)
    except ParseError:
        pass
    if confidence is None:
        return None
    forward = (Direction.FORWARD, list(bits), list(confidence))
    backward = (Direction.REVERSE, list(bits)[::-1], list(confidence)[::-1])
    for direction, stream, weights in (forward, backward):
        for candidate in _repaired_candidates(stream, weights):
            try:
                track = _validated(candidate, allow_reverse=False)
            except ParseError:
                continue
            return Track(track.number, track.format, track.text, direction, track.raw_bits)
    return None


def _validated(bits: Sequence[int], *, allow_reverse: bool) -> Track:
    track = decode_track_bits(bits, min_trailing_zeros=MIN_TRAILING_ZEROS, allow_reverse=allow_reverse)
    if len(track.text) < MIN_TEXT_CHARACTERS:
        raise TrackError("track too short to be told from noise", length=len(track.text))
    return track


def decode_segment(samples: NDArray[np.floating], rate: float) -> tuple[Track, ...]:
    """Validated tracks in one channel of one swipe segment.

    ``samples``: shape (n,), any float or integer dtype (scale does not matter); ``rate`` in Hz
    (1-400 kHz). Returns only tracks whose parity, LRC and trailing clocking zeros check, at most
    one per track format, in time order. Raises :class:`AudioFormatError` for an impossible rate
    or a multi-channel array; non-finite samples count as silence.
    """
    tracks: list[Track] = []
    seen: set[tuple[TrackFormat, str]] = set()
    for burst in recover_bursts(samples, rate):
        track = decode_bits(burst.bits, burst.confidence)
        if track is not None and (track.format, track.text) not in seen:
            seen.add((track.format, track.text))
            tracks.append(track)
    return tuple(tracks)

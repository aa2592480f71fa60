"""F2F (Aiken biphase) demodulation of a magnetic read head's signal (ISO/IEC 7811-2 §7.2).

A flux transition sits at every bit-cell boundary and one more in the middle of a cell holding a
one; a read head turns each into a pulse of alternating sign. The demodulator has no amplitude
threshold to tune:

1. **Scale and band.** Two real FFTs of the segment. Its Hann-windowed power spectrum (mean log
   power per sixth of an octave after a 12 Hz running minimum, so mains-hum lines do not count)
   gives the typical bit-cell length. The unwindowed spectrum, multiplied by the squared gain of a
   2nd-order Butterworth band-pass at 0.25/cell and 4/cell (zero phase, as filtering forwards and
   backwards), and cut to about 20 samples per cell when cells are longer, is inverted: band-limit
   and decimation in one step, with corners that follow the swipe (never a fixed high-pass
   corner: slow swipes have bit rates of 100-250 Hz).
2. **Pulses.** Every local extremum is a candidate, timed between samples by parabolic
   interpolation, with a strength relative to the local envelope (the largest excursion within
   four cells), so amplitude that grows 15-40× across a swipe does not matter. Extrema under 20 %
   of their envelope or under 3 % of the segment's loud pulses are dropped.
3. **Lock.** The clock locks only on a window of 8 consecutive intervals between strong
   alternating pulses that are all one cell or half a cell long: the interval pattern F2F makes.
   Windows with both lengths rank first, windows much quieter than the loudest are ignored (noise
   before a swipe cannot set the clock), and a lock surrounded by intervals twice its cell is
   doubled (a run of ones cannot halve it).
4. **Clock tracking.** From the lock a per-cell tracker runs forwards and backwards: it scores
   "zero" (no mid-cell pulse, next boundary pulse of opposite sign) against "one" (a mid-cell
   pulse, boundary pulse of the same sign), keeps the margin as the bit's confidence, and
   re-times cell length and phase on the chosen boundary pulse, so speed that changes several-fold
   is followed continuously and the weak start of a swipe is read with a settled clock. A burst
   ends after four cells without a timely boundary pulse of plausible amplitude.
5. **Decision.** Every start-sentinel candidate, both character sets (5- or 7-bit) and both
   directions are tried. When a character fails parity, its least confident bit is re-decided
   (only clearly weak bits, in otherwise confident tracks, one per ten characters). A track is
   returned only if every parity bit, the end sentinel, the LRC and its parity check, clocking
   zeros follow the LRC, and it holds at least 7 characters
   (:func:`posbridge.protocols.magstripe.decode_track_bits`).

Polarity does not matter (only the alternation is used) and a reverse swipe is a reversed bit
stream. Time reversal of the recording reverses the recovered bits: every filter is zero-phase.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.sliding import centred_max, centred_min
from posbridge.protocols.errors import AudioFormatError, ParseError, TrackError
from posbridge.protocols.magstripe import CHARACTER_SETS, decode_track_bits
from posbridge.protocols.types import Direction, Track, TrackFormat

Samples = NDArray[np.number[Any]]
"""One channel of audio: shape (n,), any float or integer dtype (scale does not matter)."""

MIN_RATE = 1000.0
MAX_RATE = 400_000.0
#: Shortest track text accepted from audio (shorter decodes are treated as noise).
MIN_TEXT_CHARACTERS = 7
#: Clocking zeros that must follow the LRC for a track to count.
MIN_TRAILING_ZEROS = 4
LOCK_INTERVALS = 8
MIN_BURST_BITS = 16


@dataclass(frozen=True)
class Pulses:
    """Candidate pulses of one channel, in time order: ``times`` in samples of the input (between
    samples), ``signs`` +1/-1, ``strengths`` = |peak| / local envelope (0-1), ``amplitudes`` =
    |peak| of the band-limited signal, and the typical bit-cell length in samples."""

    times: NDArray[np.float64]
    signs: NDArray[np.int8]
    strengths: NDArray[np.float64]
    amplitudes: NDArray[np.float64]
    cell_samples: float


@dataclass(frozen=True)
class Burst:
    """Bits recovered from one clock-locked run of pulses, with per-bit confidence (0-1), the
    times (samples, between samples) of the first and last cell boundary, and all
    ``len(bits) + 1`` cell boundaries in time order."""

    bits: list[int]
    confidence: list[float]
    start: float
    end: float
    boundaries: list[float] = field(default_factory=list)


def check_rate(rate: float) -> float:
    """``rate`` as a float in Hz, or :class:`AudioFormatError` unless it is a number in 1-400 kHz."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and MIN_RATE <= value <= MAX_RATE):
        raise AudioFormatError(f"sample rate must be {MIN_RATE:g}-{MAX_RATE:g} Hz, got {rate!r}", rate=rate)
    return value


def _check_input(samples: Samples, rate: float) -> NDArray[np.float64]:
    check_rate(rate)
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim != 1:
        raise AudioFormatError(f"expected one channel of samples, got shape {data.shape}", shape=data.shape)
    if not np.all(np.isfinite(data)):
        data = np.where(np.isfinite(data), data, 0.0)
    return data


@functools.lru_cache(maxsize=1)
def _fast_lengths() -> NDArray[np.int64]:
    """Every 2^a 3^b 5^c up to 2^26, sorted: FFT sizes that pocketfft handles fastest."""
    limit = 1 << 26
    values = [
        two * three * five
        for two in (1 << a for a in range(27))
        for three in (3**b for b in range(17))
        if two * three <= limit
        for five in (5**c for c in range(12))
        if two * three * five <= limit
    ]
    return np.array(sorted(values), dtype=np.int64)


def _fast_length(n: int) -> int:
    lengths = _fast_lengths()
    index = int(np.searchsorted(lengths, n))
    return int(lengths[index]) if index < lengths.size else n


@functools.lru_cache(maxsize=16)
def _hann(n: int) -> NDArray[np.float64]:
    return np.hanning(n)


def _cell_from_spectrum(power: NDArray[np.float64], freqs: NDArray[np.float64], rate: float) -> float | None:
    """Typical bit-cell length in samples from the peak of the power spectrum (module step 1).

    Power (of the Hann-windowed segment) is taken per sixth of an octave as the mean log of the
    spectrum after a running minimum over 12 Hz, so mains-hum lines and their harmonics do not count.
    """
    low = 80.0
    high = rate / 2
    if high <= low * 1.5 or power.size < 16:
        return None
    resolution = float(freqs[1]) if freqs.size > 1 else rate
    smooth = centred_min(power, max(7, int(12.0 / resolution) | 1))
    edges = low * 2.0 ** (np.arange(0, math.log2(high / low) * 6 + 1) / 6)
    index = np.unique(np.searchsorted(freqs, edges))
    index = index[index < power.size]
    if index.size < 2:
        return None
    log_power = np.log(smooth + 1e-300)
    sums = np.add.reduceat(log_power, index)[:-1]
    counts = np.diff(index)
    centres = np.sqrt(freqs[index[:-1]] * freqs[np.maximum(index[1:] - 1, index[:-1])] + 1e-9)
    peak = float(centres[int(np.argmax(sums / counts))])
    return 0.75 * rate / peak if peak > 0 else None


def _band_gain(freqs_per_sample: NDArray[np.float64], cell: float) -> NDArray[np.float64]:
    """Zero-phase band-pass gain: a 2nd-order Butterworth pair (0.25/cell, 4/cell) run both ways."""
    low = 0.25 / cell
    high = 4.0 / cell
    with np.errstate(divide="ignore"):
        highpass = 1.0 / (1.0 + (low / np.maximum(freqs_per_sample, 1e-12)) ** 4)
    lowpass = 1.0 / (1.0 + (freqs_per_sample / high) ** 4) if high < 0.45 else 1.0
    gain: NDArray[np.float64] = highpass * lowpass
    return gain


def band_limited(samples: Samples, rate: float) -> tuple[NDArray[np.float64], float, float] | None:
    """The band-limited, decimated signal of one channel (module step 1).

    Returns ``(signal, step, cell)``: sample ``j`` of ``signal`` lies at ``j * step`` samples of
    the input, and ``cell`` is the typical bit-cell length in input samples. None when the input is
    too short or holds nothing F2F-like. A Hann-windowed real FFT gives the spectrum; an
    unwindowed one, inverted, does the zero-phase band-pass and the decimation (to about 20
    samples per cell when cells are longer).
    """
    data = _check_input(samples, rate)
    n = data.size
    if n < 64:
        return None
    centred = data - data.mean()
    size = _fast_length(n + max(n // 4, 256))
    windowed = np.fft.rfft(centred * _hann(n), size)
    freqs = np.arange(windowed.size, dtype=np.float64) * (rate / size)
    cell = _cell_from_spectrum(windowed.real**2 + windowed.imag**2, freqs, rate)
    if cell is None:
        return None
    spectrum = np.fft.rfft(centred, size)
    factor = max(1, int(cell // 20))
    out_size = -(-size // factor)
    bins = min(out_size // 2 + 1, spectrum.size)
    shaped = spectrum[:bins] * _band_gain(np.arange(bins) / size, cell)
    signal = np.fft.irfft(shaped, out_size) * (out_size / size)
    step = size / out_size
    return signal[: math.ceil(n / step)], step, cell


def find_pulses(samples: Samples, rate: float) -> Pulses | None:
    """Candidate pulses of one channel (see module docstring, steps 1-2); None if nothing to find."""
    limited = band_limited(samples, rate)
    if limited is None:
        return None
    y, step, cell = limited
    work_cell = cell / step
    if y.size < 16:
        return None
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
    envelope = centred_max(np.abs(y), window)[centre]
    envelope = np.maximum(envelope, 1e-30)
    strengths = np.abs(peak) / envelope
    loud = np.abs(peak)
    keep = (strengths > 0.2) & (loud > 0.03 * np.percentile(loud, 95))
    times = (centre[keep] + offset[keep]) * step
    return Pulses(
        times=times.astype(np.float64),
        signs=np.where(peak[keep] > 0, 1, -1).astype(np.int8),
        strengths=strengths[keep].astype(np.float64),
        amplitudes=np.abs(peak[keep]).astype(np.float64),
        cell_samples=float(cell),
    )


def _lock_windows(pulses: Pulses, claimed: list[tuple[int, int]]) -> Iterator[tuple[int, float]]:
    """Candidate clock locks, best first: (index of a cell-boundary pulse, cell length in samples).

    A lock needs ``LOCK_INTERVALS`` consecutive intervals between strong, alternating pulses that
    are all either one cell (within 25 % of the window's longest) or half a cell (within 25 % of
    half of it): the only interval pattern F2F makes. Windows holding both lengths (data) rank
    above windows of one length (clocking zeros, or a run of ones that would halve the clock);
    windows far quieter than the loudest candidate (noise around a swipe) are not used. If
    intervals of twice the lock's cell surround it, the cell is doubled. The lock pulse starts a
    one-cell interval, so it is a cell boundary. Windows inside ``claimed`` pulse-index ranges
    (already tracked bursts; the caller appends to it) are skipped.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    strong = np.flatnonzero(pulses.strengths > 0.4)
    if strong.size < LOCK_INTERVALS + 1:
        return
    times = pulses.times[strong]
    intervals = np.diff(times)
    alternating = pulses.signs[strong][1:] != pulses.signs[strong][:-1]
    windows = sliding_window_view(intervals, LOCK_INTERVALS)
    longest = windows.max(axis=1)
    ratio = windows / longest[:, None]
    is_long = ratio >= 0.75
    is_short = (ratio >= 0.375) & (ratio <= 0.625)
    valid = np.all(is_long | is_short, axis=1)
    valid &= np.all(sliding_window_view(alternating, LOCK_INTERVALS), axis=1)
    valid &= longest >= 2.5
    long_count = is_long.sum(axis=1)
    valid &= long_count >= 2
    candidates = np.flatnonzero(valid)
    if candidates.size == 0:
        return
    loudness = sliding_window_view(pulses.amplitudes[strong], LOCK_INTERVALS + 1).mean(axis=1)
    candidates = candidates[loudness[candidates] >= 0.2 * loudness[candidates].max()]
    strength = sliding_window_view(pulses.strengths[strong], LOCK_INTERVALS + 1).mean(axis=1)
    score = strength + 0.5 * (long_count < LOCK_INTERVALS)
    order = candidates[np.argsort(-score[candidates], kind="stable")]
    taken = np.zeros(pulses.times.size, dtype=bool)
    marked = 0
    firsts = strong[order].tolist()
    lasts = strong[order + LOCK_INTERVALS].tolist()
    for window, first, last in zip(order.tolist(), firsts, lasts, strict=True):
        while marked < len(claimed):
            low, high = claimed[marked]
            taken[low : high + 1] = True
            marked += 1
        if taken[first] or taken[last]:
            continue
        cell = float(np.mean(windows[window][is_long[window]]))
        nearby_from = max(0, window - 32)
        nearby = intervals[nearby_from : window + LOCK_INTERVALS + 32] / cell
        is_double = (nearby > 1.6) & (nearby < 2.4)
        doubled = int(np.count_nonzero(is_double))
        halved = int(np.count_nonzero((nearby > 0.4) & (nearby < 0.6)))
        if doubled > max(2, halved):
            long_at = int(np.flatnonzero(is_double)[0]) + nearby_from
            yield int(strong[long_at]), float(intervals[long_at])
        else:
            yield int(strong[window + int(np.argmax(is_long[window]))]), cell


#: A burst fades out when the mean bit confidence over this many cells drops below FADE_CONFIDENCE.
FADE_CELLS = 16
FADE_CONFIDENCE = 0.3


@dataclass
class _Tracked:
    bits: list[int]
    confidence: list[float]
    last_index: int
    last_time: float
    boundaries: list[float]  # the cell boundary after each bit


def _track(
    times: list[float],
    signs: list[int],
    strengths: list[float],
    amplitudes: list[float],
    lock_index: int,
    cell: float,
) -> _Tracked:
    """Follow the bit clock forward from a cell-boundary pulse (module docstring, step 4)."""
    count = len(times)
    t = times[lock_index]
    sign = signs[lock_index]
    level = amplitudes[lock_index]
    j = lock_index + 1
    bits: list[int] = []
    confidence: list[float] = []
    bad_run = 0
    recent = 0.0
    boundary_indices: list[int] = []
    boundary_times: list[float] = []
    last_good_index = lock_index
    last_good_time = t
    good_bits = 0
    while j < count:
        mid_best = 0.0
        same_best = same_time = same_amp = 0.0
        same_index = -1
        opposite_best = opposite_time = opposite_amp = 0.0
        opposite_index = -1
        while j < count and times[j] < t + 0.25 * cell:
            j += 1
        k = j
        limit = t + 1.35 * cell
        mid_limit = t + 0.72 * cell
        while k < count and times[k] < limit:
            s = strengths[k]
            if times[k] < mid_limit:
                if signs[k] != sign and s > mid_best:
                    mid_best = s
            elif signs[k] == sign:
                if s > same_best:
                    same_best, same_time, same_amp, same_index = s, times[k], amplitudes[k], k
            elif s > opposite_best:
                opposite_best, opposite_time, opposite_amp, opposite_index = s, times[k], amplitudes[k], k
            k += 1
        one_score = 0.5 * (mid_best + same_best)
        zero_score = opposite_best
        bit = 1 if one_score > zero_score else 0
        if bit:
            boundary_time, boundary_amp, boundary_index = same_time, same_amp, same_index
        else:
            boundary_time, boundary_amp, boundary_index = opposite_time, opposite_amp, opposite_index
        error = (boundary_time - t - cell) / cell if boundary_index >= 0 else 1.0
        good = boundary_index >= 0 and abs(error) < 0.25 and boundary_amp > 0.3 * level
        bits.append(bit)
        confidence.append(min(1.0, abs(one_score - zero_score)) if good else 0.0)
        if boundary_index >= 0 and abs(error) < 0.35:
            if good:
                cell += 0.3 * (boundary_time - t - cell)
                level += 0.2 * (boundary_amp - level)
            t = boundary_time
            j = boundary_index
        else:
            t += cell
        if not bit:
            sign = -sign
        boundary_indices.append(j)
        boundary_times.append(t)
        recent += confidence[-1] - (confidence[-1 - FADE_CELLS] if len(confidence) > FADE_CELLS else 0.0)
        if len(confidence) >= FADE_CELLS and recent < FADE_CONFIDENCE * FADE_CELLS:
            good_bits = min(good_bits, len(bits) - FADE_CELLS)
            if good_bits > 0:
                last_good_index = boundary_indices[good_bits - 1]
                last_good_time = boundary_times[good_bits - 1]
            break
        if good:
            bad_run = 0
            good_bits = len(bits)
            last_good_index = boundary_index
            last_good_time = t
        else:
            bad_run += 1
            if bad_run >= 4:
                break
    good_bits = max(good_bits, 0)
    return _Tracked(
        bits[:good_bits], confidence[:good_bits], last_good_index, last_good_time, boundary_times[:good_bits]
    )


MAX_BURSTS = 8


def recover_bursts(samples: Samples, rate: float) -> list[Burst]:
    """Every clock-locked burst of one channel, in time order, with per-bit confidence.

    Each burst is tracked forward and backward from its best lock, so the weak start of a swipe
    (slow hand, head not yet in contact) is read with a clock already settled on loud cells.
    """
    pulses = find_pulses(samples, rate)
    if pulses is None:
        return []
    times = pulses.times.tolist()
    signs = pulses.signs.tolist()
    strengths = pulses.strengths.tolist()
    amplitudes = pulses.amplitudes.tolist()
    count = len(times)
    reversed_times = [-value for value in reversed(times)]
    claimed: list[tuple[int, int]] = []
    bursts: list[Burst] = []
    for lock_index, cell in _lock_windows(pulses, claimed):
        if len(claimed) >= MAX_BURSTS:
            break
        ahead = _track(times, signs, strengths, amplitudes, lock_index, cell)
        behind = _track(
            reversed_times, signs[::-1], strengths[::-1], amplitudes[::-1], count - 1 - lock_index, cell
        )
        first_index = count - 1 - behind.last_index
        claimed.append((first_index, max(ahead.last_index, lock_index)))
        bits = behind.bits[::-1] + ahead.bits
        confidence = behind.confidence[::-1] + ahead.confidence
        if len(bits) >= MIN_BURST_BITS and confidence.count(0.0) <= 0.25 * len(bits):
            boundaries = [-time for time in reversed(behind.boundaries)]
            boundaries += [times[lock_index], *ahead.boundaries]
            bursts.append(Burst(bits, confidence, boundaries[0], boundaries[-1], boundaries))
    bursts.sort(key=lambda burst: burst.start)
    return bursts


def recover_bits(samples: Samples, rate: float) -> list[list[int]]:
    """Raw F2F bits of each burst in one channel's samples, in time order (for non-ISO cards).

    ``samples`` has shape (n,), any float or int dtype; ``rate`` in Hz.
    """
    return [burst.bits for burst in recover_bursts(samples, rate)]


#: A re-decided bit must be this uncertain, and the track around it this certain (median).
WEAK_BIT = 0.3
CONFIDENT_TRACK = 0.6
#: Characters per re-decided bit (at least one re-decision is allowed).
CHARACTERS_PER_REPAIR = 10
#: Shortest track text accepted after re-deciding bits.
MIN_REPAIRED_CHARACTERS = 8


def _repaired_candidates(bits: Sequence[int], confidence: Sequence[float]) -> list[list[int]]:
    """Bit streams with the weakest bit of each parity-failing character re-decided, one per
    start-sentinel candidate and character set (forward order of ``bits``).

    Only a bit with confidence at most ``WEAK_BIT`` is re-decided, at most one per
    ``CHARACTERS_PER_REPAIR`` characters, and only in a track whose median bit confidence is at
    least ``CONFIDENT_TRACK``: re-deciding bits in a noisy burst would let parity pass by chance.
    """
    candidates: list[list[int]] = []
    for fmt in (TrackFormat.ALPHA, TrackFormat.BCD):
        charset = CHARACTER_SETS[fmt]
        width = charset.bits_per_character
        pattern = bytes((charset.code(charset.start_sentinel) >> i) & 1 for i in range(charset.data_bits))
        end_code = charset.code(charset.end_sentinel)
        stream = bytes(bits)
        start = stream.find(pattern)
        while start >= 0:
            candidate = _repair_from(list(bits), confidence, start, width, charset.data_bits, end_code)
            if candidate is not None:
                candidates.append(candidate)
            start = stream.find(pattern, start + 1)
    return candidates


def _repair_from(
    repaired: list[int], confidence: Sequence[float], start: int, width: int, data_bits: int, end_code: int
) -> list[int] | None:
    flips = 0
    position = start
    characters = 0
    while True:
        if position + width > len(repaired) or characters > 110:
            return None
        chunk = repaired[position : position + width]
        if sum(chunk) % 2 == 0:
            weakest = min(range(width), key=lambda i: confidence[position + i])
            if confidence[position + weakest] > WEAK_BIT or flips >= 1 + characters // CHARACTERS_PER_REPAIR:
                return None
            repaired[position + weakest] ^= 1
            flips += 1
            chunk = repaired[position : position + width]
        code = sum(bit << i for i, bit in enumerate(chunk[:data_bits]))
        position += width
        characters += 1
        if code == end_code:
            break
    if position + width > len(repaired):
        return None
    lrc = repaired[position : position + width]
    if sum(lrc) % 2 == 0:
        weakest = min(range(width), key=lambda i: confidence[position + i])
        if confidence[position + weakest] > WEAK_BIT:
            return None
        repaired[position + weakest] ^= 1
        flips += 1
    region = sorted(confidence[start : position + width])
    if flips == 0 or region[len(region) // 2] < CONFIDENT_TRACK:
        return None
    return repaired


def decode_bits(bits: Sequence[int], confidence: Sequence[float] | None = None) -> Track | None:
    """The validated track in one burst's bits, or None (step 5).

    Tries the bits as recovered, then, with per-bit ``confidence``, re-decides the weakest bit of
    each character that fails parity (see :func:`_repaired_candidates`). Every candidate must pass
    the full check: parity, end sentinel, LRC and its parity, trailing clocking zeros, length.
    """
    try:
        return _validated(bits, allow_reverse=True)
    except ParseError:
        pass
    if confidence is None:
        return None
    return _repaired(list(bits), list(confidence))


def _repaired(bits: list[int], confidence: list[float]) -> Track | None:
    forward = (Direction.FORWARD, bits, confidence)
    backward = (Direction.REVERSE, bits[::-1], confidence[::-1])
    for direction, stream, weights in (forward, backward):
        for candidate in _repaired_candidates(stream, weights):
            try:
                track = _validated(candidate, allow_reverse=False, min_characters=MIN_REPAIRED_CHARACTERS)
            except ParseError:
                continue
            return Track(track.number, track.format, track.text, direction, track.raw_bits)
    return None


def _validated(bits: Sequence[int], *, allow_reverse: bool, min_characters: int = 0) -> Track:
    track = decode_track_bits(bits, min_trailing_zeros=MIN_TRAILING_ZEROS, allow_reverse=allow_reverse)
    if len(track.text) < max(min_characters, MIN_TEXT_CHARACTERS):
        raise TrackError("track too short to be told from noise", length=len(track.text))
    return track


def decode_segment(samples: Samples, rate: float) -> tuple[Track, ...]:
    """Validated tracks in one channel of one swipe segment.

    ``samples``: shape (n,), any float or integer dtype (scale does not matter); ``rate`` in Hz
    (1-400 kHz). Returns only tracks whose parity, LRC and trailing clocking zeros check, each
    distinct track once, in time order. Raises :class:`AudioFormatError` for an impossible rate
    or a multi-channel array; non-finite samples count as silence.
    """
    return decode_segment_scored(samples, rate)[0]


def decode_segment_scored(samples: Samples, rate: float) -> tuple[tuple[Track, ...], float]:
    """:func:`decode_segment` plus a quality 0-1: the mean bit confidence of the bursts that gave
    the tracks (0.0 when none did)."""
    return decode_bursts(recover_bursts(samples, rate))


def decode_bursts(bursts: Sequence[Burst]) -> tuple[tuple[Track, ...], float]:
    """The validated tracks in :func:`recover_bursts`' bursts (each distinct track once, in order)
    and their quality 0-1, as :func:`decode_segment_scored` returns them."""
    tracks: list[Track] = []
    scores: list[float] = []
    seen: set[tuple[TrackFormat, str]] = set()
    for burst in bursts:
        track = decode_bits(burst.bits, burst.confidence)
        if track is not None and (track.format, track.text) not in seen:
            seen.add((track.format, track.text))
            tracks.append(track)
            scores.append(sum(burst.confidence) / len(burst.confidence))
    return tuple(tracks), (sum(scores) / len(scores) if scores else 0.0)

"""Streaming swipe detection: a squelch that cuts swipes out of an endless audio stream.

The detector has explicit state (like ``scipy.signal.lfilter``'s ``zi``): feed it blocks of any
size and it emits each :class:`~posbridge.protocols.types.Swipe` as soon as the card has left the
head; the same samples in any block sizes give the same swipes, and
:func:`decode_recording` is exactly the detector fed a whole recording at once.

How it works, per channel, in frames of 4 ms:

- The level is each frame's power after removing its best quadratic fit (a high-pass near
  250 Hz; detection only, the decoder sees the raw samples) averaged over a few frames, so DC,
  mic bias and mains hum do not count.
- The noise floor is the minimum level over the last second of idle frames (minimum
  statistics), so it follows the room and an input AGC up and down, but freezes during a swipe.
- A swipe opens when a channel's level is ``open_db`` above its floor and closes after
  ``hangover_s`` below ``close_db`` above that floor (hysteresis) or ``release_db`` below the
  swipe's loudest frame (so a room that got noisier during the swipe cannot hold it open), or
  after ``max_swipe_s``. The hangover frames that closed a swipe count as idle; when they sit
  above the close threshold (the release closed it: the room got louder during the swipe) the
  floor restarts from them, so that louder room cannot reopen the squelch at once.
- A ring buffer keeps ``pre_roll_s`` of audio so leading clocking zeros recorded before the level
  rose are decoded too, but never reaches back into an already emitted swipe (one pass of a card
  gives one swipe); memory is bounded while idle.
- An idle stream costs little CPU: a quiet block (power about its mean under the close threshold
  of the tracked floor) is only stored until ``idle_batch_s`` of audio has gathered, then its
  frames are handled in one vectorised step; the floor's minimum is tracked incrementally and the
  audio buffer is preallocated. This changes when an idle frame is judged, never how.
- A closed segment is decoded per channel with :func:`posbridge.dsp.f2f.decode_segment`; the
  tracks of all channels make one swipe (two heads on L/R read two tracks of one card).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.f2f import check_rate, decode_bursts, recover_bursts
from posbridge.dsp.sliding import trailing_min
from posbridge.protocols.errors import AudioFormatError, ConfigError
from posbridge.protocols.types import Swipe, Track

SegmentCallback = Callable[[int, float, NDArray[np.float32]], None]


@dataclass(frozen=True)
class DetectorTuning:
    """Squelch settings (seconds and decibels); the defaults need no per-device tuning."""

    frame_s: float = 0.004
    open_db: float = 10.0
    close_db: float = 5.0
    release_db: float = 30.0
    hangover_s: float = 0.04
    pre_roll_s: float = 0.15
    post_roll_s: float = 0.02
    floor_window_s: float = 1.0
    smoothing_frames: int = 3
    max_swipe_s: float = 4.0
    idle_batch_s: float = 0.04
    min_level: float = 1e-9
    keep_undecoded: bool = False


class _SampleBuffer:
    """Recent audio, float32 of shape (n, channels), addressed by absolute sample index.

    Appends copy into a preallocated array (grown only when a swipe needs more room) and dropping
    old samples moves an offset, so an idle stream allocates nothing per block.
    """

    def __init__(self, channels: int, capacity: int) -> None:
        self._data = np.zeros((max(capacity, 16), channels), dtype=np.float32)
        self._offset = 0
        self.size = 0
        self.start = 0  # absolute index of the first sample held

    def append(self, samples: NDArray[np.float32]) -> None:
        count = samples.shape[0]
        end = self._offset + self.size
        if end + count > self._data.shape[0]:
            held = self._data[self._offset : end]
            if 2 * (self.size + count) > self._data.shape[0]:
                grown = np.zeros((2 * (self.size + count), self._data.shape[1]), dtype=np.float32)
                grown[: self.size] = held
                self._data = grown
            else:
                self._data[: self.size] = held.copy()
            self._offset = 0
            end = self.size
        self._data[end : end + count] = samples
        self.size += count

    def view(self, start: int, end: int) -> NDArray[np.float32]:
        """Samples ``start`` to ``end`` (absolute indices, clipped to what is held); no copy."""
        first = self._offset + max(start - self.start, 0)
        return self._data[first : self._offset + max(min(end - self.start, self.size), 0)]

    def drop_before(self, index: int) -> None:
        dropped = min(max(index - self.start, 0), self.size)
        self._offset += dropped
        self.size -= dropped
        self.start += dropped


class SwipeDetector:
    """Cut swipes out of a stream of audio blocks and decode them.

    ``rate`` in Hz; ``channels`` 1 or more (two heads on L/R: one swipe carries both tracks).
    Keyword arguments override :class:`DetectorTuning` fields. ``Swipe.quality`` is the decoder's
    mean bit confidence (0-1). With ``keep_undecoded=True`` swipes in which no track decoded but
    F2F bits were recovered are emitted too (``tracks == ()``, ``quality == 0``), for non-ISO cards
    and raw-bit work. ``on_segment(channel, start_s, samples)`` receives the audio of every
    segment (float32, one channel, including pre-roll) before it is decoded.
    """

    def __init__(
        self,
        rate: float,
        channels: int = 1,
        *,
        on_segment: SegmentCallback | None = None,
        **tuning: Any,
    ) -> None:
        checked_rate = check_rate(rate)
        if not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"channels must be a positive integer, got {channels}", key="channels")
        try:
            self.tuning = DetectorTuning(**tuning)
        except TypeError as error:
            raise ConfigError(f"unknown detector setting: {error}", key="tuning") from error
        self.rate = checked_rate
        self.channels = channels
        self.on_segment = on_segment
        t = self.tuning
        self._frame = max(8, round(t.frame_s * rate))
        ramp = np.linspace(-1.0, 1.0, self._frame)
        basis = np.linalg.qr(np.stack((np.ones(self._frame), ramp, ramp * ramp), axis=1))[0]
        self._basis_rows = np.ascontiguousarray(basis.T)  # (3, frame): orthonormal constant, ramp, parabola
        self._pre_roll = round(t.pre_roll_s * rate)
        self._post_roll = round(t.post_roll_s * rate)
        self._hangover = max(1, round(t.hangover_s / (self._frame / rate)))
        self._floor_frames = max(2, round(t.floor_window_s / (self._frame / rate)))
        self._max_frames = max(1, round(t.max_swipe_s / (self._frame / rate)))
        self._idle_batch = round(t.idle_batch_s * rate)
        self._open_ratio = 10 ** (t.open_db / 10)
        self._close_ratio = 10 ** (t.close_db / 10)
        self._release_ratio = 10 ** (-t.release_db / 10)
        self._smoothing = max(1, int(t.smoothing_frames))
        self._zero_row = np.zeros((1, channels))
        self._recent_energy = np.zeros((0, channels))  # last frames' energies, for smoothing
        self._idle_levels = np.zeros((0, channels))  # smoothed levels of recent idle frames
        self._idle_min = np.full(channels, np.inf)  # their minimum ...
        self._idle_min_at = np.zeros(channels, dtype=np.int64)  # ... and which idle frame it was
        self._idle_count = 0  # idle frames appended since the history was last replaced
        self._quiet_limits = [0.0] * channels  # block power under which an idle block may wait
        self._level_history = np.zeros((0, channels))  # smoothed levels of the most recent frames
        held = self._pre_roll + (self._smoothing + 2) * self._frame
        self._audio = _SampleBuffer(channels, 2 * held + 8192)
        self._samples_seen = 0
        self._frames_seen = 0
        self._open_frame: int | None = None
        self._last_active_frame = 0
        self._quiet_frames = 0
        self._floor_at_open = np.zeros(channels)
        self._peak_level = np.zeros(channels)
        self._emitted_until = 0  # end sample of the last emitted swipe: later pre-roll stops there

    @property
    def buffered_samples(self) -> int:
        """Samples per channel held right now (pre-roll while idle, the swipe while one is open)."""
        return self._audio.size

    @property
    def in_swipe(self) -> bool:
        """True while the squelch is open."""
        return self._open_frame is not None

    # ----------------------------------------------------------------------------- input

    def _as_block(self, block: NDArray[np.generic]) -> NDArray[np.float32]:
        data = np.asarray(block)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] != self.channels:
            raise AudioFormatError(
                f"expected blocks of shape (n,) or (n, {self.channels}), got {data.shape}", shape=data.shape
            )
        kind = data.dtype.kind
        if kind == "f":
            out = np.asarray(data, dtype=np.float32)
        elif data.dtype == np.int16:
            out = data.astype(np.float32) / np.float32(32768.0)
        elif kind in "iu":
            info = np.iinfo(data.dtype)
            out = data.astype(np.float32) / float(-info.min if info.min < 0 else info.max)
        else:
            raise AudioFormatError(f"unsupported sample type {data.dtype}", dtype=str(data.dtype))
        return out

    def process(self, block: NDArray[np.generic]) -> list[Swipe]:
        """Feed one block, shape (n,) or (n, channels), float (full scale 1.0) or int16.

        Returns the swipes that ended within the samples seen so far (often none). While idle,
        quiet blocks are only stored until ``idle_batch_s`` of them have gathered, then looked at
        together; that changes when an idle frame is judged, never how (any block sizes give the
        same swipes).
        """
        samples = self._as_block(block)
        count = samples.shape[0]
        if count == 0:
            return []
        columns = [samples[:, channel] for channel in range(self.channels)]
        squares = [float(np.dot(column, column)) for column in columns]
        if not all(map(math.isfinite, squares)):
            samples = np.where(np.isfinite(samples), samples, np.float32(0.0))
            columns = [samples[:, channel] for channel in range(self.channels)]
        self._audio.append(samples)
        self._samples_seen += count
        waiting = self._samples_seen - self._frames_seen * self._frame
        if self._open_frame is None and waiting < self._idle_batch:
            sums = [float(column.sum()) for column in columns]
            pairs = zip(squares, sums, strict=True)
            powers = [(square - total * total / count) / count for square, total in pairs]
            if all(power <= limit for power, limit in zip(powers, self._quiet_limits, strict=True)):
                return []  # quiet: under the close threshold of the floor on every channel
        return self._advance()

    def _advance(self) -> list[Swipe]:
        """Run the squelch over every whole frame received and not yet looked at."""
        framed_until = self._frames_seen * self._frame
        whole = (self._samples_seen - framed_until) // self._frame
        if whole == 0:
            return []
        framed = self._audio.view(framed_until, framed_until + whole * self._frame).astype(np.float64)
        energies = self._frame_energies(framed.reshape(whole, self._frame, self.channels))
        return self._frames(energies)

    def flush(self) -> list[Swipe]:
        """End of stream: close and decode a swipe still open."""
        swipes = self._advance()
        if self._open_frame is not None:
            swipe = self._close(self._samples_seen, self._samples_seen)
            if swipe is not None:
                swipes.append(swipe)
        return swipes

    # ----------------------------------------------------------------------------- squelch

    def _frame_energies(self, frames: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mean power of each frame (shape (frames, samples, channels)) after removing its best
        quadratic fit: a high-pass near 1 / frame length that drops DC, mic bias and mains hum.
        Each frame's value depends on its own samples only, so any block sizes give the same levels."""
        fitted = self._basis_rows @ frames
        residual = np.square(frames).sum(axis=1) - np.square(fitted).sum(axis=1)
        result: NDArray[np.float64] = np.maximum(residual, 0.0) / self._frame
        return result

    def _smoothed(self, energies: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mean energy over the last ``smoothing_frames`` frames (fewer at the start of the stream)."""
        kernel = self._smoothing
        count = energies.shape[0]
        stacked = np.concatenate((self._zero_row, self._recent_energy, energies))
        cumulative = np.cumsum(stacked, axis=0)
        size = cumulative.shape[0] - 1
        if size - count >= kernel - 1:
            first = size - count + 1
            levels = cumulative[first:] - cumulative[first - kernel : size + 1 - kernel]
            levels /= kernel
        else:
            rows = np.arange(size - count + 1, size + 1)
            counts = np.minimum(rows, kernel)[:, None]
            levels = (cumulative[rows] - cumulative[np.maximum(rows - kernel, 0)]) / counts
        self._recent_energy = stacked[max(size + 2 - kernel, 1) :]
        return levels

    def _floors(self, levels: NDArray[np.float64]) -> NDArray[np.float64]:
        """Floor before each of ``levels`` assuming all of them idle: min over the preceding window.

        While the minimum of the idle history stays inside the window for all of ``levels`` (the
        usual case for a live block), that is its running minimum with ``levels`` themselves."""
        count = levels.shape[0]
        if count <= self._floor_frames and (
            self._idle_min_at >= self._idle_count + count - 1 - self._floor_frames
        ).all():
            before: NDArray[np.float64] = np.concatenate((self._idle_min[None], levels[:-1]))
            return np.minimum.accumulate(before, axis=0)
        history = np.concatenate((self._idle_levels, levels))
        minima = trailing_min(history, self._floor_frames)
        before = np.concatenate((np.full((1, self.channels), np.inf), minima[:-1]))
        result: NDArray[np.float64] = before[-count:]
        return result

    def _frames(self, energies: NDArray[np.float64]) -> list[Swipe]:
        levels = self._smoothed(energies)
        history_before = self._level_history
        self._level_history = np.concatenate((history_before, levels))[-self._floor_frames :]
        swipes: list[Swipe] = []
        index = 0
        count = levels.shape[0]
        while index < count:
            if self._open_frame is None:
                chunk = levels[index:]
                floors = self._floors(chunk)
                np.maximum(floors, self.tuning.min_level, out=floors)
                loud = chunk / floors > self._open_ratio  # an unknown (infinite) floor gives 0
                if self._open_ratio <= 1:
                    loud &= chunk > self.tuning.min_level
                if not loud.any():
                    self._remember_idle(chunk)
                    self._frames_seen += chunk.shape[0]
                    self._trim_idle_audio()
                    break
                stop = int(np.flatnonzero(loud.any(axis=1))[0])
                self._remember_idle(chunk[:stop])
                self._frames_seen += stop
                index += stop
                self._open_frame = self._frames_seen
                self._last_active_frame = self._frames_seen
                self._quiet_frames = 0
                self._floor_at_open = floors[stop]
                self._peak_level = chunk[stop]
                self._frames_seen += 1
                index += 1
            else:
                rest = levels[index:]
                peaks = np.maximum.accumulate(np.maximum(rest, self._peak_level), axis=0)
                self._peak_level = peaks[-1]
                threshold = np.maximum(self._floor_at_open * self._close_ratio, peaks * self._release_ratio)
                active = np.any(rest > threshold, axis=1).tolist()
                for is_active in active:
                    frame = self._frames_seen
                    self._frames_seen += 1
                    index += 1
                    if is_active:
                        self._last_active_frame = frame
                        self._quiet_frames = 0
                    else:
                        self._quiet_frames += 1
                    too_long = frame - self._open_frame >= self._max_frames
                    if self._quiet_frames >= self._hangover or too_long:
                        active_end = (self._last_active_frame + 1) * self._frame
                        end_sample = min(active_end + self._post_roll, self._samples_seen)
                        recent = np.concatenate((history_before, levels[:index]))
                        if too_long:
                            end_sample = (frame + 1) * self._frame
                            self._set_idle(recent)
                        else:
                            self._restart_floor(recent[-self._quiet_frames :])
                        swipe = self._close(end_sample, active_end)
                        if swipe is not None:
                            swipes.append(swipe)
                        break
        return swipes

    def _restart_floor(self, quiet: NDArray[np.float64]) -> None:
        """Count the hangover frames that closed a swipe as idle. If they sit above the close
        threshold (the release closed the swipe: the room got louder during it), the floor restarts
        from them, so the same louder room cannot reopen the squelch at once."""
        if np.any(quiet.min(axis=0) > self._floor_at_open * self._close_ratio):
            self._set_idle(quiet)
        else:
            self._remember_idle(quiet)

    def _remember_idle(self, levels: NDArray[np.float64]) -> None:
        """Append idle levels to the last ``floor_window_s`` of them, keeping track of their minimum."""
        count = levels.shape[0]
        if not count:
            return
        history = np.concatenate((self._idle_levels, levels))
        self._idle_count += count
        if not (self._idle_min_at >= self._idle_count - self._floor_frames).all():
            self._set_idle(history)
            return
        self._idle_levels = history[-self._floor_frames :]
        lowest = levels.min(axis=0)
        newer = lowest <= self._idle_min
        if newer.any():
            at = self._idle_count - 1 - np.argmin(levels[::-1], axis=0)
            self._idle_min = np.where(newer, lowest, self._idle_min)
            self._idle_min_at = np.where(newer, at, self._idle_min_at)
            self._quiet_limits = (self._idle_min * self._close_ratio).tolist()

    def _set_idle(self, levels: NDArray[np.float64]) -> None:
        """Replace the idle history by the last ``floor_window_s`` of ``levels``."""
        kept = levels[-self._floor_frames :]
        self._idle_levels = kept
        self._idle_count = kept.shape[0]
        if kept.shape[0]:
            self._idle_min = kept.min(axis=0)
            self._idle_min_at = kept.shape[0] - 1 - np.argmin(kept[::-1], axis=0)
        else:
            self._idle_min = np.full(self.channels, np.inf)
            self._idle_min_at = np.zeros(self.channels, dtype=np.int64)
        self._quiet_limits = (self._idle_min * self._close_ratio).tolist()

    def _trim_idle_audio(self) -> None:
        if self._open_frame is None:
            self._audio.drop_before((self._frames_seen - self._smoothing - 1) * self._frame - self._pre_roll)

    # ----------------------------------------------------------------------------- decoding

    def _close(self, end_sample: int, active_end_sample: int) -> Swipe | None:
        assert self._open_frame is not None
        active_start_sample = self._open_frame * self._frame
        start_sample = max(active_start_sample - self._pre_roll, self._audio.start, self._emitted_until)
        segment = self._audio.view(start_sample, end_sample)
        self._open_frame = None
        self._quiet_frames = 0
        started_at = active_start_sample / self.rate
        ended_at = min(active_end_sample, end_sample) / self.rate
        tracks: list[Track] = []
        qualities: list[float] = []
        first_channel: int | None = None
        has_f2f = False
        for channel in range(self.channels):
            samples = segment[:, channel].copy()
            if self.on_segment is not None:
                self.on_segment(channel, start_sample / self.rate, samples)
            bursts = recover_bursts(samples, self.rate) if samples.size else []
            has_f2f = has_f2f or bool(bursts)
            found, quality = decode_bursts(bursts)
            if found:
                qualities.append(quality)
                if first_channel is None:
                    first_channel = channel
            tracks.extend(found)
        self._trim_idle_audio()
        if not tracks and not (self.tuning.keep_undecoded and has_f2f):
            return None
        self._emitted_until = end_sample
        tracks.sort(key=lambda track: track.number)
        return Swipe(
            tracks=tuple(tracks),
            started_at=started_at,
            ended_at=ended_at,
            quality=round(min(qualities), 3) if qualities else 0.0,
            channel=first_channel or 0,
        )


def decode_recording(samples: NDArray[np.generic], rate: float, **tuning: Any) -> list[Swipe]:
    """Every swipe in a whole recording: the :class:`SwipeDetector` fed everything at once, then flushed.

    ``samples`` has shape (n,) or (n, channels), float (full scale 1.0) or int16; ``rate`` in Hz.
    """
    data = np.asarray(samples)
    channels = 1 if data.ndim == 1 else int(data.shape[1]) if data.ndim == 2 else 0
    if channels < 1:
        raise AudioFormatError(
            f"expected samples of shape (n,) or (n, channels), got {data.shape}", shape=data.shape
        )
    detector = SwipeDetector(rate, channels, **tuning)
    return detector.process(data) + detector.flush()

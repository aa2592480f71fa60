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
  gives one swipe); memory is bounded while idle. Idle frames are handled in vectorised
  blocks, so an idle stream costs little CPU.
- A closed segment is decoded per channel with :func:`posbridge.dsp.f2f.decode_segment`; the
  tracks of all channels make one swipe (two heads on L/R read two tracks of one card).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.f2f import check_rate, decode_segment_scored, recover_bursts
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
    min_level: float = 1e-9
    keep_undecoded: bool = False


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
        self._basis = np.linalg.qr(np.stack((np.ones(self._frame), ramp, ramp * ramp), axis=1))[0]
        self._pre_roll = round(t.pre_roll_s * rate)
        self._post_roll = round(t.post_roll_s * rate)
        self._hangover = max(1, round(t.hangover_s / (self._frame / rate)))
        self._floor_frames = max(2, round(t.floor_window_s / (self._frame / rate)))
        self._max_frames = max(1, round(t.max_swipe_s / (self._frame / rate)))
        self._open_ratio = 10 ** (t.open_db / 10)
        self._close_ratio = 10 ** (t.close_db / 10)
        self._release_ratio = 10 ** (-t.release_db / 10)
        self._smoothing = max(1, int(t.smoothing_frames))
        self._pending = np.zeros((0, channels))  # samples of an unfinished frame
        self._recent_energy = np.zeros((0, channels))  # last frames' energies, for smoothing
        self._idle_levels = np.zeros((0, channels))  # smoothed levels of recent idle frames
        self._level_history = np.zeros((0, channels))  # smoothed levels of the most recent frames
        self._audio = np.zeros((0, channels), dtype=np.float32)  # ring / swipe buffer
        self._audio_start = 0  # sample index of _audio[0]
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
        return int(self._audio.shape[0])

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
        if data.dtype == np.int16:
            out = data.astype(np.float32) / 32768.0
        elif np.issubdtype(data.dtype, np.integer):
            info = np.iinfo(data.dtype)
            out = data.astype(np.float32) / float(-info.min if info.min < 0 else info.max)
        elif np.issubdtype(data.dtype, np.floating):
            out = data.astype(np.float32)
        else:
            raise AudioFormatError(f"unsupported sample type {data.dtype}", dtype=str(data.dtype))
        if not np.all(np.isfinite(out)):
            out = np.where(np.isfinite(out), out, np.float32(0.0))
        return out

    def process(self, block: NDArray[np.generic]) -> list[Swipe]:
        """Feed one block, shape (n,) or (n, channels), float (full scale 1.0) or int16.

        Returns the swipes that ended within the samples seen so far (often none).
        """
        samples = self._as_block(block)
        if samples.shape[0] == 0:
            return []
        self._audio = np.concatenate((self._audio, samples)) if self._audio.size else samples.copy()
        self._samples_seen += samples.shape[0]
        pending = np.concatenate((self._pending, samples.astype(np.float64)))
        whole = pending.shape[0] // self._frame
        self._pending = pending[whole * self._frame :]
        if whole == 0:
            self._trim_idle_audio()
            return []
        framed = pending[: whole * self._frame].reshape(whole, self._frame, self.channels)
        energies = self._frame_energies(framed)
        return self._frames(energies)

    def flush(self) -> list[Swipe]:
        """End of stream: close and decode a swipe still open."""
        swipes: list[Swipe] = []
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
        total = np.einsum("fsc,fsc->fc", frames, frames)
        fitted = np.einsum("fsc,sk->fkc", frames, self._basis)
        residual = total - np.einsum("fkc,fkc->fc", fitted, fitted)
        result: NDArray[np.float64] = np.maximum(residual, 0.0) / self._frame
        return result

    def _smoothed(self, energies: NDArray[np.float64]) -> NDArray[np.float64]:
        history = np.concatenate((self._recent_energy, energies))
        kernel = self._smoothing
        cumulative = np.cumsum(np.concatenate((np.zeros((1, self.channels)), history)), axis=0)
        counts = np.minimum(np.arange(1, history.shape[0] + 1), kernel)[:, None]
        lower = np.maximum(np.arange(1, history.shape[0] + 1) - kernel, 0)
        levels = (cumulative[1:] - cumulative[lower]) / counts
        self._recent_energy = history[-(kernel - 1) :] if kernel > 1 else history[:0]
        result: NDArray[np.float64] = levels[-energies.shape[0] :]
        return result

    def _floors(self, levels: NDArray[np.float64]) -> NDArray[np.float64]:
        """Floor before each of ``levels`` assuming all of them idle: min over the preceding window."""
        history = np.concatenate((self._idle_levels, levels))
        minima = trailing_min(history, self._floor_frames)
        before = np.concatenate((np.full((1, self.channels), np.inf), minima[:-1]))
        result: NDArray[np.float64] = before[-levels.shape[0] :]
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
                floors = np.maximum(self._floors(chunk), self.tuning.min_level)
                ratio = chunk / floors
                loud = (ratio > self._open_ratio) & np.isfinite(floors) & (chunk > self.tuning.min_level)
                opening = np.flatnonzero(np.any(loud, axis=1))
                stop = int(opening[0]) if opening.size else chunk.shape[0]
                self._remember_idle(chunk[:stop])
                self._frames_seen += stop
                index += stop
                if opening.size:
                    self._open_frame = self._frames_seen
                    self._last_active_frame = self._frames_seen
                    self._quiet_frames = 0
                    self._floor_at_open = floors[stop]
                    self._peak_level = chunk[stop]
                    self._frames_seen += 1
                    index += 1
                else:
                    self._trim_idle_audio()
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
                            self._idle_levels = recent[-self._floor_frames :]
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
            self._idle_levels = quiet[-self._floor_frames :]
        else:
            self._remember_idle(quiet)

    def _remember_idle(self, levels: NDArray[np.float64]) -> None:
        if levels.shape[0]:
            self._idle_levels = np.concatenate((self._idle_levels, levels))[-self._floor_frames :]

    def _trim_idle_audio(self) -> None:
        if self._open_frame is None:
            keep_from = max((self._frames_seen - self._smoothing - 1) * self._frame - self._pre_roll, 0)
            drop = keep_from - self._audio_start
            if drop > 0:
                self._audio = self._audio[drop:]
                self._audio_start = keep_from

    # ----------------------------------------------------------------------------- decoding

    def _has_f2f(self, segment: NDArray[np.float32]) -> bool:
        """True when some channel of an undecoded segment holds a clock-locked F2F burst."""
        channels = (np.ascontiguousarray(segment[:, channel]) for channel in range(self.channels))
        return any(recover_bursts(samples, self.rate) for samples in channels)

    def _close(self, end_sample: int, active_end_sample: int) -> Swipe | None:
        assert self._open_frame is not None
        active_start_sample = self._open_frame * self._frame
        start_sample = max(active_start_sample - self._pre_roll, self._audio_start, self._emitted_until)
        segment = self._audio[start_sample - self._audio_start : end_sample - self._audio_start]
        self._open_frame = None
        self._quiet_frames = 0
        started_at = active_start_sample / self.rate
        ended_at = min(active_end_sample, end_sample) / self.rate
        tracks: list[Track] = []
        qualities: list[float] = []
        first_channel: int | None = None
        for channel in range(self.channels):
            samples = np.ascontiguousarray(segment[:, channel])
            if self.on_segment is not None:
                self.on_segment(channel, start_sample / self.rate, samples)
            found, quality = decode_segment_scored(samples, self.rate) if samples.size else ((), 0.0)
            if found:
                qualities.append(quality)
                if first_channel is None:
                    first_channel = channel
            tracks.extend(found)
        self._trim_idle_audio()
        if not tracks and not (self.tuning.keep_undecoded and self._has_f2f(segment)):
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

"""``virtual://`` audio: synthesized swipes at chosen moments, deterministic per seed.

``virtual://?swipes=20&seed=7&duration=60`` places 20 swipes of generated test cards at random
moments in 60 s of low-level hiss; ``virtual://?swipes=3&gap=2`` spaces them 2 s apart;
``virtual://?at=1.5,4,9.25`` starts them at those stream times. The same URL always yields the
same samples and the same cards, which tests, the demo and the dongle rigs rely on: what should
be decoded is in :attr:`VirtualAudioSource.expected`. ``realtime=1`` paces blocks like a device.

Options: ``swipes`` (count), ``at`` (start times, s), ``seed``, ``rate`` (Hz, default 48000),
``channels`` (1, or 2: Track 1 left, Track 2 right), ``gap`` (s between swipes),
``duration`` (s; default: last swipe + 1 s, or 10 s without swipes), ``block`` (frames, default
10 ms), ``noise`` (RMS of the steady hiss, default 0.001), ``realtime``, the synthesizer's ``speed``
(cm/s), and ``snr`` (dB: each swipe scaled to that signal-to-hiss ratio; default: peak 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray
from posbridge.hardware.audio.source import AudioSource, UrlOptions, live_block_frames, register_backend
from posbridge.hardware.audio.wavfile import check_stream_settings
from posbridge.protocols.errors import UsageError
from posbridge.protocols.types import Card, Track, TrackFormat

LEAD_S = 0.5
TAIL_S = 1.0
MIN_GAP_S = 0.4
DEFAULT_GAP_S = 1.5
IDLE_DURATION_S = 10.0
_NOISE_CHUNK = 8192


@dataclass(frozen=True)
class ExpectedSwipe:
    """A swipe the virtual source plays: where (stream seconds) and what it encodes.

    ``tracks[k]`` is the track recorded on channel ``k`` (Track 1 on a mono source; Track 1 left
    and Track 2 right on a stereo one); ``card`` is the test card the tracks came from;
    ``last_transition_s`` is when the last flux transition (the last trailing clocking zero) passes
    the head: the moment a live reader could know the swipe is over.
    """

    start_s: float
    end_s: float
    tracks: tuple[Track, ...] = field(repr=False)
    card: Card = field(repr=False)
    last_transition_s: float = 0.0  # stream time of the last flux transition (for latency figures)


def synthesize_card_swipe(
    rng: np.random.Generator, rate: int, channels: int = 1, speed_cm_s: float | None = None
) -> tuple[NDArray[np.float32], tuple[Track, ...], Card]:
    """One noiseless swipe of a fresh test card: ``(samples float32 (n, channels), tracks, card)``.

    The synthesizer's own noise is off: the source adds one steady hiss to the whole stream, as a
    sound card does, so the noise floor does not jump when a swipe starts or ends.
    """
    from posbridge.dsp.synth import SwipeParams, synthesize_swipe, test_card_tracks

    card, specs = test_card_tracks(rng)
    params = SwipeParams(rate=float(rate), channels=channels, snr_db=None)
    if speed_cm_s is not None:
        params = replace(params, speed_cm_s=speed_cm_s)
    samples = np.asarray(synthesize_swipe(specs, params, rng), dtype=np.float32).reshape(-1, channels)
    recorded = specs[:1] if channels == 1 else [specs[0], specs[1] if len(specs) > 1 else specs[0]]
    tracks = tuple(Track(1 if fmt is TrackFormat.ALPHA else 2, fmt, text) for text, fmt in recorded)
    return samples, tracks, card


def scale_to_snr(clip: NDArray[np.float32], noise_rms: float, snr_db: float) -> NDArray[np.float32]:
    """``clip`` scaled so its power over the swipe (where it exceeds 1 % of its peak) is ``snr_db``
    above ``noise_rms`` squared."""
    active = np.abs(clip) > 0.01 * float(np.max(np.abs(clip)))
    power = float(np.mean(clip[active] ** 2)) if active.any() else 0.0
    if power <= 0.0:
        return clip
    gain = np.sqrt(noise_rms**2 * 10 ** (snr_db / 10) / power)
    scaled: NDArray[np.float32] = np.clip(clip * np.float32(gain), -1.0, 1.0).astype(np.float32)
    return scaled


@register_backend("virtual")
class VirtualAudioSource(AudioSource):
    """Synthesized swipes in hiss; see the module docstring for the URL options."""

    def __init__(
        self,
        url: str = "virtual://",
        *,
        swipes: int = 0,
        at: list[float] | None = None,
        seed: int = 0,
        rate: int = 48_000,
        channels: int = 1,
        gap_s: float | None = None,
        duration_s: float | None = None,
        block_frames: int | None = None,
        noise_rms: float = 0.001,
        realtime: bool = False,
        speed_cm_s: float | None = None,
        snr_db: float | None = None,
    ) -> None:
        check_stream_settings(rate, channels)
        super().__init__(url, rate, channels)
        self.seed = seed
        self.realtime = realtime
        self.block_frames = block_frames or live_block_frames(rate)
        self.noise_rms = noise_rms
        count = len(at) if at else swipes
        if channels > 2:
            raise UsageError("virtual:// synthesizes mono or stereo (channels=1 or 2)", channels=channels)
        clips: list[NDArray[np.float32]] = []
        made: list[tuple[tuple[Track, ...], Card]] = []
        for index in range(count):
            samples, tracks, card = synthesize_card_swipe(
                np.random.default_rng([seed, 100 + index]), rate, channels, speed_cm_s
            )
            clips.append(samples if snr_db is None else scale_to_snr(samples, noise_rms, snr_db))
            made.append((tracks, card))
        lengths = [clip.shape[0] / rate for clip in clips]
        starts = self._place(lengths, at, gap_s, duration_s, np.random.default_rng([seed, 1]))
        if duration_s is None:
            duration_s = starts[-1] + lengths[-1] + TAIL_S if starts else IDLE_DURATION_S
        self.duration_s = float(duration_s)
        self.total_frames = round(self.duration_s * rate)
        self._clips: list[tuple[int, NDArray[np.float32]]] = []
        expected: list[ExpectedSwipe] = []
        for start, clip, (tracks, card) in zip(starts, clips, made, strict=True):
            first = round(start * rate)
            self._clips.append((first, clip))
            loud = np.nonzero(np.max(np.abs(clip), axis=1) > 0.1 * float(np.max(np.abs(clip))))[0]
            last = (first + int(loud[-1])) / rate if loud.size else first / rate
            expected.append(ExpectedSwipe(first / rate, (first + clip.shape[0]) / rate, tracks, card, last))
        self.expected: tuple[ExpectedSwipe, ...] = tuple(expected)
        self._noise_rng = np.random.default_rng([seed, 2])
        self._noise = np.zeros((0, channels), dtype=np.float32)

    @staticmethod
    def _place(
        lengths: list[float],
        at: list[float] | None,
        gap_s: float | None,
        duration_s: float | None,
        rng: np.random.Generator,
    ) -> list[float]:
        if at:
            ordered = sorted(at)
            for start, length, following in zip(ordered, lengths, ordered[1:], strict=False):
                if start + length + MIN_GAP_S > following:
                    raise UsageError(f"virtual swipes at {start:g} s and {following:g} s overlap")
            return ordered
        if not lengths:
            return []
        if gap_s is not None or duration_s is None:
            gap = DEFAULT_GAP_S if gap_s is None else max(gap_s, MIN_GAP_S)
            starts, cursor = [], LEAD_S
            for length in lengths:
                starts.append(cursor)
                cursor += length + gap
            return starts
        free = duration_s - LEAD_S - TAIL_S - sum(lengths) - MIN_GAP_S * (len(lengths) - 1)
        if free < 0:
            raise UsageError(f"{len(lengths)} swipes do not fit in {duration_s:g} s of virtual audio")
        shares = rng.dirichlet(np.ones(len(lengths) + 1)) * free
        starts, cursor = [], LEAD_S
        for length, share in zip(lengths, shares[:-1], strict=False):
            cursor += float(share)
            starts.append(cursor)
            cursor += length + MIN_GAP_S
        return starts

    @classmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> AudioSource:
        options = UrlOptions(url, params)
        swipes, at, seed = options.integer("swipes", 0), options.numbers("at"), options.integer("seed", 0)
        rate, channels = options.integer("rate", 48_000, minimum=1), options.integer("channels", 1, minimum=1)
        gap_s, duration_s = options.number("gap", None), options.number("duration", None)
        block_frames = options.integer("block", 0) or None
        noise_rms = options.number("noise", 0.001) or 0.0
        realtime = options.flag("realtime")
        speed_cm_s = options.number("speed", None, minimum=1.0)
        snr_db = options.number("snr", None, minimum=-100.0)
        options.finish()
        if target:
            raise UsageError("virtual:// takes no path; write virtual://?swipes=3&seed=1", url=url)
        return cls(
            url,
            swipes=swipes,
            at=at,
            seed=seed,
            rate=rate,
            channels=channels,
            gap_s=gap_s,
            duration_s=duration_s,
            block_frames=block_frames,
            noise_rms=noise_rms,
            realtime=realtime,
            speed_cm_s=speed_cm_s,
            snr_db=snr_db,
        )

    def _hiss(self, frames: int) -> NDArray[np.float32]:
        while self._noise.shape[0] < frames:
            chunk = self._noise_rng.standard_normal((_NOISE_CHUNK, self.channels)).astype(np.float32)
            self._noise = np.concatenate([self._noise, chunk * np.float32(self.noise_rms)])
        block, self._noise = self._noise[:frames], self._noise[frames:]
        return block

    def _read_frames(self) -> NDArray[np.float32] | None:
        first = self.frames_read
        frames = min(self.block_frames, self.total_frames - first)
        if frames <= 0:
            return None
        block = self._hiss(frames).copy()
        last = first + frames
        for start, clip in self._clips:
            if start < last and start + clip.shape[0] > first:
                lo, hi = max(start, first), min(start + clip.shape[0], last)
                block[lo - first : hi - first] += clip[lo - start : hi - start]
        if self.realtime:
            self.pace(last / self.rate)
        return block

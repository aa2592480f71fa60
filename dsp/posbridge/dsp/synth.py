"""A magnetic-stripe swipe synthesizer: what a bare read head on a sound card's mic input records.

The card is modelled in space, then sampled in time. Bits are laid along the stripe at the ISO/IEC
7811-2 recording densities (Track 1 and 3: 210 bits per inch, Track 2: 75 bpi) in F2F (Aiken
biphase, ISO/IEC 7811-2 §7.2): a flux transition at every bit-cell boundary and one more in the
middle of a cell holding a one. Each transition reads back as a Lorentzian pulse
``1 / (1 + (2 (x - x_k) / PW50)^2)`` of alternating sign whose width PW50 is a length on the stripe,
so it shortens in time as the card speeds up. The head voltage is proportional to speed
(Faraday's law, dΦ/dt = dΦ/dx · v) and to a head-contact factor that ramps up over the first
millimetres. The hand's speed follows a geometric ramp (``speed_ramp`` = end / start speed) with a
sinusoidal wobble. Then the sound card: DC bias, mains hum with harmonics, white noise at a given
SNR (signal power over the swipe / noise power over the full band), a first-order AC-coupling
high-pass, and clipping.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from posbridge.dsp.f2f import MAX_RATE, MIN_RATE
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.errors import ConfigError
from posbridge.protocols.magstripe import encode_track
from posbridge.protocols.types import Card, TrackFormat

#: ISO/IEC 7811-2 recording densities in bits per centimetre.
BITS_PER_CM: dict[TrackFormat, float] = {TrackFormat.ALPHA: 210 / 2.54, TrackFormat.BCD: 75 / 2.54}

TrackSpec = tuple[str, TrackFormat]


@dataclass(frozen=True)
class SwipeParams:
    """Everything that shapes one synthesized swipe.

    Units: ``rate`` in Hz; ``speed_cm_s`` is the geometric mean of start and end speed in cm/s;
    ``speed_ramp`` is end speed / start speed (2.0: the hand accelerates to twice its start speed);
    ``wobble`` is the relative amplitude of a sinusoidal speed variation with ``wobble_cycles``
    periods along the card; ``snr_db`` is signal power over the swipe / white-noise power (None:
    no noise); ``hum_db`` is hum power relative to signal power (None: no hum) at ``hum_hz`` with
    its 3rd and 5th harmonics; ``ac_coupling_hz`` is the corner of a first-order high-pass (None:
    DC coupled); ``clip_level`` clips at that fraction of the clean peak (None: no clipping);
    ``contact_ramp_from`` is the relative amplitude at the first flux transition, rising linearly to
    1 over ``contact_ramp_mm``; ``reverse`` swipes the card backwards; ``polarity`` is +1 or -1;
    ``leading_zeros``/``trailing_zeros`` are clocking zeros recorded around the track;
    ``silence_s`` is quiet time before and after the swipe; ``pw50_um`` is the readback pulse
    width; ``peak`` the output peak level (full scale 1.0); ``dc_offset`` a mic-bias offset;
    ``channels`` 1 (mono, first track) or 2 (stereo, one track per channel).
    """

    rate: float = 48_000.0
    speed_cm_s: float = 50.0
    speed_ramp: float = 1.0
    wobble: float = 0.0
    wobble_cycles: float = 3.0
    snr_db: float | None = 35.0
    hum_db: float | None = None
    hum_hz: float = 50.0
    ac_coupling_hz: float | None = 20.0
    clip_level: float | None = None
    contact_ramp_from: float = 1.0
    contact_ramp_mm: float = 8.0
    reverse: bool = False
    polarity: int = 1
    leading_zeros: int = 20
    trailing_zeros: int = 20
    silence_s: float = 0.1
    pw50_um: float = 40.0
    peak: float = 0.5
    dc_offset: float = 0.0
    channels: int = 1

    def __post_init__(self) -> None:
        if not MIN_RATE <= self.rate <= MAX_RATE:
            raise ConfigError(f"rate must be {MIN_RATE:g}-{MAX_RATE:g} Hz, got {self.rate}", key="rate")
        if not 0.5 <= self.speed_cm_s <= 1000:
            raise ConfigError(f"speed must be 0.5-1000 cm/s, got {self.speed_cm_s}", key="speed_cm_s")
        if not 0.05 <= self.speed_ramp <= 20:
            raise ConfigError(f"speed_ramp must be 0.05-20, got {self.speed_ramp}", key="speed_ramp")
        if not 0 <= self.wobble < 0.9:
            raise ConfigError(f"wobble must be 0-0.9, got {self.wobble}", key="wobble")
        for name in ("snr_db", "hum_db"):
            level = getattr(self, name)
            if level is not None and not math.isfinite(level):
                raise ConfigError(f"{name} must be a finite number of dB, got {level}", key=name)
        if self.polarity not in (1, -1):
            raise ConfigError("polarity must be +1 or -1", key="polarity")
        if self.channels not in (1, 2):
            raise ConfigError("channels must be 1 or 2", key="channels")
        if not 0 < self.contact_ramp_from <= 1:
            raise ConfigError("contact_ramp_from must be in (0, 1]", key="contact_ramp_from")
        if self.clip_level is not None and not 0 < self.clip_level <= 1:
            raise ConfigError("clip_level must be in (0, 1]", key="clip_level")
        if self.leading_zeros < 0 or self.trailing_zeros < 0 or self.silence_s < 0:
            raise ConfigError("zero counts and silence must not be negative", key="leading_zeros")


def test_card_tracks(rng: np.random.Generator) -> tuple[Card, list[TrackSpec]]:
    """A random Luhn-valid test card (test BIN prefixes only) and its Track 1 and Track 2 text."""
    seeded = random.Random(int(rng.integers(0, 2**63)))
    pan = generate_test_pan(seeded)
    surname = "".join(seeded.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(seeded.randint(3, 10)))
    given = "".join(seeded.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(seeded.randint(3, 8)))
    expiry = f"{seeded.randint(26, 35):02d}{seeded.randint(1, 12):02d}"
    service_code = seeded.choice(("101", "201", "121", "221", "601"))
    discretionary = "".join(seeded.choice("0123456789") for _ in range(seeded.randint(8, 13)))
    name = f"{surname}/{given}"
    card = Card(pan=pan, expiry=expiry, service_code=service_code, name=name, discretionary=discretionary)
    return card, card_tracks(card)


def card_tracks(source: Sequence[TrackSpec] | Card) -> list[TrackSpec]:
    """The ``(text, format)`` of each track to record, text strictly between the sentinels.

    A :class:`Card` gives Track 1 and Track 2 in format B (ISO/IEC 7813: Track 1
    ``B PAN ^ NAME ^ YYMM service-code discretionary``, Track 2 ``PAN = YYMM service-code
    discretionary`` cut to its 37 data characters; a missing field is its separator). A sequence
    of ``(text, format)`` is checked and returned as a list. Raises :class:`ConfigError` for none.
    """
    if isinstance(source, Card):
        rest = f"{source.expiry or '='}{source.service_code or '='}{source.discretionary or ''}"
        track1 = f"B{source.pan}^{source.name or ' /'}^{rest}"
        track2 = f"{source.pan}={rest}"[:37]
        return [(track1, TrackFormat.ALPHA), (track2, TrackFormat.BCD)]
    tracks = [(text, TrackFormat(fmt)) for text, fmt in source]
    if not tracks:
        raise ConfigError("synthesize_swipe needs at least one track", key="tracks")
    return tracks


def _flux_transitions(bits: Sequence[int], fmt: TrackFormat) -> NDArray[np.float64]:
    """Positions (cm from the first transition) of every F2F flux transition of ``bits``."""
    cell = 1.0 / BITS_PER_CM[fmt]
    positions: list[float] = []
    for index, bit in enumerate(bits):
        positions.append(index * cell)
        if bit:
            positions.append((index + 0.5) * cell)
    positions.append(len(bits) * cell)
    return np.asarray(positions, dtype=np.float64)


def _readback(
    transitions: NDArray[np.float64],
    position_cm: NDArray[np.float64],
    half_width_cm: float,
) -> NDArray[np.float64]:
    """Sum of alternating-sign Lorentzian pulses at ``transitions`` sampled at ``position_cm``."""
    signal = np.zeros_like(position_cm)
    reach = 40 * half_width_cm
    signs = np.where(np.arange(transitions.size) % 2 == 0, 1.0, -1.0)
    bounds_low = np.searchsorted(position_cm, transitions - reach)
    bounds_high = np.searchsorted(position_cm, transitions + reach)
    for x_k, sign, low, high in zip(transitions, signs, bounds_low, bounds_high, strict=True):
        u = (position_cm[low:high] - x_k) / half_width_cm
        signal[low:high] += sign / (1.0 + u * u)
    return signal


def _anti_alias(samples: NDArray[np.float64], factor: int, size: int) -> NDArray[np.float64]:
    """A sound card's anti-aliasing filter and decimation: keep what lies below 0.45 of the output
    rate (raised-cosine edge to 0.5), drop the rest, return ``size`` samples at the output rate."""
    spectrum = np.fft.rfft(samples, axis=0)
    bins = size // 2 + 1
    fraction = np.arange(bins) / size
    taper = np.clip((0.5 - fraction) / 0.05, 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * taper)
    kept = spectrum[:bins] * gain[:, None]
    result: NDArray[np.float64] = np.fft.irfft(kept, size, axis=0) * (size / samples.shape[0])
    return result


def _ac_couple(samples: NDArray[np.float64], corner_hz: float, rate: float) -> NDArray[np.float64]:
    """A first-order RC high-pass (the coupling capacitor), applied by FFT with enough zero padding
    for its impulse response to die out: H(z) = (1 + p)/2 (1 - 1/z) / (1 - p/z), p = exp(-2π fc / rate)."""
    pole = math.exp(-2 * math.pi * corner_hz / rate)
    tail = int(min(20 * rate / (2 * math.pi * corner_hz), 10 * rate))
    size = samples.shape[0] + tail
    z_inverse = np.exp(-2j * np.pi * np.fft.rfftfreq(size))
    response = (1 + pole) / 2 * (1 - z_inverse) / (1 - pole * z_inverse)
    filtered = np.fft.irfft(np.fft.rfft(samples, size, axis=0) * response[:, None], size, axis=0)
    result: NDArray[np.float64] = filtered[: samples.shape[0]]
    return result


def synthesize_swipe(
    tracks: Sequence[TrackSpec] | Card,
    params: SwipeParams,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Synthesize the head signal of one swipe.

    ``tracks`` is a list of ``(text, format)`` (text strictly between the sentinels) or a
    :class:`Card` (Track 1 and Track 2 in format B). Mono records the first track; stereo records
    the first track on the left and the second (or the first again) on the right, both heads moving
    together. Returns float32 samples in [-1, 1], shape ``(n,)`` mono or ``(n, 2)`` stereo.
    """
    specs = card_tracks(tracks)
    channel_specs = [specs[0]]
    if params.channels == 2:
        channel_specs.append(specs[1] if len(specs) > 1 else specs[0])
    channel_bits = [
        [0] * params.leading_zeros + encode_track(text, fmt) + [0] * params.trailing_zeros
        for text, fmt in channel_specs
    ]
    channel_transitions = [
        _flux_transitions(bits, fmt) for bits, (_, fmt) in zip(channel_bits, channel_specs, strict=True)
    ]
    margin_cm = 0.3
    length_cm = max(float(t[-1]) for t in channel_transitions) + 2 * margin_cm

    grid = np.linspace(0.0, length_cm, 4096)
    start_speed = params.speed_cm_s / np.sqrt(params.speed_ramp)
    phase = rng.uniform(0, 2 * np.pi)
    speed = start_speed * params.speed_ramp ** (grid / length_cm)
    speed *= 1.0 + params.wobble * np.sin(2 * np.pi * params.wobble_cycles * grid / length_cm + phase)
    if params.reverse:
        speed = speed[::-1]
    dt = np.diff(grid) / (0.5 * (speed[1:] + speed[:-1]))
    time_at_grid = np.concatenate(([0.0], np.cumsum(dt)))
    duration = float(time_at_grid[-1])
    swipe_samples = int(duration * params.rate)
    half_width_cm = params.pw50_um * 1e-4 / 2
    pulse_samples = 2 * half_width_cm / float(np.max(speed)) * params.rate
    oversample = 1 if pulse_samples >= 2.0 else min(8, math.ceil(2.0 / pulse_samples))
    times = np.arange(swipe_samples * oversample) / (params.rate * oversample)
    travelled = np.interp(times, time_at_grid, grid)
    speed_now = np.interp(travelled, grid, speed)
    card_position = length_cm - travelled if params.reverse else travelled
    card_position = card_position - margin_cm

    contact_fraction = np.clip((travelled - margin_cm) * 10.0 / params.contact_ramp_mm, 0.0, 1.0)
    contact = params.contact_ramp_from + (1.0 - params.contact_ramp_from) * contact_fraction

    order = np.argsort(card_position)
    sorted_position = card_position[order]
    columns = []
    for transitions in channel_transitions:
        clean_sorted = _readback(transitions, sorted_position, half_width_cm)
        clean = np.empty_like(clean_sorted)
        clean[order] = clean_sorted
        columns.append(clean * speed_now * contact)
    swipe = np.stack(columns, axis=1)
    if oversample > 1:
        swipe = _anti_alias(swipe, oversample, swipe_samples)
    swipe *= params.polarity / max(float(np.max(np.abs(swipe))), 1e-12)
    signal_power = float(np.mean(swipe**2))

    pad = int(params.silence_s * params.rate)
    total = swipe_samples + 2 * pad
    out = np.zeros((total, len(columns)), dtype=np.float64)
    out[pad : pad + swipe_samples] = swipe
    t = np.arange(total) / params.rate
    if params.hum_db is not None:
        hum_amplitude = np.sqrt(2 * signal_power * 10 ** (params.hum_db / 10) / (1 + 0.3**2 + 0.15**2))
        for harmonic, weight in ((1, 1.0), (3, 0.3), (5, 0.15)):
            phase = rng.uniform(0, 2 * np.pi)
            tone = hum_amplitude * weight * np.sin(2 * np.pi * params.hum_hz * harmonic * t + phase)
            out += tone[:, None]
    if params.snr_db is not None:
        noise_power = signal_power / 10 ** (params.snr_db / 10)
        out += rng.normal(0.0, np.sqrt(noise_power), out.shape)
    out += params.dc_offset
    if params.ac_coupling_hz is not None:
        out = _ac_couple(out, params.ac_coupling_hz, params.rate)
    if params.clip_level is not None:
        np.clip(out, -params.clip_level, params.clip_level, out=out)
    peak_now = max(float(np.max(np.abs(out))), 1e-12)
    out *= params.peak / peak_now
    result = np.clip(out, -1.0, 1.0).astype(np.float32)
    return result[:, 0].copy() if params.channels == 1 else result


test_card_tracks.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function

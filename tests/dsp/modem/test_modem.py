"""Both profiles: round trips through noise and +-2 % clock error, streaming, damage, API edges."""

from __future__ import annotations

import numpy as np
import pytest
from posbridge.dsp.modem import PROFILES, FskDemodulator, FskModulator
from posbridge.protocols.errors import UsageError

from .conftest import Channel

RNG = np.random.default_rng(20261126)
DATA = RNG.integers(0, 256, 600, dtype=np.uint8).tobytes()


def demodulate(profile: str, rate: int, samples: np.ndarray, block: int | None = None) -> bytes:
    demodulator = FskDemodulator(profile, rate)
    if block is None:
        return demodulator.process(samples) + demodulator.flush()
    out = b"".join(demodulator.process(samples[i : i + block]) for i in range(0, samples.size, block))
    return out + demodulator.flush()


@pytest.mark.parametrize("profile", ["bell202", "fast"])
@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("clock_permille", [-20, 0, 20])
def test_round_trip_with_noise_and_clock_error(
    profile: str, rate: int, clock_permille: int, channel: Channel
) -> None:
    data = DATA if profile == "fast" else DATA[:200]
    audio = channel(FskModulator(profile, rate).modulate(data), 20.0, clock_permille)
    assert demodulate(profile, rate, audio) == data


def test_bell202_survives_low_snr(channel: Channel) -> None:
    audio = channel(FskModulator("bell202", 48000).modulate(DATA[:200]), 6.0, 20)
    received = demodulate("bell202", 48000, audio)
    assert received == DATA[:200]


@pytest.mark.parametrize("profile", ["bell202", "fast"])
def test_any_block_sizes_give_the_same_bytes(profile: str, channel: Channel) -> None:
    snr_db = 20.0 if profile == "fast" else 10.0
    audio = channel(FskModulator(profile, 48000).modulate(DATA[:300]), snr_db, 13)
    whole = demodulate(profile, 48000, audio)
    demodulator = FskDemodulator(profile, 48000)
    rng = np.random.default_rng(3)
    pieces, start = [], 0
    while start < audio.size:
        size = int(rng.integers(1, 3000))
        pieces.append(demodulator.process(audio[start : start + size]))
        start += size
    assert b"".join(pieces) + demodulator.flush() == whole
    assert whole == DATA[:300]


@pytest.mark.parametrize("profile", ["bell202", "fast"])
def test_one_sample_blocks(profile: str) -> None:
    audio = FskModulator(profile, 48000).modulate(b"one sample at a time")
    assert demodulate(profile, 48000, audio, block=1) == b"one sample at a time"


def test_fast_profile_many_bursts_back_to_back(channel: Channel) -> None:
    profile = PROFILES["fast"]
    data = RNG.integers(0, 256, profile.max_burst_bytes + 700, dtype=np.uint8).tobytes()
    audio = channel(FskModulator(profile, 48000).modulate(data), 20.0, -20)
    demodulator = FskDemodulator(profile, 48000)
    assert demodulator.process(audio) + demodulator.flush() == data
    assert demodulator.stats.bursts_ok == 2


def test_fast_profile_payload_rate() -> None:
    profile = PROFILES["fast"]
    assert profile.payload_bit_rate(44100) >= 9600
    assert profile.payload_bit_rate(48000) >= 9600
    samples = FskModulator(profile, 48000).modulate(bytes(1024))
    assert 8 * 1024 / (samples.size / 48000) >= 9600


@pytest.mark.parametrize("profile", ["bell202", "fast"])
def test_truncated_audio_never_crashes(profile: str) -> None:
    audio = FskModulator(profile, 48000).modulate(DATA[:100])
    for cut in (0, 1, 17, audio.size // 3, audio.size // 2, audio.size - 5):
        received = demodulate(profile, 48000, audio[:cut])
        if profile == "fast":
            assert received == DATA[: len(received)]
        assert len(received) <= 100


@pytest.mark.parametrize("profile", ["bell202", "fast"])
def test_noise_and_silence_give_nothing(profile: str) -> None:
    noise = np.random.default_rng(1).normal(0, 0.3, 48000)
    assert demodulate(profile, 48000, noise) == b""
    assert demodulate(profile, 48000, np.zeros(48000)) == b""


def test_stereo_blocks_use_channel_zero() -> None:
    audio = FskModulator("fast", 48000).modulate(b"stereo")
    stereo = np.stack((audio, np.zeros_like(audio)), axis=1)
    assert demodulate("fast", 48000, stereo) == b"stereo"


def test_empty_data_and_bad_profile() -> None:
    assert FskModulator("bell202").modulate(b"").size == 0
    with pytest.raises(UsageError):
        FskModulator("v34")
    with pytest.raises(UsageError):
        FskDemodulator("bell202").process(np.zeros((2, 2, 2)))


def test_bell202_characters_with_idle_gaps_between_them() -> None:
    rng = np.random.default_rng(4)
    data = rng.integers(0, 256, 120, dtype=np.uint8).tobytes()
    rate, phase, pieces = 48000, 0.0, []

    def tone(hz: float, samples: int) -> None:
        nonlocal phase
        pieces.append(np.sin(phase + 2 * np.pi * hz * np.arange(samples) / rate))
        phase += 2 * np.pi * hz * samples / rate

    tone(1200, 400)
    for byte in data:
        tone(1200, int(rng.uniform(0, 3) * 40) if rng.random() < 0.5 else 0)
        for bit in [0, *((byte >> index) & 1 for index in range(8)), 1]:
            tone(1200 if bit else 2200, 40)
    tone(1200, 400)
    audio = np.concatenate(pieces) + np.random.default_rng(1).normal(0, 0.02, sum(map(len, pieces)))
    assert demodulate("bell202", rate, audio) == data


def test_frame_receiver_gives_the_same_frames_for_any_block_sizes() -> None:
    from posbridge.dsp.modem.frames import ModemFrameReceiver
    from posbridge.protocols.link import ChipMessage, Frame, encode_frame

    frames = [Frame.of(ChipMessage(tlv=bytes([seq]) * 40), seq) for seq in range(1, 4)]
    audio = np.concatenate([FskModulator("fast", 44100).modulate(encode_frame(frame)) for frame in frames])
    receiver = ModemFrameReceiver("fast", 44100)
    results, start, rng = [], 0, np.random.default_rng(8)
    while start < audio.size:
        size = int(rng.integers(1, 2000))
        results += receiver.process(audio[start : start + size])
        start += size
    assert results + receiver.flush() == frames
    assert receiver.stats.frames_ok == 3

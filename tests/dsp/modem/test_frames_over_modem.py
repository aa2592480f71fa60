"""Link frames over both modem profiles, fuzzed: damage drops frames, never a wrong frame accepted."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.dsp.modem import FskModulator
from posbridge.dsp.modem.frames import ModemFrameReceiver
from posbridge.protocols.errors import FrameError
from posbridge.protocols.link import ChipMessage, Frame, encode_frame

PROFILES = st.sampled_from(["fast", "bell202"])


def modulate_frames(profile: str, frames: list[Frame]) -> np.ndarray:
    modulator = FskModulator(profile, 48000)
    if profile == "bell202":
        return modulator.modulate(b"".join(encode_frame(frame) for frame in frames)).astype(np.float64)
    return np.concatenate([modulator.modulate(encode_frame(frame)) for frame in frames]).astype(np.float64)


@settings(max_examples=15, deadline=None)
@given(
    profile=PROFILES,
    payloads=st.lists(st.binary(min_size=0, max_size=60), min_size=1, max_size=3),
    cut=st.floats(0.05, 1.0),
    slip_at=st.floats(0.0, 1.0),
    slip=st.integers(-25, 25),
    noise=st.floats(0.0, 0.8),
)
def test_damage_drops_frames_but_never_corrupts_one(
    profile: str, payloads: list[bytes], cut: float, slip_at: float, slip: int, noise: float
) -> None:
    sent = [Frame.of(ChipMessage(tlv=payload), seq) for seq, payload in enumerate(payloads, start=1)]
    audio = modulate_frames(profile, sent)
    end = max(int(cut * audio.size), 1)
    at = int(slip_at * end)
    if slip > 0:
        audio = np.concatenate((audio[:at], audio[at + slip : end]))
    else:
        audio = np.concatenate((audio[:at], np.zeros(-slip), audio[at:end]))
    audio = audio + np.random.default_rng(len(audio)).normal(0.0, noise, audio.size)
    receiver = ModemFrameReceiver(profile, 48000)
    results = receiver.process(audio) + receiver.flush()
    for item in results:
        assert isinstance(item, Frame | FrameError)
        if isinstance(item, Frame):
            assert item in sent
    accepted = [item for item in results if isinstance(item, Frame)]
    assert receiver.stats.frames_ok == len(accepted)


@settings(max_examples=10, deadline=None)
@given(profile=PROFILES, payload=st.binary(max_size=200))
def test_clean_frames_all_arrive(profile: str, payload: bytes) -> None:
    sent = [Frame.of(ChipMessage(tlv=payload), 7), Frame.of(ChipMessage(tlv=payload[::-1]), 8)]
    receiver = ModemFrameReceiver(profile, 48000)
    results = receiver.process(modulate_frames(profile, sent)) + receiver.flush()
    assert results == sent

"""Live sources through the streaming detector: the issue 3 session tests."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from posbridge.dsp.detector import SwipeDetector, decode_recording
from posbridge.hardware.audio import AudioSource, open_audio, sample_format, write_wav
from posbridge.hardware.audio.files import StdinAudioSource
from posbridge.hardware.audio.virtual import VirtualAudioSource
from posbridge.protocols.types import Swipe


def _texts(swipes: list[Swipe]) -> list[tuple[str, ...]]:
    return [tuple(track.text for track in swipe.tracks) for swipe in swipes]


def test_sixty_second_session_in_random_blocks_gives_the_twenty_swipes_in_order() -> None:
    source = VirtualAudioSource(swipes=20, seed=2026, duration_s=60.0, block_frames=8192)
    recording = np.concatenate([block.samples for block in source])
    chooser = random.Random(7)
    detector = SwipeDetector(source.rate, source.channels)
    found: list[Swipe] = []
    position = 0
    while position < recording.shape[0]:
        size = chooser.randint(1, 8192)
        found += detector.process(recording[position : position + size])
        position += size
    found += detector.flush()
    assert _texts(found) == _texts(decode_recording(recording, source.rate))
    assert _texts(found) == [tuple(track.text for track in swipe.tracks) for swipe in source.expected]
    for swipe, expected in zip(found, source.expected, strict=True):
        assert expected.start_s - 0.2 <= swipe.started_at <= swipe.ended_at <= expected.end_s + 0.2


def _stream(source: AudioSource) -> list[Swipe]:
    with source:
        detector = SwipeDetector(source.rate, source.channels)
        swipes = [swipe for block in source for swipe in detector.process(block.samples)]
    return swipes + detector.flush()


def test_wav_stdin_and_batch_decoding_agree(tmp_path: Path) -> None:
    virtual = VirtualAudioSource(swipes=4, seed=99, rate=44_100)
    recording = np.concatenate([block.samples for block in virtual])
    path = tmp_path / "session.wav"
    write_wav(path, recording, virtual.rate, "s16le")
    pcm = sample_format("s16le").encode(recording)
    quantised = sample_format("s16le").decode(pcm, 1)

    batch = decode_recording(quantised[:, 0], virtual.rate)
    through_wav = _stream(open_audio(f"wav://{path}?block=1000"))
    through_stdin = _stream(
        StdinAudioSource("stdin://", virtual.rate, sample_format("s16le"), stream=io.BytesIO(pcm))
    )

    expected = [tuple(track.text for track in swipe.tracks) for swipe in virtual.expected]
    assert _texts(batch) == expected
    assert _texts(through_wav) == expected
    assert _texts(through_stdin) == expected

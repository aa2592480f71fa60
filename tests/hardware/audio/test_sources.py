"""The audio sources behind ``open_audio``: URLs, wav://, stdin://, virtual:// and device://."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.hardware.audio import AudioSource, encode_wav, open_audio, read_wav, sample_format, write_wav
from posbridge.hardware.audio.device import DeviceAudioSource
from posbridge.hardware.audio.files import StdinAudioSource
from posbridge.hardware.audio.virtual import VirtualAudioSource
from posbridge.protocols.errors import AudioFormatError, DeviceDisconnected, DeviceNotFound, UsageError

from .conftest import ALSA_PCM, AlsaHome


def _all_samples(source: AudioSource) -> np.ndarray:
    with source:
        blocks = list(source)
    assert all(
        block.samples.dtype == np.float32 and block.samples.shape[1] == source.channels for block in blocks
    )
    times = [block.t for block in blocks]
    assert times == sorted(times)
    return np.concatenate([block.samples for block in blocks]) if blocks else np.zeros((0, source.channels))


def _noise(frames: int, channels: int = 1, seed: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-0.5, 0.5, (frames, channels))).astype(np.float32)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("recording.wav", "no scheme"),
        ("tape://x", "unknown audio URL scheme"),
        ("virtual://?swipes=1&colour=red", "unknown audio URL option"),
        ("virtual://?swipes=many", "not an integer"),
        ("virtual://?swipes=-1", "at least 0"),
        ("virtual://somewhere", "takes no path"),
        ("virtual://?rate=48000&duration=nan", "must be at least"),
        ("stdin://?format=s16le", "needs the sample rate"),
        ("wav://", "needs a path"),
        ("wav://x.wav?realtime=maybe", "flag"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        open_audio(url)


def test_wav_source_gives_the_file_samples_in_blocks(tmp_path: Path) -> None:
    original = _noise(10_000, 2)
    path = tmp_path / "a.wav"
    write_wav(path, original, 22_050, "f32le")
    source = open_audio(f"wav://{path}?block=777")
    assert (source.rate, source.channels) == (22_050, 2)
    assert np.array_equal(_all_samples(source), read_wav(path)[0])
    assert source.closed


def test_wav_source_paced_like_a_device_gives_the_same_samples(tmp_path: Path) -> None:
    original = _noise(4800)
    path = tmp_path / "a.wav"
    write_wav(path, original, 48_000)
    assert np.array_equal(_all_samples(open_audio(f"wav://{path}?realtime=1&block=480")), read_wav(path)[0])


def test_wav_source_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound):
        open_audio(f"wav://{tmp_path}/missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioFormatError, match="empty"):
        open_audio(f"wav://{tmp_path}/empty.wav")
    write_wav(tmp_path / "a.wav", _noise(100), 44_100)
    with pytest.raises(AudioFormatError, match="sample-rate mismatch"):
        open_audio(f"wav://{tmp_path}/a.wav?rate=48000")


class _Trickle(io.RawIOBase):
    """A pipe that hands out at most ``step`` bytes per read, like a slow producer."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step = data, step

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        piece, self._data = self._data[: min(self._step, size)], self._data[min(self._step, size) :]
        return piece


def _stdin(
    data: bytes, rate: int = 48_000, fmt: str = "s16le", channels: int = 1, step: int = 1 << 20
) -> Any:
    return StdinAudioSource("stdin://", rate, sample_format(fmt), channels, stream=_Trickle(data, step))


@pytest.mark.parametrize("step", [1, 3, 4096])
def test_stdin_source_reassembles_frames_from_any_chunking(step: int) -> None:
    original = _noise(3000, 2)
    data = sample_format("s24le").encode(original)
    samples = _all_samples(_stdin(data, fmt="s24le", channels=2, step=step))
    assert samples.shape == (3000, 2)
    assert np.max(np.abs(samples - original)) < 1e-6


def test_stdin_that_stops_mid_frame_drops_the_partial_frame(caplog: pytest.LogCaptureFixture) -> None:
    data = sample_format("s16le").encode(_noise(100))
    with caplog.at_level(logging.WARNING):
        samples = _all_samples(_stdin(data[:-1], step=7))
    assert samples.shape == (99, 1)
    assert "mid-frame" in caplog.text


@pytest.mark.parametrize("data", [b"", b"\x01"])
def test_stdin_with_no_whole_frame_is_a_clean_error(data: bytes) -> None:
    with pytest.raises(AudioFormatError, match="before any audio"):
        _all_samples(_stdin(data))


def test_stdin_garbage_floats_are_a_clean_error() -> None:
    with pytest.raises(AudioFormatError, match="NaN"):
        _all_samples(_stdin(b"\xff\xff\xff\xff" * 100, fmt="f32le"))


def test_stdin_recognises_a_piped_wav_and_checks_its_rate() -> None:
    original = _noise(2000)
    wav = encode_wav(original, 48_000, "s16le")
    assert np.array_equal(_all_samples(_stdin(wav, step=5)), _all_samples(_stdin(wav[44:])))
    with pytest.raises(AudioFormatError, match="sample-rate mismatch"):
        _all_samples(_stdin(encode_wav(original, 44_100), rate=48_000))


def test_virtual_source_is_deterministic_per_seed() -> None:
    first = VirtualAudioSource(swipes=3, seed=11)
    second = VirtualAudioSource(swipes=3, seed=11)
    other = VirtualAudioSource(swipes=3, seed=12)
    assert [swipe.card.pan for swipe in first.expected] == [swipe.card.pan for swipe in second.expected]
    assert [swipe.card.pan for swipe in first.expected] != [swipe.card.pan for swipe in other.expected]
    assert np.array_equal(_all_samples(first), _all_samples(second))
    assert len({swipe.card.pan for swipe in first.expected}) == 3


def test_virtual_source_places_swipes_where_asked() -> None:
    source = open_audio("virtual://?at=2,0.5&seed=1&rate=16000")
    assert isinstance(source, VirtualAudioSource)
    assert [swipe.start_s for swipe in source.expected] == [0.5, 2.0]
    samples = _all_samples(source)
    assert samples.shape[0] == source.total_frames
    quiet = np.abs(samples[: int(0.45 * 16000)]).max()
    loud = np.abs(samples[int(0.5 * 16000) : int(source.expected[0].end_s * 16000)]).max()
    assert loud > 50 * quiet
    first = source.expected[0]
    assert first.start_s < first.last_transition_s < first.end_s
    after = np.abs(samples[int(first.last_transition_s * 16000) + 2 : int(first.end_s * 16000)]).max()
    assert after < 0.1 * loud


def test_virtual_session_fits_swipes_in_the_duration_in_order() -> None:
    source = VirtualAudioSource(swipes=20, seed=5, duration_s=60.0)
    starts = [swipe.start_s for swipe in source.expected]
    assert len(starts) == 20
    assert starts == sorted(starts)
    assert all(a.end_s < b.start_s for a, b in zip(source.expected, source.expected[1:], strict=False))
    assert source.expected[-1].end_s < 60.0
    assert all(len(swipe.tracks) == 1 for swipe in source.expected)


@pytest.mark.parametrize(
    "url", ["virtual://?swipes=30&duration=5", "virtual://?at=1,1.1", "virtual://?channels=3"]
)
def test_virtual_source_refuses_what_it_cannot_play(url: str) -> None:
    with pytest.raises(UsageError):
        open_audio(url)


def test_virtual_stereo_records_track_1_left_and_track_2_right() -> None:
    source = VirtualAudioSource(swipes=1, seed=2, channels=2)
    (swipe,) = source.expected
    assert [track.number for track in swipe.tracks] == [1, 2]
    assert _all_samples(source).shape[1] == 2


# --- device:// through sounddevice -> PortAudio -> ALSA, in a subprocess that sees the temporary HOME.

_RECORD = """
import json, sys, time
import numpy as np
from posbridge.hardware.audio import open_audio, list_input_devices
from posbridge.protocols.errors import PosBridgeError
mode, url, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "list":
    print(json.dumps([device.to_json() for device in list_input_devices()]))
    raise SystemExit(0)
try:
    source = open_audio(url)
except PosBridgeError as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
    raise SystemExit(0)
with source:
    if mode == "stall":
        time.sleep(1.0)
    got, total = [], 0
    while total < frames:
        block = source.read()
        got.append(block.samples)
        total += block.frames
    samples = np.concatenate(got)[:frames]
print(json.dumps({"rate": source.rate, "channels": source.channels, "overruns": source.overruns,
                  "samples": samples[:, 0].tolist()}))
"""


def _device_run(home: AlsaHome, mode: str, url: str, frames: int = 0) -> Any:
    result = subprocess.run(
        [sys.executable, "-c", _RECORD, mode, url, str(frames)],
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_device_source_records_the_alsa_file_plugin(alsa_home: Callable[[np.ndarray], AlsaHome]) -> None:
    original = _noise(20_000)[:, 0]
    home = alsa_home(original)
    listed = _device_run(home, "list", "")
    assert any(device["name"] == ALSA_PCM and 48_000 in device["rates"] for device in listed)
    recorded = _device_run(home, "read", f"device://{ALSA_PCM}?rate=48000&channels=1", 20_000)
    assert (recorded["rate"], recorded["channels"]) == (48_000, 1)
    expected = sample_format("s16le").decode(sample_format("s16le").encode(original), 1)[:, 0]
    assert np.array_equal(np.asarray(recorded["samples"], dtype=np.float32), expected)


def test_device_source_names_what_it_refuses(alsa_home: Callable[[np.ndarray], AlsaHome]) -> None:
    home = alsa_home(_noise(1000)[:, 0])
    refused = _device_run(home, "read", f"device://{ALSA_PCM}?rate=500000")
    assert refused["error"] == "UnsupportedSetting"
    assert "500000" in refused["message"]
    assert "48000" in refused["message"]
    too_many = _device_run(home, "read", f"device://{ALSA_PCM}?channels=1000")
    assert too_many["error"] == "UnsupportedSetting"
    assert "at most" in too_many["message"]
    missing = _device_run(home, "read", "device://no-such-card")
    assert missing["error"] == "DeviceNotFound"


def test_device_overruns_are_counted_when_the_reader_falls_behind(
    alsa_home: Callable[[np.ndarray], AlsaHome],
) -> None:
    # ALSA's null PCM runs faster than real time, so a reader that sleeps falls behind at once.
    home = alsa_home(_noise(48_000)[:, 0])
    stalled = _device_run(home, "stall", f"device://{ALSA_PCM}", 480)
    assert stalled["overruns"] > 0


class _FakeStream:
    """Stands in for a PortAudio stream whose device delivers ``blocks`` blocks and then vanishes."""

    def __init__(self, source: DeviceAudioSource, blocks: int) -> None:
        self.active = True
        for value in range(blocks):
            source._callback(np.full((4, 1), value, dtype=np.int16), 4, None, _Status())

    def abort(self) -> None:
        self.active = False

    def close(self) -> None:
        self.active = False


class _Status:
    input_overflow = False


def test_unplugged_device_reports_then_reconnects() -> None:
    opened: list[int] = []

    class Flaky(DeviceAudioSource):
        def _open_stream(self) -> None:
            opened.append(1)
            if len(opened) == 2:
                raise DeviceNotFound("not back yet")
            self._stream = _FakeStream(self, 2)
            self._stream.active = len(opened) == 1
            self._last_data = time.monotonic()

    source = Flaky("device://fake", "fake", reconnect=True, retry_s=0.01, stall_timeout_s=0.05)
    events: list[str] = []
    source.on_disconnect = lambda error: events.append(f"gone: {error}")
    source.on_reconnect = lambda: events.append("back")
    values = [int(source.read().samples[0, 0] * 32768) for _ in range(4)]  # type: ignore[union-attr]
    source.close()
    assert values == [0, 1, 0, 1]
    assert events[0].startswith("gone: audio input fake stopped delivering audio")
    assert events[1] == "back"
    assert len(opened) == 3

    without = Flaky("device://fake", "fake", reconnect=False, stall_timeout_s=0.05)
    opened.clear()
    without.read()
    without.read()
    with pytest.raises(DeviceDisconnected):
        without.read()
    without.close()


@settings(max_examples=80, deadline=None)
@given(header=st.binary(max_size=80), body=st.binary(max_size=200), step=st.integers(1, 64))
def test_fuzzed_piped_wav_headers_give_audio_or_a_clean_error(header: bytes, body: bytes, step: int) -> None:
    data = b"RIFF\xff\xff\xff\xffWAVE" + header + body
    try:
        samples = _all_samples(_stdin(data, step=step))
    except (AudioFormatError, UsageError):
        return
    assert samples.dtype == np.float32
    assert np.isfinite(samples).all()

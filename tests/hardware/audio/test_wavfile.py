"""WAV and raw PCM reading: every encoding, real files with odd chunks, and hostile headers."""

from __future__ import annotations

import contextlib
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from posbridge.hardware.audio import decode_wav, encode_wav, read_raw, read_wav, sample_format, write_wav
from posbridge.protocols.errors import AudioFormatError

FIXTURES = Path(__file__).parents[2] / "dsp" / "fixtures" / "metrocard"

# Quantisation step of each encoding: a round trip must come back within half of it.
STEPS = {
    "u8": 1 / 128,
    "s16le": 1 / 32768,
    "s24le": 1 / 2**23,
    "s32le": 1 / 2**31,
    "f32le": 1e-7,
    "f64le": 1e-7,
}


def _signal(frames: int, channels: int) -> np.ndarray:
    t = np.arange(frames)[:, None]
    return (0.8 * np.sin(2 * np.pi * (t / 37.0 + np.arange(channels) / 4))).astype(np.float32)


def _chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _wav(chunks: list[bytes]) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt(tag: int = 1, channels: int = 1, rate: int = 48_000, bits: int = 16) -> bytes:
    align = channels * bits // 8
    return _chunk(b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits))


@pytest.mark.parametrize("fmt", list(STEPS))
@pytest.mark.parametrize("channels", [1, 2])
def test_every_encoding_round_trips(tmp_path: Path, fmt: str, channels: int) -> None:
    original = _signal(1001, channels)
    path = tmp_path / "x.wav"
    write_wav(path, original, 44_100, fmt)
    samples, rate = read_wav(path)
    assert rate == 44_100
    assert samples.dtype == np.float32
    assert samples.shape == (1001, channels)
    assert np.max(np.abs(samples - original)) <= STEPS[fmt]


def test_wave_format_extensible_is_read_by_its_subformat() -> None:
    channels, rate, bits = 2, 96_000, 24
    align = channels * bits // 8
    guid_pcm = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    extensible = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 3)
    original = _signal(64, channels)
    data = sample_format("s24le").encode(original)
    samples, got_rate = decode_wav(_wav([_chunk(b"fmt ", extensible + guid_pcm), _chunk(b"data", data)]))
    assert got_rate == rate
    assert np.max(np.abs(samples - original)) <= STEPS["s24le"]


def test_unknown_chunks_and_odd_sizes_are_skipped() -> None:
    original = _signal(10, 1)
    data = sample_format("s16le").encode(original)
    wav = _wav(
        [_chunk(b"LIST", b"odd"), _fmt(), _chunk(b"fact", b"\x01\x02\x03\x04\x05"), _chunk(b"data", data)]
    )
    samples, _ = decode_wav(wav)
    assert samples.shape == (10, 1)
    assert np.max(np.abs(samples - original)) <= STEPS["s16le"]


@pytest.mark.parametrize(
    ("name", "rate", "frames"),
    [
        ("samples_metrocard-unlimited.wav", 16_000, 19_108),
        ("samples_metrocard3rd.wav", 44_100, 11_776),
    ],
)
def test_real_recordings_match_scipy(name: str, rate: int, frames: int) -> None:
    from scipy.io import wavfile

    samples, got_rate = read_wav(FIXTURES / name)
    reference_rate, reference = wavfile.read(FIXTURES / name)
    assert (got_rate, samples.shape) == (rate, (frames, 1))
    assert reference_rate == rate
    assert np.array_equal(samples[:, 0], reference.astype(np.float32) / 32768)


def test_data_size_beyond_end_of_file_reads_what_is_there(caplog: pytest.LogCaptureFixture) -> None:
    original = _signal(100, 2)
    data = sample_format("s16le").encode(original)
    lying = _wav([_fmt(channels=2), b"data" + struct.pack("<I", 0xFFFFFFFF) + data[:-1]])
    with caplog.at_level(logging.WARNING):
        samples, _ = decode_wav(lying)
    assert samples.shape == (99, 2)
    assert np.max(np.abs(samples - original[:99])) <= STEPS["s16le"]
    assert "only" in caplog.text


def test_truncated_file_keeps_whole_frames(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_wav(path, _signal(500, 1), 8000, "s24le")
    path.write_bytes(path.read_bytes()[:-7])
    samples, rate = read_wav(path)
    assert rate == 8000
    assert samples.shape == (497, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"RIFX\0\0\0\0WAVE", "not a WAV"),
        (b"hello, this is a text file", "not a WAV"),
        (_wav([_fmt(rate=0), _chunk(b"data", b"\0\0")]), "rate of 0"),
        (_wav([_fmt(channels=0), _chunk(b"data", b"\0\0")]), "0 channels"),
        (_wav([_fmt(tag=2), _chunk(b"data", b"\0\0")]), "unsupported"),
        (_wav([_fmt(bits=12), _chunk(b"data", b"\0\0")]), "unsupported"),
        (_wav([_fmt()]), "no data chunk"),
        (_wav([_chunk(b"data", b"\0\0"), _fmt()]), "before any fmt"),
        (_wav([_chunk(b"LIST", b"abcd")]), "no fmt chunk"),
        (_wav([_chunk(b"fmt ", b"\x01\x00")]), "fmt chunk"),
        (_wav([_fmt(tag=3, bits=32), _chunk(b"data", struct.pack("<ff", 0.5, float("nan")))]), "NaN"),
        (_wav([_fmt(tag=3, bits=64), _chunk(b"data", struct.pack("<d", float("inf")))]), "infinite"),
    ],
)
def test_what_cannot_be_audio_is_rejected(data: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        decode_wav(data)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "nope.wav")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tag=st.sampled_from([0, 1, 2, 3, 0xFFFE, 0x55]),
    channels=st.integers(0, 70),
    rate=st.sampled_from([0, 1, 8000, 48_000, 2**32 - 1]),
    bits=st.sampled_from([0, 8, 12, 16, 24, 32, 64]),
    body=st.binary(max_size=64),
    cut=st.integers(0, 200),
    extra=st.binary(max_size=24),
)
def test_fuzzed_headers_give_audio_or_audio_format_error(
    tag: int, channels: int, rate: int, bits: int, body: bytes, cut: int, extra: bytes
) -> None:
    fmt_body = struct.pack("<HHIIHH", tag, channels, rate, 0, 0, bits) + extra
    data = _wav([_chunk(b"fmt ", fmt_body), _chunk(b"data", body)])
    data = data[: max(len(data) - cut, 0)]
    try:
        samples, got_rate = decode_wav(data)
    except AudioFormatError:
        return
    assert samples.dtype == np.float32
    assert samples.ndim == 2
    assert samples.shape[1] == channels
    assert got_rate == rate > 0
    assert np.isfinite(samples).all()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_reader(data: bytes) -> None:
    with contextlib.suppress(AudioFormatError):
        decode_wav(b"RIFF" + data[:4] + b"WAVE" + data[4:])


@pytest.mark.parametrize(
    "fmt", ["u8", "s8", "s16le", "s16be", "s24le", "s24be", "s32le", "s32be", "f32le", "f64be"]
)
def test_raw_pcm_round_trips(fmt: str) -> None:
    original = _signal(300, 2)
    samples = read_raw(sample_format(fmt).encode(original), 48_000, fmt, channels=2)
    assert samples.shape == (300, 2)
    assert np.max(np.abs(samples - original)) <= 1 / 64


def test_raw_partial_final_frame_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "x.raw"
    path.write_bytes(sample_format("s16le").encode(_signal(10, 1)) + b"\x01")
    with caplog.at_level(logging.WARNING):
        samples = read_raw(path, 48_000)
    assert samples.shape == (10, 1)
    assert "mid-frame" in caplog.text


@pytest.mark.parametrize(
    ("rate", "fmt", "channels"), [(0, "s16le", 1), (48_000, "s17le", 1), (48_000, "s16le", 0)]
)
def test_raw_rejects_unusable_settings(rate: int, fmt: str, channels: int) -> None:
    with pytest.raises(AudioFormatError):
        read_raw(b"\0\0", rate, fmt, channels)


@pytest.mark.parametrize("fmt", ["s16be", "s8", "s24be", "s32be", "f32be", "f64be"])
def test_writer_refuses_formats_wav_cannot_hold(fmt: str) -> None:
    with pytest.raises(AudioFormatError):
        encode_wav(np.zeros(4), 8000, fmt)

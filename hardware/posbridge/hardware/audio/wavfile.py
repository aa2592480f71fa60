"""Robust WAV and raw PCM reading and writing (Microsoft RIFF/WAVE, "Multimedia Programming
Interface and Data Specifications 1.0" §3; WAVE_FORMAT_EXTENSIBLE per the Windows DDK ``KSDATAFORMAT``).

Every sample format is one declaration in :data:`SAMPLE_FORMATS`; the WAV reader, the raw reader,
the ``stdin://`` source and the writer all decode and encode through it. Real recordings are
messy, so the reader:

- skips any chunk it does not need (``LIST``, ``fact``, ``PEAK``, vendor chunks), honouring the
  pad byte after odd-sized chunks;
- believes the file, not the header, when a ``data`` chunk claims more bytes than exist (a
  truncated recording or a streaming writer's placeholder size): it reads what is there and drops
  a partial final frame with a warning;
- rejects with :class:`AudioFormatError` what cannot be audio: an empty file, a file that is not
  RIFF/WAVE, no ``fmt `` or ``data`` chunk, a rate or channel count of zero, an unsupported
  encoding, and NaN or infinite float samples.

All samples come back as float32 of shape ``(frames, channels)`` scaled to [-1, 1).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from posbridge.protocols.errors import AudioFormatError, DeviceError, DeviceNotFound, UsageError

log = logging.getLogger(__name__)

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
MAX_CHANNELS = 64
MAX_RATE = 1_000_000


@dataclass(frozen=True)
class SampleFormat:
    """One PCM sample encoding: ``width`` bytes per sample, signed/unsigned integer or IEEE float."""

    name: str
    width: int
    kind: Literal["int", "uint", "float"]
    big_endian: bool = False

    @property
    def _dtype(self) -> np.dtype[np.generic]:
        order = ">" if self.big_endian else "<"
        code = {"int": "i", "uint": "u", "float": "f"}[self.kind]
        return np.dtype(f"{order}{code}{self.width}")

    def frame_bytes(self, channels: int) -> int:
        """Bytes in one frame of ``channels`` samples."""
        return self.width * channels

    def decode(self, data: bytes | memoryview, channels: int) -> NDArray[np.float32]:
        """Decode whole frames of ``data`` into float32 ``(frames, channels)`` in [-1, 1).

        Raises :class:`AudioFormatError` for NaN or infinite float samples. ``data`` must hold a
        whole number of frames.
        """
        frames = len(data) // self.frame_bytes(channels)
        if self.width == 3:
            raw = np.frombuffer(data, dtype=np.uint8, count=frames * channels * 3).reshape(-1, 3)
            raw = raw.astype(np.int32)
            low, mid, high = (raw[:, 2], raw[:, 1], raw[:, 0]) if self.big_endian else raw.T
            values = ((low | (mid << 8) | (high << 16)) << 8) >> 8
            samples = values.astype(np.float32) * np.float32(1.0 / (1 << 23))
        else:
            values = np.frombuffer(data, dtype=self._dtype, count=frames * channels)
            if self.kind == "float":
                samples = values.astype(np.float32)
                if not np.isfinite(values).all():
                    raise AudioFormatError("the audio holds NaN or infinite float samples", format=self.name)
            elif self.kind == "uint":
                half = 1 << (8 * self.width - 1)
                samples = ((values.astype(np.float64) - half) / half).astype(np.float32)
            else:
                samples = (values.astype(np.float64) / (1 << (8 * self.width - 1))).astype(np.float32)
        return samples.reshape(frames, channels)

    def encode(self, samples: NDArray[np.floating], /) -> bytes:
        """Encode float samples in [-1, 1] (any shape, C order) into this format, clipping."""
        values = np.asarray(samples, dtype=np.float64).ravel()
        if self.kind == "float":
            return values.astype(self._dtype).tobytes()
        bits = 8 * self.width
        full = float(1 << (bits - 1))
        integers = np.clip(np.round(values * full), -full, full - 1).astype(np.int64)
        if self.kind == "uint":
            integers = integers + int(full)
        if self.width == 3:
            unsigned = (integers & 0xFFFFFF).astype(np.uint32)
            parts = np.stack([unsigned & 0xFF, (unsigned >> 8) & 0xFF, (unsigned >> 16) & 0xFF], axis=1)
            if self.big_endian:
                parts = parts[:, ::-1]
            return parts.astype(np.uint8).tobytes()
        return integers.astype(self._dtype).tobytes()


SAMPLE_FORMATS: dict[str, SampleFormat] = {
    fmt.name: fmt
    for fmt in (
        SampleFormat("u8", 1, "uint"),
        SampleFormat("s8", 1, "int"),
        SampleFormat("s16le", 2, "int"),
        SampleFormat("s16be", 2, "int", big_endian=True),
        SampleFormat("s24le", 3, "int"),
        SampleFormat("s24be", 3, "int", big_endian=True),
        SampleFormat("s32le", 4, "int"),
        SampleFormat("s32be", 4, "int", big_endian=True),
        SampleFormat("f32le", 4, "float"),
        SampleFormat("f32be", 4, "float", big_endian=True),
        SampleFormat("f64le", 8, "float"),
        SampleFormat("f64be", 8, "float", big_endian=True),
    )
}

_WAV_FORMATS: dict[tuple[int, int], str] = {
    (WAVE_FORMAT_PCM, 8): "u8",
    (WAVE_FORMAT_PCM, 16): "s16le",
    (WAVE_FORMAT_PCM, 24): "s24le",
    (WAVE_FORMAT_PCM, 32): "s32le",
    (WAVE_FORMAT_IEEE_FLOAT, 32): "f32le",
    (WAVE_FORMAT_IEEE_FLOAT, 64): "f64le",
}


def sample_format(name: str) -> SampleFormat:
    """The :class:`SampleFormat` called ``name`` (``s16le``, ``f32le``, ...); AudioFormatError if unknown."""
    try:
        return SAMPLE_FORMATS[name.lower()]
    except KeyError:
        known = ", ".join(SAMPLE_FORMATS)
        raise AudioFormatError(f"unknown sample format {name!r}; use one of {known}", format=name) from None


@dataclass(frozen=True)
class WavHeader:
    """What the ``fmt `` chunk says and where the audio lies in the file (byte offsets)."""

    rate: int
    channels: int
    format: SampleFormat
    data_offset: int
    data_bytes: int

    @property
    def frames(self) -> int:
        """Whole frames available in the file."""
        return self.data_bytes // self.format.frame_bytes(self.channels)


def _parse_fmt(body: bytes) -> tuple[int, int, SampleFormat, int]:
    if len(body) < 16:
        raise AudioFormatError(f"the fmt chunk is {len(body)} bytes, needs at least 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise AudioFormatError("a WAVE_FORMAT_EXTENSIBLE fmt chunk is shorter than 40 bytes")
        tag = struct.unpack_from("<H", body, 24)[0]
    if channels == 0 or channels > MAX_CHANNELS:
        raise AudioFormatError(f"the WAV header gives {channels} channels", channels=channels)
    if rate == 0 or rate > MAX_RATE:
        raise AudioFormatError(f"the WAV header gives a sample rate of {rate} Hz", rate=rate)
    name = _WAV_FORMATS.get((tag, bits))
    if name is None:
        raise AudioFormatError(
            f"unsupported WAV encoding (format tag 0x{tag:04x}, {bits} bits); "
            "use 8/16/24/32-bit PCM or 32/64-bit float",
            format_tag=tag,
            bits=bits,
        )
    fmt = SAMPLE_FORMATS[name]
    if block_align not in (0, fmt.frame_bytes(channels)):
        log.warning(
            "WAV block align %d disagrees with %d channels of %d bits; using the latter",
            block_align,
            channels,
            bits,
        )
    return rate, channels, fmt, fmt.frame_bytes(channels)


def parse_wav_header(data: bytes | memoryview, complete: bool = True) -> WavHeader:
    """Find the format and the audio in the bytes of a WAV file (see the module docstring).

    ``complete=False`` says ``data`` is only the start of a stream (a WAV arriving through a pipe):
    a data chunk reaching past it is expected then and not warned about.
    """
    view = memoryview(data)
    if len(view) == 0:
        raise AudioFormatError("the file is empty")
    if len(view) < 12 or bytes(view[0:4]) != b"RIFF" or bytes(view[8:12]) != b"WAVE":
        raise AudioFormatError("not a WAV file (no RIFF/WAVE header)")
    position = 12
    fmt_info: tuple[int, int, SampleFormat, int] | None = None
    while position + 8 <= len(view):
        chunk_id = bytes(view[position : position + 4])
        (size,) = struct.unpack_from("<I", view, position + 4)
        body_start = position + 8
        if chunk_id == b"fmt ":
            fmt_info = _parse_fmt(bytes(view[body_start : body_start + size]))
        elif chunk_id == b"data":
            if fmt_info is None:
                raise AudioFormatError("the WAV data chunk comes before any fmt chunk")
            rate, channels, fmt, frame = fmt_info
            available = len(view) - body_start
            if size > available and complete:
                log.warning(
                    "WAV data chunk claims %d bytes but only %d follow; reading what is there",
                    size,
                    available,
                )
            size = min(size, available)
            if size % frame and complete:
                log.warning("WAV data ends mid-frame; dropping %d trailing bytes", size % frame)
            return WavHeader(rate, channels, fmt, body_start, size - size % frame)
        position = body_start + size + (size & 1)
    if fmt_info is None:
        raise AudioFormatError("the WAV file has no fmt chunk")
    raise AudioFormatError("the WAV file has no data chunk")


def decode_wav(data: bytes | memoryview) -> tuple[NDArray[np.float32], int]:
    """Decode the bytes of a WAV file: ``(samples float32 (frames, channels), rate in Hz)``."""
    header = parse_wav_header(data)
    body = memoryview(data)[header.data_offset : header.data_offset + header.data_bytes]
    return header.format.decode(body, header.channels), header.rate


def _read_file(path: str | Path) -> bytes:
    """The bytes of an audio file; typed errors for a missing file, a directory or an I/O failure."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DeviceNotFound(f"no such file: {path}", path=str(path)) from None
    except IsADirectoryError:
        raise AudioFormatError(f"{path} is a directory, not an audio file", path=str(path)) from None
    except OSError as error:
        raise DeviceError(f"cannot read {path}: {error.strerror or error}", path=str(path)) from error


def read_wav(path: str | Path) -> tuple[NDArray[np.float32], int]:
    """Read a WAV file: ``(samples float32 (frames, channels) in [-1, 1), rate in Hz)``.

    Raises :class:`AudioFormatError` when the file cannot be audio (or is a directory),
    :class:`DeviceNotFound` when it does not exist and :class:`DeviceError` when it cannot be read.
    """
    return decode_wav(_read_file(path))


def read_raw(
    source: str | Path | bytes, rate: int, fmt: str = "s16le", channels: int = 1
) -> NDArray[np.float32]:
    """Read headerless PCM (a file path or the bytes themselves) as float32 ``(frames, channels)``.

    A partial final frame is dropped with a warning; an empty input gives ``(0, channels)``.
    ``rate`` is only checked (positive); the caller keeps it.
    """
    check_stream_settings(rate, channels)
    sample = sample_format(fmt)
    data = source if isinstance(source, bytes) else _read_file(source)
    frame = sample.frame_bytes(channels)
    if len(data) % frame:
        log.warning("raw PCM ends mid-frame; dropping %d trailing bytes", len(data) % frame)
    return sample.decode(memoryview(data)[: len(data) - len(data) % frame], channels)


def check_stream_settings(rate: int, channels: int) -> None:
    """Raise :class:`AudioFormatError` unless ``rate`` and ``channels`` are usable."""
    if not 0 < rate <= MAX_RATE:
        raise AudioFormatError(f"a sample rate of {rate} Hz is not usable", rate=rate)
    if not 0 < channels <= MAX_CHANNELS:
        raise AudioFormatError(f"{channels} channels is not usable", channels=channels)


def encode_wav(samples: NDArray[np.floating], rate: int, fmt: str = "s16le") -> bytes:
    """Encode float samples ``(frames,)`` or ``(frames, channels)`` as the bytes of a WAV file.

    ``fmt`` is one of ``u8``, ``s16le``, ``s24le``, ``s32le``, ``f32le``, ``f64le``.
    """
    array = np.asarray(samples)
    array = array.reshape(-1, 1) if array.ndim == 1 else array
    channels = array.shape[1]
    check_stream_settings(rate, channels)
    sample = sample_format(fmt)
    tag = WAVE_FORMAT_IEEE_FLOAT if sample.kind == "float" else WAVE_FORMAT_PCM
    if _WAV_FORMATS.get((tag, 8 * sample.width)) != sample.name:
        raise AudioFormatError(f"WAV files cannot hold {fmt} samples", format=fmt)
    body = sample.encode(array)
    frame = sample.frame_bytes(channels)
    fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * frame, frame, 8 * sample.width)
    chunks = b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    chunks += b"data" + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_wav(path: str | Path, samples: NDArray[np.floating], rate: int, fmt: str = "s16le") -> None:
    """Write float samples ``(frames,)`` or ``(frames, channels)`` in [-1, 1] to a WAV file.

    Raises :class:`DeviceNotFound` when the folder does not exist, :class:`UsageError` for a
    directory and :class:`DeviceError` when the file cannot be written (no space, ...).
    """
    data = encode_wav(samples, rate, fmt)
    try:
        Path(path).write_bytes(data)
    except FileNotFoundError:
        raise DeviceNotFound(f"cannot write {path}: no such folder", path=str(path)) from None
    except IsADirectoryError:
        raise UsageError(f"cannot write {path}: it is a directory", path=str(path)) from None
    except OSError as error:
        raise DeviceError(f"cannot write {path}: {error.strerror or error}", path=str(path)) from error

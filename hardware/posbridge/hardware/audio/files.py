"""Recorded audio backends: ``wav://PATH[?realtime=1]`` and ``stdin://?rate=48000&format=s16le``.

``wav://`` maps the file and decodes one block at a time (an hour-long recording costs no more
memory than a second of it), as fast as possible or paced like a live input. ``stdin://`` reads
raw PCM from a pipe (``arecord -f S16_LE -r 48000 -c 1 | posbridge listen --audio
stdin://?rate=48000``); a WAV header at the start of the pipe is recognised and checked against the
URL. Both decode through :data:`~posbridge.hardware.audio.wavfile.SAMPLE_FORMATS`.
"""

from __future__ import annotations

import logging
import mmap
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray
from posbridge.hardware.audio.source import AudioSource, UrlOptions, live_block_frames, register_backend
from posbridge.hardware.audio.wavfile import (
    SampleFormat,
    check_stream_settings,
    parse_wav_header,
    sample_format,
)
from posbridge.protocols.errors import AudioFormatError, DeviceError, DeviceNotFound, UsageError

log = logging.getLogger(__name__)

DEFAULT_FILE_BLOCK_FRAMES = 4096
MAX_WAV_HEADER_BYTES = 1 << 20


def _check_expected(url: str, what: str, expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise AudioFormatError(
            f"{what} mismatch: {url} carries {actual} but the URL asks for {expected}",
            url=url,
            expected=expected,
            actual=actual,
        )


@register_backend("wav")
class WavAudioSource(AudioSource):
    """A WAV file as an audio stream; ``realtime=True`` paces blocks like a live device."""

    def __init__(
        self,
        url: str,
        path: Path,
        realtime: bool = False,
        block_frames: int = DEFAULT_FILE_BLOCK_FRAMES,
        expected_rate: int | None = None,
    ) -> None:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise DeviceNotFound(f"no such WAV file: {path}", url=url, path=str(path)) from None
        except IsADirectoryError:
            raise UsageError(f"{path} is a directory, not a WAV file", url=url, path=str(path)) from None
        except OSError as error:
            raise DeviceError(f"cannot read {path}: {error.strerror}", url=url, path=str(path)) from None
        with handle:
            if path.stat().st_size == 0:
                raise AudioFormatError(f"{path}: the file is empty", path=str(path))
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        failure: AudioFormatError | None = None
        try:
            header = parse_wav_header(memoryview(self._map))
        except AudioFormatError as error:
            failure = AudioFormatError(f"{path}: {error}", path=str(path))
        if failure is not None:
            self._map.close()  # after the except block: its traceback no longer pins views of the map
            raise failure
        super().__init__(url, header.rate, header.channels)
        try:
            _check_expected(url, "sample-rate", expected_rate, header.rate)
        except AudioFormatError:
            self._map.close()
            raise
        self.path = path
        self.realtime = realtime
        self.block_frames = block_frames
        self._format = header.format
        self._position = header.data_offset
        self._end = header.data_offset + header.data_bytes
        self._frame_bytes = header.format.frame_bytes(header.channels)

    @classmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> AudioSource:
        options = UrlOptions(url, params)
        realtime = options.flag("realtime")
        block = options.integer("block", DEFAULT_FILE_BLOCK_FRAMES, minimum=1)
        rate = options.integer("rate", 0, minimum=0) or None
        options.finish()
        if not target:
            raise UsageError("wav:// needs a path, e.g. wav://recording.wav", url=url)
        return cls(url, Path(target), realtime=realtime, block_frames=block, expected_rate=rate)

    @property
    def duration(self) -> float:
        """Seconds of audio in the file."""
        return (self._end - self._position) // self._frame_bytes / self.rate + self.stream_time

    def _read_frames(self) -> NDArray[np.float32] | None:
        if self._position >= self._end:
            return None
        stop = min(self._end, self._position + self.block_frames * self._frame_bytes)
        samples = self._format.decode(memoryview(self._map)[self._position : stop], self.channels)
        self._position = stop
        if self.realtime:
            self.pace(self.stream_time + samples.shape[0] / self.rate)
        return samples

    def _close(self) -> None:
        self._map.close()


@register_backend("stdin")
class StdinAudioSource(AudioSource):
    """Raw PCM from a byte stream (standard input unless ``stream`` is given).

    Ends cleanly at end of input; a partial final frame is dropped with a warning. A stream that
    ends before one whole frame raises :class:`AudioFormatError`, as does a WAV header whose rate or
    channel count differs from the URL's.
    """

    def __init__(
        self,
        url: str,
        rate: int,
        fmt: SampleFormat,
        channels: int = 1,
        stream: BinaryIO | None = None,
        block_frames: int | None = None,
    ) -> None:
        check_stream_settings(rate, channels)
        super().__init__(url, rate, channels)
        self.format = fmt
        self.block_frames = block_frames or live_block_frames(rate)
        if stream is None and sys.stdin is None:
            raise UsageError(f"{url}: this process has no standard input", url=url)
        if stream is None and sys.stdin.isatty():
            raise UsageError(
                f"{url} reads raw PCM from a pipe, but standard input is a terminal; "
                "e.g. arecord -f S16_LE -r 48000 -c 1 | posbridge listen --audio 'stdin://?rate=48000'",
                url=url,
            )
        self._stream: BinaryIO = stream if stream is not None else sys.stdin.buffer
        self._pending = b""
        self._header_checked = False
        self._ended = False

    @classmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> AudioSource:
        options = UrlOptions(url, params)
        rate = options.integer("rate", 0, minimum=0)
        fmt = sample_format(options.text("format", "s16le"))
        channels = options.integer("channels", 1, minimum=1)
        block = options.integer("block", 0, minimum=0) or None
        options.finish()
        if target not in ("", "-"):
            raise UsageError("stdin:// takes no path; write stdin://?rate=48000", url=url)
        if not rate:
            raise UsageError("stdin:// needs the sample rate: stdin://?rate=48000&format=s16le", url=url)
        return cls(url, rate, fmt, channels, block_frames=block)

    def _chunk(self, size: int) -> bytes:
        read1 = getattr(self._stream, "read1", None)
        data = read1(size) if read1 is not None else self._stream.read(size)
        return bytes(data or b"")

    def _skip_wav_header(self) -> None:
        while len(self._pending) < MAX_WAV_HEADER_BYTES:
            try:
                header = parse_wav_header(self._pending, complete=False)
            except AudioFormatError:
                more = self._chunk(65536)
                if not more:
                    raise
                self._pending += more
                continue
            _check_expected(self.url, "sample-rate", self.rate, header.rate)
            _check_expected(self.url, "channel-count", self.channels, header.channels)
            if header.format != self.format:
                log.info("stdin carries a WAV header with %s samples; decoding those", header.format.name)
                self.format = header.format
            self._pending = self._pending[header.data_offset :]
            return
        raise AudioFormatError("stdin starts like a WAV file but no data chunk follows", url=self.url)

    def _read_frames(self) -> NDArray[np.float32] | None:
        frame = self.format.frame_bytes(self.channels)
        if not self._header_checked:
            self._header_checked = True
            while len(self._pending) < 12 and (more := self._chunk(12 - len(self._pending))):
                self._pending += more
            if self._pending[:4] == b"RIFF" and self._pending[8:12] == b"WAVE":
                self._skip_wav_header()
        while not self._ended and len(self._pending) < frame:
            more = self._chunk(self.block_frames * frame)
            if not more:
                self._ended = True
            self._pending += more
        usable = len(self._pending) - len(self._pending) % frame
        if usable == 0:
            if self._pending:
                log.warning("stdin ended mid-frame; dropping %d trailing bytes", len(self._pending))
            if self.frames_read == 0:
                raise AudioFormatError("stdin:// ended before any audio arrived", url=self.url)
            return None
        data, self._pending = self._pending[:usable], self._pending[usable:]
        return self.format.decode(data, self.channels)

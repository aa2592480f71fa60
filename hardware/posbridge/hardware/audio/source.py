"""The audio channel: :class:`AudioSource` and :func:`open_audio` (DESIGN.md, "Hardware channels").

In the manner of pyserial's ``serial_for_url`` and python-can's ``Bus``, one base class owns the
public API (a context manager that yields :class:`AudioBlock` s with their stream time and capture
time, counts overruns and closes once) and each backend fills two small hooks:
``_read_frames()`` and ``_close()``. Backends register a URL scheme:

==============  ==========================================================================
``device://``   a sound card through sounddevice/PortAudio (:mod:`.device`)
``wav://``      a WAV file, as fast as possible or paced (``?realtime=1``) (:mod:`.files`)
``stdin://``    raw PCM from a pipe (``?rate=48000&format=s16le&channels=1``) (:mod:`.files`)
``virtual://``  synthesized swipes at chosen moments, deterministic per seed (:mod:`.virtual`)
==============  ==========================================================================
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
from numpy.typing import NDArray
from posbridge.hardware._resource import ClosingResource
from posbridge.protocols.errors import DeviceError, UsageError


@dataclass(frozen=True)
class AudioBlock:
    """A block of captured audio.

    ``samples`` is float32 of shape ``(frames, channels)`` in [-1, 1); ``t`` is the stream time
    of its first frame in seconds since the stream started (frames counted, not wall time);
    ``captured_at`` is ``time.monotonic()`` when the block's last frame became available.
    """

    samples: NDArray[np.float32]
    t: float
    captured_at: float

    @property
    def frames(self) -> int:
        """Number of frames in the block."""
        return int(self.samples.shape[0])


class AudioSource(ClosingResource, abc.ABC):
    """A stream of audio blocks from one input; use :func:`open_audio` to make one.

    Iterate it (or call :meth:`read` until it returns ``None``) to get :class:`AudioBlock` s;
    use it as a context manager so the input is closed. ``rate`` is in Hz; ``channels`` is the
    number of columns of every block; ``overruns`` counts input overflows (blocks the hardware or
    the reader lost), which callers should report.
    """

    scheme: ClassVar[str] = ""

    def __init__(self, url: str, rate: int, channels: int) -> None:
        self.url = url
        self.rate = int(rate)
        self.channels = int(channels)
        self.overruns = 0
        self.frames_read = 0
        self._started_at: float | None = None
        self._captured_at: float | None = None  # a backend that knows when its block arrived sets this

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> AudioSource:
        """Build the source for ``url`` (``target`` is the part after ``scheme://``)."""

    @abc.abstractmethod
    def _read_frames(self) -> NDArray[np.float32] | None:
        """Hook: the next frames as float32 ``(n, channels)`` (n >= 1), or ``None`` at the end.

        A backend that knows when the frames were captured sets ``self._captured_at``
        (``time.monotonic()`` seconds); otherwise the block is stamped when the hook returns.
        """

    def read(self) -> AudioBlock | None:
        """The next block, or ``None`` when the stream has ended."""
        if self.closed:
            raise DeviceError(f"audio source {self.url} is closed", url=self.url)
        if self._started_at is None:
            self._started_at = time.monotonic()
        samples = self._read_frames()
        if samples is None:
            return None
        captured_at, self._captured_at = self._captured_at or time.monotonic(), None
        block = AudioBlock(samples, self.frames_read / self.rate, captured_at)
        self.frames_read += samples.shape[0]
        return block

    def __iter__(self) -> Iterator[AudioBlock]:
        while (block := self.read()) is not None:
            yield block

    @property
    def stream_time(self) -> float:
        """Seconds of audio delivered so far."""
        return self.frames_read / self.rate

    def pace(self, stream_seconds: float) -> None:
        """Sleep until ``stream_seconds`` of wall time have passed since the first read (live pacing)."""
        if self._started_at is None:
            self._started_at = time.monotonic()
        delay = self._started_at + stream_seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)


    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {self.rate} Hz x{self.channels}>"


def live_block_frames(rate: int) -> int:
    """Frames in 10 ms at ``rate`` Hz (at least one): the default block of sources read like a live input."""
    return max(rate // 100, 1)


_BACKENDS: dict[str, type[AudioSource]] = {}

SourceT = TypeVar("SourceT", bound=type[AudioSource])


def register_backend(scheme: str) -> Callable[[SourceT], SourceT]:
    """Class decorator: make ``open_audio`` hand ``scheme://`` URLs to the decorated class."""

    def decorate(cls: SourceT) -> SourceT:
        cls.scheme = scheme
        _BACKENDS[scheme] = cls
        return cls

    return decorate


def _load_backends() -> None:
    from posbridge.hardware.audio import device, files, virtual  # noqa: F401 - registers the schemes


def open_audio(url: str) -> AudioSource:
    """Open the audio input named by ``url`` (see the module docstring for the schemes).

    Raises :class:`UsageError` for a malformed URL or an unknown scheme or option, and the
    backend's :class:`~posbridge.protocols.errors.DeviceError` or ``AudioFormatError`` when the
    input cannot be opened.
    """
    _load_backends()
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        known = ", ".join(f"{name}://" for name in sorted(_BACKENDS))
        raise UsageError(f"audio URL {url!r} has no scheme; use one of {known}", url=url)
    backend = _BACKENDS.get(parts.scheme.lower())
    if backend is None:
        known = ", ".join(f"{name}://" for name in sorted(_BACKENDS))
        raise UsageError(f"unknown audio URL scheme {parts.scheme!r}; use one of {known}", url=url)
    target = unquote(parts.netloc + parts.path)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return backend.from_url(url, target, params)


class UrlOptions:
    """The ``?key=value`` options of an audio URL, each read once with its type; leftovers are errors."""

    def __init__(self, url: str, params: Mapping[str, str]) -> None:
        self.url = url
        self._params = dict(params)

    def _take(self, key: str, default: Any, convert: Callable[[str], Any], kind: str) -> Any:
        if key not in self._params:
            return default
        text = self._params.pop(key)
        try:
            return convert(text)
        except ValueError:
            raise UsageError(
                f"audio URL option {key}={text!r} is not {kind}", url=self.url, key=key
            ) from None

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        """An integer option no smaller than ``minimum``."""
        value: int = self._take(key, default, int, "an integer")
        if value < minimum:
            raise UsageError(
                f"audio URL option {key}={value} must be at least {minimum}", url=self.url, key=key
            )
        return value

    def number(self, key: str, default: float | None, minimum: float = 0.0) -> float | None:
        """A finite float option no smaller than ``minimum`` (or ``default`` when absent)."""
        value: float | None = self._take(key, default, float, "a number")
        if value is not None and (not np.isfinite(value) or value < minimum):
            raise UsageError(
                f"audio URL option {key}={value} must be at least {minimum}", url=self.url, key=key
            )
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        """A 0/1/true/false/yes/no option."""
        table = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": True}
        value: bool = self._take(
            key,
            default,
            lambda text: table[text.lower()] if text.lower() in table else _raise_value(),
            "a flag (0 or 1)",
        )
        return value

    def text(self, key: str, default: str) -> str:
        """A string option."""
        value: str = self._take(key, default, str, "text")
        return value

    def numbers(self, key: str) -> list[float]:
        """A comma-separated list of non-negative numbers (empty when absent)."""
        values: list[float] = self._take(
            key, [], lambda text: [float(part) for part in text.split(",") if part], "a list of numbers"
        )
        if any(not np.isfinite(value) or value < 0 for value in values):
            raise UsageError(f"audio URL option {key} must list non-negative numbers", url=self.url, key=key)
        return values

    def finish(self) -> None:
        """Raise :class:`UsageError` naming any option nobody read."""
        if self._params:
            unknown = ", ".join(sorted(self._params))
            raise UsageError(f"unknown audio URL option(s) {unknown} in {self.url!r}", url=self.url)


def _raise_value() -> bool:
    raise ValueError

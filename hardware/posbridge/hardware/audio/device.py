"""``device://NAME_OR_INDEX?rate=48000&channels=1``: a sound card through sounddevice and PortAudio.

PortAudio calls back from its own thread with 16-bit blocks; the callback only copies them into
a bounded queue, and :meth:`DeviceAudioSource.read` hands them on as float32. Nothing is lost
silently: an input overflow PortAudio reports, or a block dropped because the reader fell behind,
increments :attr:`AudioSource.overruns`. A device that stops delivering (unplugged) raises a clear
:class:`DeviceDisconnected` through ``on_disconnect`` and then, unless ``reconnect=0``, the source
rescans PortAudio's devices every ``retry`` seconds and carries on when the device is back. A rate
or channel count the device refuses raises :class:`UnsupportedSetting` naming the rates it offers.

``NAME_OR_INDEX`` is PortAudio's device index, its exact name, or a unique part of it
(``device://USB``); empty means the default input. ALSA names such as ``hw:1,0`` or a PCM from
``~/.asoundrc`` work as names.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from posbridge.hardware.audio.source import AudioSource, UrlOptions, live_block_frames, register_backend
from posbridge.protocols.errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    UnsupportedSetting,
    UsageError,
)

log = logging.getLogger(__name__)

COMMON_RATES: tuple[int, ...] = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
DEFAULT_RATE = 48_000
QUEUE_BLOCKS = 512
_INT16_SCALE = np.float32(1.0 / 32768.0)
_OPEN_SOURCES: weakref.WeakSet[DeviceAudioSource] = weakref.WeakSet()


def sounddevice_module() -> ModuleType:
    """Import sounddevice, turning a missing module or PortAudio library into a clear DeviceError."""
    try:
        import sounddevice as module
    except ImportError:
        raise DeviceError("sounddevice is not installed; pip install 'posbridge[live]'") from None
    except OSError as error:
        raise DeviceError(
            "the PortAudio library is missing; install it (Debian, Raspberry Pi OS: "
            "apt install libportaudio2)"
        ) from error
    sounddevice: ModuleType = module
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    """A sound input PortAudio offers: its index, name, host API, channels and rates (Hz)."""

    index: int
    name: str
    hostapi: str
    max_channels: int
    default_rate: int
    rates: tuple[int, ...]

    @property
    def url(self) -> str:
        """The ``device://`` URL that opens it."""
        return f"device://{self.name}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "index": self.index,
            "name": self.name,
            "hostapi": self.hostapi,
            "channels": self.max_channels,
            "default_rate": self.default_rate,
            "rates": list(self.rates),
            "url": self.url,
        }


def supported_rates(
    device: int, channels: int = 1, candidates: tuple[int, ...] = COMMON_RATES
) -> tuple[int, ...]:
    """The ``candidates`` rates (Hz) the device accepts for ``channels`` 16-bit input channels."""
    sd = sounddevice_module()
    rates = []
    for rate in candidates:
        try:
            sd.check_input_settings(device=device, channels=channels, dtype="int16", samplerate=rate)
        except Exception:
            continue
        rates.append(rate)
    return tuple(rates)


def list_input_devices() -> list[InputDevice]:
    """Every input PortAudio can open, with the common rates each accepts."""
    sd = sounddevice_module()
    hostapis = sd.query_hostapis()
    devices = []
    for info in sd.query_devices():
        if info["max_input_channels"] < 1:
            continue
        devices.append(
            InputDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                hostapi=str(hostapis[info["hostapi"]]["name"]),
                max_channels=int(info["max_input_channels"]),
                default_rate=int(info["default_samplerate"]),
                rates=supported_rates(int(info["index"])),
            )
        )
    return devices


def resolve_input_device(name_or_index: str) -> int:
    """PortAudio's index for an input named by index, exact name or a unique part of its name."""
    sd = sounddevice_module()
    inputs = [
        (int(info["index"]), str(info["name"]))
        for info in sd.query_devices()
        if info["max_input_channels"] > 0
    ]
    if not name_or_index:
        default = sd.default.device[0]
        if default is None or int(default) < 0:
            if not inputs:
                raise DeviceNotFound("no audio input device found")
            return inputs[0][0]
        return int(default)
    if name_or_index.isdigit():
        index = int(name_or_index)
        if any(index == known for known, _ in inputs):
            return index
        raise DeviceNotFound(
            f"no audio input with index {index}; run 'posbridge devices'", device=name_or_index
        )
    exact = [index for index, name in inputs if name == name_or_index]
    if exact:
        return exact[0]
    partial = [(index, name) for index, name in inputs if name_or_index.lower() in name.lower()]
    if len(partial) == 1:
        return partial[0][0]
    if partial:
        names = "; ".join(name for _, name in partial)
        raise UsageError(f"audio input {name_or_index!r} is ambiguous: {names}", device=name_or_index)
    raise DeviceNotFound(
        f"no audio input called {name_or_index!r}; run 'posbridge devices'", device=name_or_index
    )


def file_capture_asoundrc(
    name: str, raw_path: str | Path, rate: int = DEFAULT_RATE, channels: int = 1
) -> str:
    """ALSA configuration that makes a raw s16le recording a capture PCM called ``name``.

    For rigs and tests without a sound card: ``<name>_raw`` is ALSA's ``file`` plugin reading
    ``raw_path`` over the ``null`` PCM, and ``<name>`` a ``plug`` PCM presenting it at ``rate`` Hz
    with ``channels`` channels. Put the text in ``~/.asoundrc`` and open ``device://<name>``.
    """
    return (
        f'pcm.{name}_raw {{ type file; slave.pcm "null"; file "/dev/null"; infile "{raw_path}"; '
        'format "raw" }\n'
        f'pcm.{name} {{ type plug; slave {{ pcm "{name}_raw"; rate {rate}; channels {channels}; '
        "format S16_LE } }\n"
    )


@register_backend("device")
class DeviceAudioSource(AudioSource):
    """A live sound-card input (see the module docstring)."""

    def __init__(
        self,
        url: str,
        device: str = "",
        rate: int = DEFAULT_RATE,
        channels: int = 1,
        block_frames: int | None = None,
        reconnect: bool = True,
        retry_s: float = 1.0,
        stall_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(url, rate, channels)
        self.device = device
        self.block_frames = block_frames or live_block_frames(rate)
        self.reconnect = reconnect
        self.retry_s = retry_s
        self.stall_timeout_s = stall_timeout_s
        self.on_disconnect: Callable[[DeviceDisconnected], None] = self._log_disconnect
        self.on_reconnect: Callable[[], None] = lambda: log.warning("audio input %s is back", self.device)
        self._queue: queue.Queue[tuple[NDArray[np.int16], float]] = queue.Queue(QUEUE_BLOCKS)
        self._lock = threading.Lock()
        self._stream: Any = None
        self._open_stream()

    @classmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> AudioSource:
        options = UrlOptions(url, params)
        rate = options.integer("rate", DEFAULT_RATE, minimum=1)
        channels = options.integer("channels", 1, minimum=1)
        block = options.integer("block", 0) or None
        reconnect = options.flag("reconnect", True)
        retry = options.number("retry", 1.0, minimum=0.01) or 1.0
        stall = options.number("timeout", 2.0, minimum=0.05) or 2.0
        options.finish()
        return cls(url, target, rate, channels, block, reconnect, retry, stall)

    def _log_disconnect(self, error: DeviceDisconnected) -> None:
        log.warning("%s", error)

    def _check_settings(self, index: int) -> None:
        sd = sounddevice_module()
        most = int(sd.query_devices(index)["max_input_channels"])
        if self.channels > most:
            raise UnsupportedSetting(
                f"audio input {self.device or index} offers at most {most} channel(s), not {self.channels}",
                device=self.device,
                channels=self.channels,
                offered_channels=most,
            )
        try:
            sd.check_input_settings(device=index, channels=self.channels, dtype="int16", samplerate=self.rate)
        except Exception as error:
            offered = supported_rates(index, self.channels)
            if offered and self.rate not in offered:
                listed = ", ".join(str(rate) for rate in offered)
                raise UnsupportedSetting(
                    f"audio input {self.device or index} refuses {self.rate} Hz; it offers {listed} Hz",
                    device=self.device,
                    rate=self.rate,
                    offered=offered,
                ) from error
            raise UnsupportedSetting(
                f"audio input {self.device or index} refuses {self.channels} channel(s) at {self.rate} Hz: "
                f"{error}",
                device=self.device,
                rate=self.rate,
                channels=self.channels,
                offered=offered,
            ) from error

    def _callback(self, indata: NDArray[np.int16], frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            with self._lock:
                self.overruns += 1
        try:
            self._queue.put_nowait((indata.copy(), time.monotonic()))
        except queue.Full:
            with self._lock:
                self.overruns += 1

    def _open_stream(self) -> None:
        sd = sounddevice_module()
        index = resolve_input_device(self.device)
        self._check_settings(index)
        try:
            stream = sd.InputStream(
                device=index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self.block_frames,
                callback=self._callback,
            )
            stream.start()
        except Exception as error:
            raise DeviceError(
                f"cannot open audio input {self.device or index}: {error}", device=self.device
            ) from error
        self._stream = stream
        self._last_data = time.monotonic()
        _OPEN_SOURCES.add(self)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as error:
                log.debug("closing audio input: %s", error)

    def _await_device(self) -> None:
        sd = sounddevice_module()
        while not self.closed:
            time.sleep(self.retry_s)
            try:
                if not any(source._stream is not None for source in _OPEN_SOURCES if source is not self):
                    sd._terminate()  # PortAudio lists devices only when initialised: rescan for the
                    sd._initialize()  # replugged card, unless another input is streaming
                self._open_stream()
            except DeviceError as error:
                log.debug("audio input not back yet: %s", error)
                continue
            self.on_reconnect()
            return

    def _read_frames(self) -> NDArray[np.float32] | None:
        while not self.closed:
            try:
                block, captured = self._queue.get(timeout=min(0.1, self.stall_timeout_s))
            except queue.Empty:
                stream = self._stream
                stalled = time.monotonic() - self._last_data > self.stall_timeout_s
                if stream is not None and stream.active and not stalled:
                    continue
                error = DeviceDisconnected(
                    f"audio input {self.device or 'default'} stopped delivering audio (unplugged?)",
                    device=self.device,
                )
                self._close_stream()
                if not self.reconnect:
                    raise error from None
                self.on_disconnect(error)
                self._await_device()
                continue
            self._last_data = time.monotonic()
            self._captured_at = captured
            return block.astype(np.float32) * _INT16_SCALE
        return None

    def _close(self) -> None:
        self._close_stream()
        _OPEN_SOURCES.discard(self)

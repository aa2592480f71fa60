"""The dongle link channel: :class:`Link` and :func:`open_link` (DESIGN.md, "Hardware channels").

In the manner of pyserial's ``serial_for_url``: one base class owns the public API (``write``,
``read``, byte counters, close-once, context manager) and a backend fills the hooks ``_write``,
``_read`` and ``_close``. URLs:

==========================  ===============================================================
``/dev/ttyACM0``            a serial device or pty (``?baudrate=115200`` optional)
``socket://host:port``      pyserial's TCP client; ``loop://`` pyserial's loopback
``rfc2217://host:port``     any other pyserial URL is passed to ``serial.serial_for_url``
``fault://?...&url=<url>``  :class:`FaultyLink` around the link ``<url>`` (``url=`` last)
==========================  ===============================================================

``fault://`` options, each a probability per byte unless noted: ``corrupt``, ``drop``,
``duplicate``, ``split`` (per write: send it in random pieces), ``delay_ms`` (per write, ms),
``baud`` (pace writes at that line rate, 10 bits per byte), ``seed``, ``direction`` (``both``,
``tx`` or ``rx``). Faults hit the bytes this side writes and (``both``/``rx``) reads.
"""

from __future__ import annotations

import abc
import contextlib
import os
import random
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import serial
from posbridge.hardware._resource import ClosingResource
from posbridge.protocols.errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    UsageError,
)

DEFAULT_BAUDRATE = 115_200
DEFAULT_READ_TIMEOUT_S = 0.05
BITS_PER_BYTE = 10


class Link(ClosingResource, abc.ABC):
    """A byte pipe to the dongle (or to the host, from the dongle's side).

    ``read`` returns what has arrived, waiting at most ``read_timeout`` seconds for the first byte
    (``b""`` when nothing came); ``write`` sends all of ``data``. Both raise
    :class:`~posbridge.protocols.errors.DeviceDisconnected` when the device went away; ``write``
    may be called from one thread while another reads.
    """

    def __init__(self, url: str, read_timeout: float = DEFAULT_READ_TIMEOUT_S) -> None:
        self.url = url
        self.read_timeout = read_timeout
        self.bytes_written = 0
        self.bytes_read = 0
        self._write_lock = threading.Lock()

    @abc.abstractmethod
    def _write(self, data: bytes) -> None:
        """Hook: send all of ``data``."""

    @abc.abstractmethod
    def _read(self, max_bytes: int) -> bytes:
        """Hook: up to ``max_bytes`` received bytes, waiting at most ``read_timeout`` for the first."""

    def wake(self) -> None:
        """Make a ``read`` blocked in another thread return early (if the backend can)."""

    def write(self, data: bytes) -> None:
        """Send ``data``."""
        if self.closed:
            raise DeviceDisconnected(f"link {self.url} is closed", url=self.url)
        with self._write_lock:
            self._write(bytes(data))
            self.bytes_written += len(data)

    def read(self, max_bytes: int = 4096) -> bytes:
        """Received bytes (at most ``max_bytes``); ``b""`` if none arrived within ``read_timeout``."""
        if self.closed:
            raise DeviceDisconnected(f"link {self.url} is closed", url=self.url)
        data = self._read(max_bytes)
        self.bytes_read += len(data)
        return data


    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class SerialLink(Link):
    """A pyserial port: a device path, a pty, ``socket://``, ``loop://`` or another pyserial URL."""

    def __init__(
        self,
        url: str,
        baudrate: int = DEFAULT_BAUDRATE,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
        port: serial.Serial | None = None,
    ) -> None:
        super().__init__(url, read_timeout)
        self.baudrate = baudrate
        if port is None:
            try:
                port = serial.serial_for_url(url, baudrate=baudrate, timeout=read_timeout, write_timeout=5.0)
            except ValueError as error:
                raise UsageError(f"not a usable link URL: {url} ({error})", url=url) from error
            except serial.SerialException as error:
                if url.startswith(("/", "COM")) or "No such file" in str(error):
                    raise DeviceNotFound(f"serial device {url} cannot be opened: {error}", url=url) from error
                raise DeviceError(f"link {url} cannot be opened: {error}", url=url) from error
        self.port = port

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as error:
            raise DeviceDisconnected(f"link {self.url} went away while writing", url=self.url) from error

    def _read(self, max_bytes: int) -> bytes:
        try:
            waiting = self.port.in_waiting
            data: bytes = self.port.read(min(max(waiting, 1), max_bytes))
        except (serial.SerialException, OSError, TypeError) as error:
            raise DeviceDisconnected(f"link {self.url} went away while reading", url=self.url) from error
        return data

    def wake(self) -> None:
        cancel_read = getattr(self.port, "cancel_read", None)
        if cancel_read is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                cancel_read()

    def _close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self.port.close()


class FaultyLink(Link):
    """Wraps a link and damages its traffic: corrupt, drop, duplicate bytes; split and delay writes.

    Rates are probabilities in [0, 1] per byte (``split``: per write). ``baud`` paces writes to
    that line rate. ``direction`` picks the traffic to damage: ``"tx"`` (what this side writes),
    ``"rx"`` (what it reads) or ``"both"``. The same ``seed`` gives the same faults for the same
    traffic.
    """

    def __init__(
        self,
        inner: Link,
        *,
        corrupt: float = 0.0,
        drop: float = 0.0,
        duplicate: float = 0.0,
        split: float = 0.0,
        delay_ms: float = 0.0,
        baud: int = 0,
        seed: int | None = None,
        direction: str = "both",
        url: str | None = None,
    ) -> None:
        super().__init__(url or f"fault://?url={inner.url}", inner.read_timeout)
        for name, rate in (("corrupt", corrupt), ("drop", drop), ("duplicate", duplicate), ("split", split)):
            if not 0.0 <= rate <= 1.0:
                raise UsageError(f"fault rate {name}={rate} is not a probability in [0, 1]", key=name)
        if direction not in ("both", "tx", "rx"):
            raise UsageError(f"fault direction must be both, tx or rx, not {direction!r}", key="direction")
        if delay_ms < 0 or baud < 0:
            raise UsageError("fault delay_ms and baud must not be negative", key="delay_ms")
        self.inner = inner
        self.corrupt, self.drop, self.duplicate, self.split = corrupt, drop, duplicate, split
        self.delay_s = delay_ms / 1000.0
        self.baud = baud
        self.direction = direction
        self._tx_rng = random.Random(None if seed is None else seed * 2 + 1)
        self._rx_rng = random.Random(None if seed is None else seed * 2 + 2)
        self.faults = {"corrupt": 0, "drop": 0, "duplicate": 0, "split": 0}

    def damage(self, data: bytes, rng: random.Random) -> bytes:
        """``data`` with faults applied at the configured rates."""
        if not (self.corrupt or self.drop or self.duplicate):
            return data
        out = bytearray()
        threshold_drop = self.drop
        threshold_corrupt = threshold_drop + self.corrupt
        threshold_duplicate = threshold_corrupt + self.duplicate
        for byte in data:
            roll = rng.random()
            if roll >= threshold_duplicate:
                out.append(byte)
            elif roll < threshold_drop:
                self.faults["drop"] += 1
            elif roll < threshold_corrupt:
                self.faults["corrupt"] += 1
                out.append(byte ^ rng.randint(1, 255))
            else:
                self.faults["duplicate"] += 1
                out += bytes((byte, byte))
        return bytes(out)

    def _send(self, data: bytes) -> None:
        if self.baud:
            time.sleep(len(data) * BITS_PER_BYTE / self.baud)
        self.inner.write(data)

    def _write(self, data: bytes) -> None:
        if self.direction != "rx":
            data = self.damage(data, self._tx_rng)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.split and len(data) > 1 and self._tx_rng.random() < self.split:
            self.faults["split"] += 1
            cut = self._tx_rng.randint(1, len(data) - 1)
            self._send(data[:cut])
            time.sleep(0.001)
            self._send(data[cut:])
        else:
            self._send(data)

    def _read(self, max_bytes: int) -> bytes:
        data = self.inner.read(max_bytes)
        if data and self.direction != "tx":
            data = self.damage(data, self._rx_rng)
        return data

    def wake(self) -> None:
        self.inner.wake()

    def _close(self) -> None:
        self.inner.close()


def _fault_link(url: str, baudrate: int, read_timeout: float) -> FaultyLink:
    query = url[len("fault://") :].lstrip("/").lstrip("?")
    options, separator, inner_url = query.partition("url=")
    if not separator or not inner_url:
        raise UsageError("fault:// needs the wrapped link last: fault://?drop=0.01&url=/dev/ttyACM0", url=url)
    numbers: dict[str, float] = {}
    direction = "both"
    for key, value in parse_qsl(options.rstrip("&")):
        if key == "direction":
            direction = value
        elif key not in ("corrupt", "drop", "duplicate", "split", "delay_ms", "baud", "seed"):
            raise UsageError(f"unknown fault:// option {key!r}", url=url, key=key)
        else:
            try:
                numbers[key] = float(value)
            except ValueError:
                raise UsageError(f"fault:// option {key} must be a number, not {value!r}", key=key) from None
    inner = open_link(inner_url, baudrate=baudrate, read_timeout=read_timeout)
    try:
        return FaultyLink(
            inner,
            corrupt=numbers.get("corrupt", 0.0),
            drop=numbers.get("drop", 0.0),
            duplicate=numbers.get("duplicate", 0.0),
            split=numbers.get("split", 0.0),
            delay_ms=numbers.get("delay_ms", 0.0),
            baud=int(numbers.get("baud", 0)),
            seed=int(numbers["seed"]) if "seed" in numbers else None,
            direction=direction,
            url=url,
        )
    except UsageError:
        inner.close()
        raise


def _require_host_and_port(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UsageError(f"not a usable link URL: {url} ({error})", url=url) from None
    if not parts.hostname or port is None:
        raise UsageError(f"{url} needs a host and a port: socket://host:port", url=url)


def open_link(
    url: str, *, baudrate: int = DEFAULT_BAUDRATE, read_timeout: float = DEFAULT_READ_TIMEOUT_S
) -> Link:
    """Open the link named by ``url`` (see the module docstring); a device path may end in ``?baudrate=N``."""
    if not url:
        raise UsageError("an empty link URL; try /dev/ttyACM0, socket://host:port or loop://")
    if url.startswith("fault://"):
        return _fault_link(url, baudrate, read_timeout)
    if url.startswith("socket://"):
        _require_host_and_port(url)
    target = url
    if url.startswith(("/", "COM")) and "?" in url:
        target, _, query = url.partition("?")
        for key, value in parse_qsl(query):
            if key != "baudrate" or not value.isdigit():
                raise UsageError(f"a serial device URL takes only ?baudrate=N, not {key}={value}", url=url)
            baudrate = int(value)
    return SerialLink(target, baudrate=baudrate, read_timeout=read_timeout)


class NullModem(ClosingResource):
    """A virtual null-modem cable: two pseudo-terminals whose traffic is relayed both ways.

    Open :attr:`paths` ``[0]`` and ``[1]`` with :func:`open_link` (real pyserial on both ends), one
    per process. ``baud`` (0: as fast as possible) paces each direction like a UART line at that
    rate, 10 bits per byte. Bytes that find the far side's input buffer full are dropped and
    counted in :attr:`overruns`, as a UART would. Use it as a context manager or call :meth:`close`.
    """

    def __init__(self, baud: int = 0) -> None:
        import tty

        self.baud = baud
        self.overruns = 0
        self._stop = threading.Event()
        self._fds: list[int] = []
        masters, paths = [], []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._fds += [master, slave]
            masters.append(master)
            paths.append(os.ttyname(slave))
        self.paths: tuple[str, str] = (paths[0], paths[1])
        self._threads = [
            threading.Thread(
                target=self._relay, args=(masters[0], masters[1]), daemon=True, name="null-modem a>b"
            ),
            threading.Thread(
                target=self._relay, args=(masters[1], masters[0]), daemon=True, name="null-modem b>a"
            ),
        ]
        for thread in self._threads:
            thread.start()

    def _relay(self, source: int, sink: int) -> None:
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([source], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(source, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                time.sleep(0.01)
                continue
            if self.baud:
                time.sleep(len(data) * BITS_PER_BYTE / self.baud)
            try:
                written = os.write(sink, data)
            except (BlockingIOError, OSError):
                written = 0
            self.overruns += len(data) - written

    def _close(self) -> None:
        """Stop relaying and close both pseudo-terminals."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for descriptor in self._fds:
            with contextlib.suppress(OSError):
                os.close(descriptor)

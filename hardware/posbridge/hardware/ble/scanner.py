"""The BLE scanner channel: :class:`BeaconScanner` and :func:`open_scanner` (DESIGN.md, "Hardware channels").

In the manner of bleak's ``BleakScanner`` facade over platform backends (and pyserial's
``serial_for_url``), one base class owns the public API and each backend fills one hook,
``_advertisements()``. A scanner is an async iterator of :class:`Advertisement` (bleak's
``AdvertisementData`` plus the device's address, stamped with ``t``); :meth:`BeaconScanner.sightings`
parses each into beacon frames, and ignores and counts malformed ones in :attr:`BeaconScanner.stats`.

==============  ==========================================================================
``bleak://``    BlueZ through bleak: ``bleak://hci0[?mode=active|passive&rssi=-100&watchdog=30]``
``replay://``   a JSONL recording from ``posbridge ble record``: ``replay://scan.jsonl[?realtime=1]``
``virtual://``  scripted beacons moving through a scene: ``virtual://demo[?seed=1&duration=90]``
==============  ==========================================================================
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self, TypeVar
from urllib.parse import parse_qsl, unquote

from posbridge.protocols.beacons import Sighting
from posbridge.protocols.errors import AdvertisementError, UsageError
from posbridge.protocols.types import Advertisement


@dataclass
class ScanStats:
    """Counters of one scanner: adverts seen, beacon adverts, malformed (ignored), other traffic,
    adverts dropped because the consumer fell behind, and watchdog restarts."""

    adverts: int = 0
    beacons: int = 0
    malformed: int = 0
    other: int = 0
    dropped: int = 0
    restarts: int = 0


class BeaconScanner(abc.ABC):
    """A stream of BLE advertisements from one source; make one with :func:`open_scanner`.

    ``async with open_scanner(url) as scanner: async for advertisement in scanner: ...``.
    ``live`` is True for sources stamped with the wall clock (``time.time()``), so consumers
    should also run their timeouts on the wall clock; recordings and scenes carry their own time.
    """

    scheme: ClassVar[str] = ""
    live: ClassVar[bool] = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.stats = ScanStats()
        self.closed = False

    @abc.abstractmethod
    def _advertisements(self) -> AsyncIterator[Advertisement]:
        """Hook: the advertisements of this source, in time order, until it ends."""

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Hook: release the backend's resources."""

    async def __aiter__(self) -> AsyncIterator[Advertisement]:
        async for advertisement in self._advertisements():
            self.stats.adverts += 1
            yield advertisement

    async def sightings(self) -> AsyncIterator[Sighting]:
        """Beacon sightings: advertisements that carry at least one beacon frame.

        Adverts without beacon frames count as ``other``; malformed ones (an
        :class:`AdvertisementError` from the parser) count as ``malformed``; both are skipped.
        """
        async for advertisement in self:
            try:
                sighting = Sighting.of(advertisement)
            except AdvertisementError:
                self.stats.malformed += 1
                continue
            if sighting is not None:
                self.stats.beacons += 1
                yield sighting
            else:
                self.stats.other += 1

    def present_addresses(self) -> frozenset[str]:
        """Addresses the backend currently considers in range (empty when it does not track them)."""
        return frozenset()

    async def close(self) -> None:
        """Stop scanning; closing twice is harmless."""
        if not self.closed:
            self.closed = True
            await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


async def paced(
    advertisements: Iterable[Advertisement], realtime: bool, time_origin: float | None = None
) -> AsyncIterator[Advertisement]:
    """``advertisements`` (in ``t`` order) as an async stream for a recorded or simulated source.

    With ``realtime`` each is held back until its ``t`` is due on the wall clock, counting from
    when iteration began at ``t == time_origin`` (``None``: the first advertisement's ``t``);
    otherwise they go as fast as the consumer takes them, yielding to the event loop every 1024.
    """
    started = time.monotonic()
    for count, advertisement in enumerate(advertisements):
        if realtime:
            if time_origin is None:
                time_origin = advertisement.t
            delay = started + (advertisement.t - time_origin) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif count % 1024 == 1023:
            await asyncio.sleep(0)
        yield advertisement


_BACKENDS: dict[str, Callable[[str, str, dict[str, str]], BeaconScanner]] = {}

ScannerT = TypeVar("ScannerT", bound=type[BeaconScanner])


def register_scanner(scheme: str) -> Callable[[ScannerT], ScannerT]:
    """Class decorator: make :func:`open_scanner` hand ``scheme://`` URLs to ``cls.from_url``."""

    def decorate(cls: ScannerT) -> ScannerT:
        cls.scheme = scheme
        _BACKENDS[scheme] = cls.from_url  # type: ignore[attr-defined]
        return cls

    return decorate


def _load_backends() -> None:
    from posbridge.hardware.ble import bluez, replay, virtual  # noqa: F401 - registers the schemes


def open_scanner(url: str) -> BeaconScanner:
    """Open the advertisement source named by ``url`` (see the module docstring for the schemes).

    Nothing is started until iteration begins. Raises :class:`UsageError` for a malformed URL,
    an unknown scheme or option.
    """
    _load_backends()
    scheme, separator, rest = url.partition("://")
    known = ", ".join(f"{name}://" for name in sorted(_BACKENDS))
    if not separator:
        raise UsageError(f"scanner URL {url!r} has no scheme; use one of {known}", url=url)
    backend = _BACKENDS.get(scheme.lower())
    if backend is None:
        raise UsageError(f"unknown scanner URL scheme {scheme!r}; use one of {known}", url=url)
    target, _, query = rest.partition("?")
    return backend(url, unquote(target), dict(parse_qsl(query, keep_blank_values=True)))


class ScannerOptions:
    """The ``?key=value`` options of a scanner URL, each read once with its type; leftovers are errors."""

    def __init__(self, url: str, params: Mapping[str, str]) -> None:
        self.url = url
        self._params = dict(params)

    def _take(self, key: str) -> str | None:
        return self._params.pop(key, None)

    def _fail(self, key: str, text: str, kind: str) -> UsageError:
        return UsageError(f"scanner URL option {key}={text!r} is not {kind}", url=self.url, key=key)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        """A number within [low, high]."""
        text = self._take(key)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise self._fail(key, text, "a number") from None
        if not low <= value <= high:
            raise self._fail(key, text, f"between {low:g} and {high:g}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        """An integer within [low, high]."""
        text = self._take(key)
        if text is None:
            return default
        if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
            raise self._fail(key, text, f"an integer between {low} and {high}")
        return int(text)

    def flag(self, key: str, default: bool) -> bool:
        """A boolean written 0/1, true/false, yes/no."""
        text = self._take(key)
        if text is None:
            return default
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on", ""):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise self._fail(key, text, "a flag (0 or 1)")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``."""
        text = self._take(key)
        if text is None:
            return default
        if text not in choices:
            raise self._fail(key, text, "one of " + ", ".join(choices))
        return text

    def finish(self) -> None:
        """Raise :class:`UsageError` if options are left that no one read."""
        if self._params:
            names = ", ".join(sorted(self._params))
            raise UsageError(f"scanner URL {self.url!r} has unknown option(s): {names}", url=self.url)

"""``bleak://hci0[?mode=active|passive&rssi=-100&watchdog=30]``: scan with bleak's BlueZ backend.

Discovery filters per BlueZ ``org.bluez.Adapter1.SetDiscoveryFilter`` (doc/org.bluez.Adapter.rst):
``DuplicateData: true`` so BlueZ keeps reporting devices it has already seen (bleak's default
turns that off), ``Transport: le`` and an ``RSSI`` floor -- setting an RSSI filter also lifts
the RSSI delta threshold BlueZ otherwise applies, so every new RSSI reaches us as a
``PropertiesChanged`` signal. Passive mode registers an ``org.bluez.AdvertisementMonitor1`` with
or-patterns for iBeacon (manufacturer data ``4C 00 02 15``), AltBeacon (``BE AC`` after any company id) and
Eddystone (service data ``AA FE``); it needs bluetoothd's experimental features. A watchdog stops
and restarts discovery after ``watchdog`` seconds of silence (adapters that stall after a
controller reset or a suspend); adapter problems become :class:`DeviceNotFound` or
:class:`DeviceError` with the fix in the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from posbridge.hardware.ble.scanner import BeaconScanner, ScannerOptions, register_scanner
from posbridge.protocols.errors import DeviceError, DeviceNotFound
from posbridge.protocols.types import Advertisement

if TYPE_CHECKING:
    from bleak import BleakScanner
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

logger = logging.getLogger(__name__)

DEFAULT_RSSI_FLOOR = -100
DEFAULT_WATCHDOG_S = 30.0
QUEUE_SIZE = 10_000


def or_patterns() -> list[Any]:
    """BlueZ advertisement-monitor or-patterns matching iBeacon, AltBeacon and Eddystone adverts."""
    from bleak.args.bluez import OrPattern
    from bleak.assigned_numbers import AdvertisementDataType

    return [
        OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"),
        OrPattern(2, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xbe\xac"),
        OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
    ]


def _adapter_error(error: BaseException, adapter: str) -> DeviceError:
    """A posbridge error that says what is wrong with the adapter and how to fix it."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

    name = adapter or "the default adapter"
    text = str(error)
    if isinstance(error, BleakBluetoothNotAvailableError):
        if "powered" in text.lower():
            return DeviceError(
                f"Bluetooth adapter {name} is powered off; run 'bluetoothctl power on'", adapter=adapter
            )
        return DeviceNotFound(f"no usable Bluetooth adapter: {text}", adapter=adapter)
    if isinstance(error, BleakDBusError):
        if error.dbus_error in (
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
        ):
            return DeviceNotFound(
                "bluetoothd is not running (no org.bluez on the D-Bus system bus); "
                "start it with 'systemctl start bluetooth'",
                adapter=adapter,
            )
        if error.dbus_error in ("org.freedesktop.DBus.Error.AccessDenied", "org.bluez.Error.NotPermitted"):
            return DeviceError(
                f"not allowed to scan on {name}: add the user to the 'bluetooth' group or run as root",
                adapter=adapter,
            )
        if error.dbus_error == "org.bluez.Error.NotReady":
            return DeviceError(f"Bluetooth adapter {name} is not ready (powered off?)", adapter=adapter)
        if error.dbus_error == "org.freedesktop.DBus.Error.UnknownMethod":
            return DeviceError(
                f"bluetoothd refused the scan on {name} ({error.dbus_error}); passive mode needs "
                "bluetoothd --experimental and Linux >= 5.10",
                adapter=adapter,
            )
        return DeviceError(f"BlueZ refused the scan on {name}: {text}", adapter=adapter)
    if isinstance(error, BleakError):
        if "not found" in text:
            return DeviceNotFound(f"Bluetooth adapter {name} not found ({text})", adapter=adapter)
        if "passive" in text:
            return DeviceError(f"passive scanning is unavailable on {name}: {text}", adapter=adapter)
        return DeviceError(f"Bluetooth scan on {name} failed: {text}", adapter=adapter)
    if isinstance(error, OSError):
        return DeviceNotFound(
            f"cannot reach BlueZ on the D-Bus system bus ({error.strerror or error}); "
            "is dbus running and bluetoothd installed?",
            adapter=adapter,
        )
    return DeviceError(f"Bluetooth scan on {name} failed: {type(error).__name__}: {text}", adapter=adapter)


@register_scanner("bleak")
class BleakBeaconScanner(BeaconScanner):
    """Live advertisements from a BlueZ adapter through bleak, stamped with ``time.time()``."""

    live = True

    def __init__(
        self,
        url: str,
        adapter: str = "",
        mode: str = "active",
        rssi_floor: int = DEFAULT_RSSI_FLOOR,
        watchdog_s: float = DEFAULT_WATCHDOG_S,
    ) -> None:
        super().__init__(url)
        self.adapter = adapter
        self.mode = mode
        self.rssi_floor = rssi_floor
        self.watchdog_s = watchdog_s
        self._bleak: BleakScanner | None = None

    @classmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> BleakBeaconScanner:
        """``target`` is the adapter (``hci0``); empty means BlueZ's first powered adapter."""
        options = ScannerOptions(url, params)
        mode = options.choice("mode", "active", ("active", "passive"))
        rssi_floor = options.integer("rssi", DEFAULT_RSSI_FLOOR, -127, 20)
        watchdog_s = options.number("watchdog", DEFAULT_WATCHDOG_S, 0.05, 3600.0)
        options.finish()
        return cls(url, target.strip("/"), mode, rssi_floor, watchdog_s)

    def _make_bleak(self, queue: asyncio.Queue[Advertisement]) -> BleakScanner:
        from bleak import BleakScanner

        def on_advertisement(device: BLEDevice, data: AdvertisementData) -> None:
            advertisement = Advertisement(
                t=time.time(),
                address=device.address,
                rssi=data.rssi,
                name=data.local_name,
                tx_power=data.tx_power,
                manufacturer_data=dict(data.manufacturer_data),
                service_data=dict(data.service_data),
                service_uuids=tuple(data.service_uuids),
            )
            try:
                queue.put_nowait(advertisement)
            except asyncio.QueueFull:
                self.stats.dropped += 1

        bluez: dict[str, Any] = {"filters": {"DuplicateData": True, "RSSI": self.rssi_floor}}
        if self.adapter:
            bluez["adapter"] = self.adapter
        if self.mode == "passive":
            bluez["or_patterns"] = or_patterns()
        return BleakScanner(on_advertisement, scanning_mode=self.mode, bluez=bluez)  # type: ignore[arg-type]

    async def _start(self, queue: asyncio.Queue[Advertisement]) -> None:
        scanner = self._make_bleak(queue)
        try:
            await scanner.start()
        except Exception as error:
            raise _adapter_error(error, self.adapter) from error
        self._bleak = scanner

    async def _stop(self) -> None:
        scanner, self._bleak = self._bleak, None
        if scanner is not None:
            try:
                await scanner.stop()
            except Exception as error:  # the adapter may already be gone
                logger.warning("stopping the BLE scan failed: %s", error)

    async def _advertisements(self) -> AsyncIterator[Advertisement]:
        queue: asyncio.Queue[Advertisement] = asyncio.Queue(QUEUE_SIZE)
        await self._start(queue)
        try:
            while True:
                try:
                    advertisement = await asyncio.wait_for(queue.get(), self.watchdog_s)
                except TimeoutError:
                    logger.warning(
                        "no advertisement for %.1f s on %s; restarting the scan", self.watchdog_s, self.url
                    )
                    self.stats.restarts += 1
                    await self._stop()
                    await self._start(queue)
                    continue
                yield advertisement
        finally:
            await self._stop()

    def present_addresses(self) -> frozenset[str]:
        """Addresses BlueZ currently lists as discovered (it removes devices it stops hearing)."""
        if self._bleak is None:
            return frozenset()
        return frozenset(self._bleak.discovered_devices_and_advertisement_data)

    async def _close(self) -> None:
        await self._stop()

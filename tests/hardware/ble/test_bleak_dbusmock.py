"""bleak's real BlueZ backend against python-dbusmock's bluez5 template (see conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from posbridge.hardware.ble import open_scanner
from posbridge.hardware.ble.scanner import BeaconScanner
from posbridge.host.checkin import CheckInSettings, CheckInTracker
from posbridge.protocols.beacons import IBeacon
from posbridge.protocols.errors import DeviceError, DeviceNotFound
from posbridge.protocols.types import Advertisement, CheckIn, CheckOut, PresenceEvent, Zone

from .conftest import MockBlueZ

BEACON = IBeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 2, -59)
ADDRESS = "C4:11:22:33:44:55"


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def collect(scanner: BeaconScanner, into: list[Advertisement]) -> None:
    async for advertisement in scanner:
        into.append(advertisement)


async def test_a_beacon_appears_changes_rssi_and_disappears(bluez: MockBlueZ) -> None:
    bluez.add_adapter()
    scanner = open_scanner("bleak://hci0?rssi=-95")
    seen: list[Advertisement] = []
    task = asyncio.create_task(collect(scanner, seen))
    try:
        await until(lambda: bool(bluez.calls("StartDiscovery")))
        path = bluez.add_beacon(ADDRESS, -71, manufacturer_data={0x004C: BEACON.encode()})
        await until(lambda: any(ad.rssi == -71 for ad in seen))
        first = next(ad for ad in seen if ad.rssi == -71)
        assert first.address == ADDRESS
        assert first.manufacturer_data == {0x004C: BEACON.encode()}
        assert ADDRESS in scanner.present_addresses()

        bluez.set_rssi(path, -48)
        await until(lambda: any(ad.rssi == -48 for ad in seen))

        bluez.remove(path)
        await until(lambda: ADDRESS not in scanner.present_addresses())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await scanner.close()
    (filters,) = bluez.calls("SetDiscoveryFilter")[:1]
    assert bool(filters[0]["DuplicateData"]) is True
    assert int(filters[0]["RSSI"]) == -95
    assert str(filters[0]["Transport"]) == "le"
    assert scanner.stats.adverts == len(seen) >= 2


async def test_eddystone_service_data_arrives_in_bleaks_shape(bluez: MockBlueZ) -> None:
    bluez.add_adapter()
    uuid = "0000feaa-0000-1000-8000-00805f9b34fb"
    payload = bytes.fromhex("00e3123456789012346789010000000000010000")
    async with open_scanner("bleak://hci0") as scanner:
        sightings: list[Any] = []

        async def gather() -> None:
            async for sighting in scanner.sightings():
                sightings.append(sighting)

        task = asyncio.create_task(gather())
        await until(lambda: bool(bluez.calls("StartDiscovery")))
        bluez.add_beacon("C4:00:00:00:00:01", -60, service_data={uuid: payload})
        await until(lambda: bool(sightings))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert str(sightings[0].identity.beacon_id) == "eddystone-uid:12345678901234678901:000000000001"


async def test_passive_mode_registers_an_advertisement_monitor(bluez: MockBlueZ) -> None:
    bluez.add_adapter()
    async with open_scanner("bleak://hci0?mode=passive") as scanner:
        seen: list[Advertisement] = []
        task = asyncio.create_task(collect(scanner, seen))
        await until(lambda: bool(bluez.calls("RegisterMonitor")))
        bluez.add_beacon(ADDRESS, -66, manufacturer_data={0x004C: BEACON.encode()})
        await until(lambda: bool(seen))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen[0].rssi == -66
    assert not bluez.calls("StartDiscovery")


async def test_watchdog_restarts_a_silent_scan(bluez: MockBlueZ) -> None:
    bluez.add_adapter()
    scanner = open_scanner("bleak://hci0?watchdog=0.2")
    task = asyncio.create_task(collect(scanner, []))
    try:
        await until(lambda: len(bluez.calls("StartDiscovery")) >= 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await scanner.close()
    assert scanner.stats.restarts >= 2
    assert len(bluez.calls("StopDiscovery")) >= 2


async def test_a_missing_adapter_is_a_clear_device_not_found(bluez: MockBlueZ) -> None:
    bluez.add_adapter("hci0")
    scanner = open_scanner("bleak://hci7")
    with pytest.raises(DeviceNotFound, match="hci7"):
        await anext(aiter(scanner))
    await scanner.close()


async def test_a_powered_off_adapter_says_how_to_power_it_on(bluez: MockBlueZ) -> None:
    bluez.add_adapter("hci0")
    bluez.adapter_mock().UpdateProperties("org.bluez.Adapter1", {"Powered": False})
    scanner = open_scanner("bleak://")
    with pytest.raises(DeviceError, match="power"):
        await anext(aiter(scanner))
    await scanner.close()


async def test_no_bluetoothd_on_the_bus_is_device_not_found(system_bus: str) -> None:
    scanner = open_scanner("bleak://hci0")
    with pytest.raises(DeviceNotFound, match="bluetoothd"):
        await anext(aiter(scanner))
    await scanner.close()


async def test_check_in_and_out_through_bleak(bluez: MockBlueZ) -> None:
    bluez.add_adapter()
    settings = CheckInSettings(gone_timeout_s=1.0, dwell_s=0.0, check_in_evidence=1.0)
    tracker = CheckInTracker(any_beacon=True, settings=settings)
    events: list[PresenceEvent] = []
    async with open_scanner("bleak://hci0") as scanner:

        async def run() -> None:
            async for event in tracker.track(scanner, tick_s=0.1):
                events.append(event)

        task = asyncio.create_task(run())
        await until(lambda: bool(bluez.calls("StartDiscovery")))
        path = bluez.add_beacon(ADDRESS, -52, manufacturer_data={0x004C: BEACON.encode()})
        for rssi in (-50, -53, -51, -49, -52, -50, -51, -53, -49, -50):
            await asyncio.sleep(0.1)
            bluez.set_rssi(path, rssi)
        await until(lambda: any(isinstance(event, CheckIn) for event in events))
        bluez.remove(path)
        await until(lambda: any(isinstance(event, CheckOut) for event in events))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    check_in, check_out = events
    assert check_in.beacon == BEACON.beacon_id
    assert check_in.zone is Zone.COUNTER
    assert check_out.zone is Zone.GONE
    assert check_out.t > check_in.t

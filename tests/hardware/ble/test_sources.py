"""replay:// and virtual:// sources, the JSONL recording format and scanner URLs."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.hardware.ble import Scene, open_scanner
from posbridge.hardware.ble.jsonl import advertisement_from_json, advertisement_to_json, dumps, loads
from posbridge.hardware.ble.scene import demo_scene
from posbridge.protocols.errors import DeviceNotFound, ParseError, UsageError
from posbridge.protocols.types import Advertisement

advertisements = st.builds(
    Advertisement,
    t=st.floats(0, 2e9, allow_nan=False).map(lambda t: round(t, 6)),
    address=st.text(min_size=1, max_size=17),
    rssi=st.integers(-127, 20),
    name=st.none() | st.text(max_size=20),
    tx_power=st.none() | st.integers(-127, 20),
    manufacturer_data=st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=27), max_size=2),
    service_data=st.dictionaries(st.uuids().map(str), st.binary(max_size=24), max_size=2),
    service_uuids=st.lists(st.uuids().map(str), max_size=3).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(advertisement=advertisements)
def test_jsonl_round_trip(advertisement: Advertisement) -> None:
    assert loads(dumps(advertisement)) == advertisement


def test_record_shape_is_as_documented() -> None:
    advertisement = Advertisement(
        1.5,
        "C4:00:00:00:00:01",
        -60,
        "tag",
        3,
        {76: b"\x02\x15"},
        {"0000feaa-0000-1000-8000-00805f9b34fb": b"\x10"},
    )
    assert advertisement_to_json(advertisement) == {
        "t": 1.5,
        "address": "C4:00:00:00:00:01",
        "rssi": -60,
        "name": "tag",
        "tx_power": 3,
        "manufacturer_data": {"76": "0215"},
        "service_data": {"0000feaa-0000-1000-8000-00805f9b34fb": "10"},
        "service_uuids": [],
    }


def test_a_record_needs_only_t_address_and_rssi() -> None:
    assert json.loads(json.dumps(advertisement_to_json(Advertisement(0.0, "A", -1)))) is not None
    assert advertisement_from_json({"t": 0, "address": "A", "rssi": -1}) == Advertisement(0.0, "A", -1)


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[]",
        '{"address": "A", "rssi": -60}',
        '{"t": "x", "address": "A", "rssi": -60}',
        '{"t": 1, "address": "A", "rssi": -60.5}',
        '{"t": 1, "address": "A", "rssi": -60, "manufacturer_data": {"76": "zz"}}',
        '{"t": 1, "address": "A", "rssi": -60, "manufacturer_data": {"apple": "00"}}',
        '{"t": 1, "address": "A", "rssi": -60, "service_uuids": "feaa"}',
        '{"t": 1, "address": "A", "rssi": -60, "tx_power": true}',
    ],
)
def test_bad_record_lines_raise_parse_error_with_the_line_number(line: str) -> None:
    with pytest.raises(ParseError, match="line 7"):
        loads(line, 7)


async def test_replay_yields_the_recording_and_counts_malformed_adverts(tmp_path: Path) -> None:
    scene = demo_scene(seed=4, duration_s=40.0)
    recording = tmp_path / "scan.jsonl"
    original = list(scene.advertisements())
    recording.write_text("".join(dumps(advertisement) + "\n" for advertisement in original))
    async with open_scanner(f"replay://{recording}") as scanner:
        replayed = [advertisement async for advertisement in scanner]
    assert [dumps(advertisement) for advertisement in replayed] == [dumps(a) for a in original]
    async with open_scanner(f"replay://{recording}") as scanner:
        sightings = [sighting async for sighting in scanner.sightings()]
    stats = scanner.stats
    assert stats.malformed > 0
    assert stats.other > 0
    assert stats.adverts == len(original) == stats.beacons + stats.malformed + stats.other
    assert len(sightings) == stats.beacons


async def test_realtime_replay_counts_from_the_first_recorded_time(tmp_path: Path) -> None:
    recording = tmp_path / "scan.jsonl"
    original = [Advertisement(1_000.0 + step / 100, f"A{step}", -50) for step in range(3)]
    recording.write_text("".join(dumps(advertisement) + "\n" for advertisement in original))
    async with asyncio.timeout(30), open_scanner(f"replay://{recording}?realtime=1") as scanner:
        assert [advertisement async for advertisement in scanner] == original


async def test_replay_reports_a_corrupt_line(tmp_path: Path) -> None:
    recording = tmp_path / "scan.jsonl"
    good = dumps(Advertisement(1.0, "A", -50))
    recording.write_text(f"{good}\n{good}\n{{broken\n")
    scanner = open_scanner(f"replay://{recording}")
    with pytest.raises(ParseError, match="line 3"):
        _ = [advertisement async for advertisement in scanner]


async def test_replay_of_a_missing_file_is_device_not_found(tmp_path: Path) -> None:
    scanner = open_scanner(f"replay://{tmp_path / 'missing.jsonl'}")
    with pytest.raises(DeviceNotFound, match=r"missing\.jsonl"):
        await anext(aiter(scanner))


async def test_virtual_scenes_are_deterministic_per_seed() -> None:
    async def collect(url: str) -> list[Advertisement]:
        async with open_scanner(url) as scanner:
            return [advertisement async for advertisement in scanner]

    first = await collect("virtual://demo?seed=3&duration=30")
    assert first == await collect("virtual://demo?seed=3&duration=30")
    assert first != await collect("virtual://demo?seed=4&duration=30")
    assert all(a.t <= b.t for a, b in itertools.pairwise(first))
    assert max(advertisement.t for advertisement in first) <= 30.0


def test_scene_rssi_follows_the_path_loss_model() -> None:
    from posbridge.hardware.ble.scene import Path as ScenePath
    from posbridge.hardware.ble.scene import Radio, SimBeacon
    from posbridge.protocols.beacons import IBeacon

    def mean_rssi(distance: float) -> float:
        beacon = SimBeacon(
            IBeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 1, -59),
            ScenePath.route(0.0, [(distance, 0.0, 200.0)]),
            Radio(interval_s=0.1, loss=0.0, shadowing_db=3.0, fade_fraction=0.0),
        )
        rssi = [advertisement.rssi for advertisement in Scene([beacon], seed=1).advertisements()]
        return sum(rssi) / len(rssi)

    assert mean_rssi(1.0) == pytest.approx(-59, abs=0.5)
    assert mean_rssi(4.0) == pytest.approx(-59 - 12.04, abs=0.5)


@pytest.mark.parametrize(
    "url",
    [
        "hci0",
        "serial://x",
        "replay://",
        "replay://a.jsonl?realtime=maybe",
        "replay://a.jsonl?speed=2",
        "virtual://nowhere",
        "virtual://demo?seed=-1",
        "bleak://hci0?mode=sniff",
        "bleak://hci0?rssi=loud",
        "bleak://hci0?watchdog=0",
    ],
)
def test_bad_scanner_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        open_scanner(url)


def test_bleak_url_options_reach_the_scanner() -> None:
    from posbridge.hardware.ble.bluez import BleakBeaconScanner

    scanner = open_scanner("bleak://hci1?mode=passive&rssi=-80&watchdog=12")
    assert isinstance(scanner, BleakBeaconScanner)
    assert (scanner.adapter, scanner.mode, scanner.rssi_floor, scanner.watchdog_s) == (
        "hci1",
        "passive",
        -80,
        12.0,
    )

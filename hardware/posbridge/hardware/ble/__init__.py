"""BLE advertisement sources opened by URL (DESIGN.md, "Hardware channels"; issue 6).

>>> async with open_scanner("bleak://hci0") as scanner:          # doctest: +SKIP
...     async for sighting in scanner.sightings():   # Sighting(advertisement, beacon frames)
...         ...

Schemes: ``bleak://`` (BlueZ through bleak), ``replay://`` (a JSONL recording),
``virtual://`` (a simulated shop, :mod:`.scene`). :mod:`.jsonl` is the recording format that
``posbridge ble record`` writes and ``replay://`` reads.
"""

from posbridge.hardware.ble.jsonl import (
    advertisement_from_json,
    advertisement_to_json,
    read_records,
    write_record,
)
from posbridge.hardware.ble.scanner import BeaconScanner, ScanStats, open_scanner, register_scanner
from posbridge.hardware.ble.scene import Path, Radio, Scene, SimBeacon, Waypoint

__all__ = [
    "BeaconScanner",
    "Path",
    "Radio",
    "ScanStats",
    "Scene",
    "SimBeacon",
    "Waypoint",
    "advertisement_from_json",
    "advertisement_to_json",
    "open_scanner",
    "read_records",
    "register_scanner",
    "write_record",
]

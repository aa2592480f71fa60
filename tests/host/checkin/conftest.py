"""Scenes for the check-in tests: the same scene model as ``virtual://`` and the benchmark."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from posbridge.hardware.ble.scene import Path, Radio, Scene, SimBeacon
from posbridge.host.checkin import CheckInTracker
from posbridge.protocols.beacons import IBeacon, beacon_sightings
from posbridge.protocols.types import Advertisement, PresenceEvent

UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
DOOR = (8.0, 0.0)


def ibeacon(minor: int) -> IBeacon:
    return IBeacon(UUID, 7, minor, -59)


def visit_path(start: float = 2.0, spot: tuple[float, float] = (0.5, 0.0), stay: float = 30.0) -> Path:
    """Walk in from the door, stand at ``spot`` for ``stay`` seconds, walk out and away."""
    return Path.route(start, [(*DOOR, 0.0), (*spot, stay), (*DOOR, 0.0), (40.0, 0.0, 0.0)])


def arrival_and_departure(path: Path) -> tuple[float, float]:
    return path.waypoints[1].t, path.waypoints[2].t


def feed(
    tracker: CheckInTracker, adverts: Iterable[Advertisement], flush: bool = True
) -> list[PresenceEvent]:
    """What the scanner and ``CheckInTracker.track`` do: parse, skip malformed and non-beacons, observe."""
    events: list[PresenceEvent] = []
    for sighting in beacon_sightings(adverts):
        events.extend(tracker.observe(sighting))
    if flush:
        events.extend(tracker.flush())
    return events


def scene(beacons: Sequence[SimBeacon], seed: int = 5, **options: float) -> list[Advertisement]:
    return list(Scene(beacons, seed=seed, **options).advertisements())


def radio(**options: float) -> Radio:
    return Radio(**options)  # type: ignore[arg-type]

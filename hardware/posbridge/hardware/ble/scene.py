"""Simulated shops: beacons carried along paths, seen through a noisy radio channel.

The model behind ``virtual://``, the check-in tests and ``benchmarks/checkin.py``. The counter
(the scanner) stands at the origin; positions are metres. Received power follows the log-distance
path-loss model ``RSSI = P(1 m) - 10 n log10(d) + X`` (Rappaport, *Wireless Communications*, §4.9)
with ``X`` log-normal shadowing: a zero-mean Gaussian in dB of standard deviation ``shadowing_db``,
drawn per packet, optionally with a slowly varying part (``slow_shadowing_db``, an AR(1) process
with correlation time ``slow_shadowing_s``). Deep fades are a two-state (Gilbert-Elliott) process:
for ``fade_fraction`` of the time the signal sits ``fade_depth_db`` lower, in episodes lasting
``fade_mean_s`` on average. Packets are lost with probability ``loss`` and below the receiver
sensitivity. Beacons advertise every ``interval_s`` plus the 0-10 ms random ``advDelay`` of the
Bluetooth Core Specification (Vol 6, Part B, §4.4.2.2.1), may advertise a 1 m power that is off by
``power_error_db``, and phones rotate their random address every ``rotate_address_s``.

Every beacon has its own seeded random stream, so a scene is deterministic for a seed.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from posbridge.protocols.beacons import (
    APPLE_COMPANY_ID,
    AltBeacon,
    EddystoneEid,
    EddystoneUid,
    EidRegistration,
    IBeacon,
    IdentityFrame,
    build_advertisement,
)
from posbridge.protocols.beacons.frames import EDDYSTONE_0M_TO_1M_DB
from posbridge.protocols.types import Advertisement, BeaconId


@dataclass(frozen=True)
class Waypoint:
    """Where a beacon is at time ``t`` (seconds): ``x``, ``y`` in metres from the counter."""

    t: float
    x: float
    y: float


@dataclass(frozen=True)
class Path:
    """A piecewise-linear trajectory; the beacon is present from the first waypoint to the last."""

    waypoints: tuple[Waypoint, ...]

    def __post_init__(self) -> None:
        if not self.waypoints:
            raise ValueError("a path needs at least one waypoint")
        times = [point.t for point in self.waypoints]
        if times != sorted(times):
            raise ValueError("waypoints must be in time order")
        object.__setattr__(self, "_times", times)

    @classmethod
    def route(cls, start_t: float, stops: Sequence[tuple[float, float, float]], speed: float = 1.2) -> Path:
        """Walk at ``speed`` m/s through ``stops`` = ``(x, y, dwell seconds)``, starting at ``start_t``."""
        points: list[Waypoint] = []
        t = start_t
        for x, y, dwell in stops:
            if points:
                last = points[-1]
                t += math.hypot(x - last.x, y - last.y) / speed
            points.append(Waypoint(t, x, y))
            if dwell > 0:
                t += dwell
                points.append(Waypoint(t, x, y))
        return cls(tuple(points))

    @property
    def start(self) -> float:
        """First time the beacon is present."""
        return self.waypoints[0].t

    @property
    def end(self) -> float:
        """Last time the beacon is present."""
        return self.waypoints[-1].t

    def position(self, t: float) -> tuple[float, float]:
        """Position at ``t`` (clamped to the ends)."""
        times: list[float] = self._times  # type: ignore[attr-defined]
        index = bisect.bisect_right(times, t)
        if index <= 0:
            return self.waypoints[0].x, self.waypoints[0].y
        if index >= len(times):
            return self.waypoints[-1].x, self.waypoints[-1].y
        before, after = self.waypoints[index - 1], self.waypoints[index]
        span = after.t - before.t
        share = 0.0 if span <= 0 else (t - before.t) / span
        return before.x + share * (after.x - before.x), before.y + share * (after.y - before.y)

    def distance(self, t: float) -> float:
        """Distance from the counter at ``t``, metres."""
        x, y = self.position(t)
        return math.hypot(x, y)


@dataclass(frozen=True)
class Radio:
    """How one beacon advertises and how its packets reach the scanner (see the module docstring)."""

    interval_s: float = 0.3
    loss: float = 0.2
    shadowing_db: float = 4.0
    slow_shadowing_db: float = 0.0
    slow_shadowing_s: float = 5.0
    fade_fraction: float = 0.03
    fade_mean_s: float = 0.4
    fade_depth_db: tuple[float, float] = (12.0, 25.0)
    true_power_1m: float = -59.0
    power_error_db: float = 0.0

    @property
    def advertised_power_1m(self) -> int:
        """The 1 m power the beacon claims (true power plus its calibration error), dBm."""
        return round(self.true_power_1m + self.power_error_db)


@dataclass(frozen=True)
class SimBeacon:
    """A beacon in a scene: what it advertises (``frame``, or rotating EIDs of ``eid``) and where it goes."""

    frame: IdentityFrame | None
    path: Path
    radio: Radio = field(default_factory=Radio)
    eid: EidRegistration | None = None
    rotate_address_s: float | None = None
    name: str | None = None

    @property
    def beacon_id(self) -> BeaconId:
        """The id a tracker should report for this beacon."""
        if self.eid is not None:
            return self.eid.beacon_id
        assert self.frame is not None
        return self.frame.beacon_id

    def frame_at(self, t: float) -> IdentityFrame:
        """The frame sent at ``t``, carrying the advertised (possibly miscalibrated) power."""
        power = self.radio.advertised_power_1m
        if self.eid is not None:
            return EddystoneEid(power + EDDYSTONE_0M_TO_1M_DB, self.eid.eid_at(t))
        frame = self.frame
        if isinstance(frame, IBeacon):
            return replace(frame, measured_power=power)
        if isinstance(frame, AltBeacon):
            return replace(frame, reference_rssi=power)
        if isinstance(frame, EddystoneUid | EddystoneEid):
            return replace(frame, tx_power_0m=power + EDDYSTONE_0M_TO_1M_DB)
        raise ValueError("a simulated beacon needs a frame or an EID registration")


def _random_address(rng: random.Random) -> str:
    octets = [rng.randrange(256) for _ in range(6)]
    octets[0] |= 0xC0  # random static address (Core Spec Vol 6, Part B, §1.3.2.1)
    return ":".join(f"{octet:02X}" for octet in octets)


@dataclass
class Scene:
    """Beacons moving through a shop, plus optional non-beacon and malformed traffic.

    :meth:`advertisements` yields every received advertisement in time order; ``seed`` makes it
    repeatable. ``path_loss_exponent`` is ``n``; ``sensitivity_dbm`` the weakest packet received.
    """

    beacons: Sequence[SimBeacon]
    seed: int = 0
    path_loss_exponent: float = 2.0
    sensitivity_dbm: float = -100.0
    other_per_s: float = 0.0
    malformed_per_s: float = 0.0
    duration_s: float | None = None

    @property
    def end(self) -> float:
        """The scene's last moment."""
        if self.duration_s is not None:
            return self.duration_s
        return max((beacon.path.end for beacon in self.beacons), default=0.0)

    def _beacon_adverts(self, index: int, beacon: SimBeacon) -> Iterator[Advertisement]:
        rng = random.Random(self.seed * 1_000_003 + index)
        radio = beacon.radio
        end = min(beacon.path.end, self.end)
        t = beacon.path.start + rng.uniform(0, radio.interval_s)
        address = _random_address(rng)
        next_rotation = t + beacon.rotate_address_s if beacon.rotate_address_s else math.inf
        fade_until, fade_depth = -math.inf, 0.0
        fade_rate = radio.fade_fraction / max(radio.fade_mean_s * (1 - radio.fade_fraction), 1e-9)
        slow = rng.gauss(0, radio.slow_shadowing_db) if radio.slow_shadowing_db > 0 else 0.0
        last_t = t
        while t <= end:
            if t >= next_rotation:
                address = _random_address(rng)
                next_rotation = t + (beacon.rotate_address_s or math.inf)
            if t >= fade_until and rng.random() < 1 - math.exp(-fade_rate * (t - last_t)):
                fade_until = t + rng.expovariate(1 / radio.fade_mean_s)
                fade_depth = rng.uniform(*radio.fade_depth_db)
            if radio.slow_shadowing_db > 0:
                rho = math.exp(-(t - last_t) / radio.slow_shadowing_s)
                slow = rho * slow + math.sqrt(1 - rho * rho) * rng.gauss(0, radio.slow_shadowing_db)
            last_t = t
            distance = max(beacon.path.distance(t), 0.1)
            rssi = (
                radio.true_power_1m
                - 10 * self.path_loss_exponent * math.log10(distance)
                + rng.gauss(0, radio.shadowing_db)
                + slow
            )
            if t < fade_until:
                rssi -= fade_depth
            if rng.random() >= radio.loss and rssi >= self.sensitivity_dbm:
                yield build_advertisement(
                    [beacon.frame_at(t)], t=t, address=address, rssi=round(rssi), name=beacon.name
                )
            t += radio.interval_s + rng.uniform(0, 0.01)

    def _noise_adverts(self, rate: float, salt: int, malformed: bool) -> Iterator[Advertisement]:
        rng = random.Random(self.seed * 1_000_003 + salt)
        t = rng.expovariate(rate)
        while t <= self.end:
            address = _random_address(rng)
            rssi = rng.randint(-95, -50)
            if malformed:
                payloads: list[dict[int, bytes]] = [
                    {APPLE_COMPANY_ID: bytes.fromhex("0215") + rng.randbytes(rng.randrange(0, 21))},
                    {0x0118: b"\xbe\xac" + rng.randbytes(rng.randrange(0, 21))},
                ]
                if rng.random() < 0.3:
                    service = {"0000feaa-0000-1000-8000-00805f9b34fb": bytes((0x00,)) + rng.randbytes(5)}
                    yield Advertisement(t, address, rssi, service_data=service)
                else:
                    yield Advertisement(t, address, rssi, manufacturer_data=rng.choice(payloads))
            else:
                continuity = bytes((rng.choice((0x10, 0x12, 0x09, 0x07)), 5)) + rng.randbytes(5)
                yield Advertisement(t, address, rssi, manufacturer_data={APPLE_COMPANY_ID: continuity})
            t += rng.expovariate(rate)

    def advertisements(self) -> Iterator[Advertisement]:
        """Every received advertisement of the scene, in time order."""
        streams = [self._beacon_adverts(index, beacon) for index, beacon in enumerate(self.beacons)]
        if self.other_per_s > 0:
            streams.append(self._noise_adverts(self.other_per_s, 900_001, malformed=False))
        if self.malformed_per_s > 0:
            streams.append(self._noise_adverts(self.malformed_per_s, 900_002, malformed=True))
        return heapq.merge(*streams, key=lambda advertisement: advertisement.t)


DEMO_UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
DOOR = (8.0, 0.0)


def demo_scene(seed: int = 0, duration_s: float = 90.0) -> Scene:
    """A customer walks to the counter, stays 30 s and leaves; a passer-by outside; staff on the floor."""
    customer = SimBeacon(
        IBeacon(DEMO_UUID, 1, 1, -59),
        Path.route(5.0, [(*DOOR, 0.0), (0.5, 0.0, 30.0), (*DOOR, 0.0), (20.0, 0.0, 0.0)]),
        Radio(interval_s=0.2, loss=0.2),
        rotate_address_s=40.0,
        name="customer phone",
    )
    passer_by = SimBeacon(
        IBeacon(DEMO_UUID, 1, 2, -59),
        Path.route(0.0, [(-25.0, 9.0, 0.0), (25.0, 9.0, 0.0)], speed=1.3),
        Radio(interval_s=0.5, loss=0.3),
    )
    staff = SimBeacon(
        EddystoneUid(-18, "00112233445566778899", "000000000001"),
        Path.route(
            0.0, [(4.0, 3.0, 20.0), (-5.0, 4.0, 25.0), (3.0, -5.0, 20.0), (4.0, 3.0, 30.0)], speed=0.8
        ),
        Radio(interval_s=1.0, loss=0.1, power_error_db=3.0),
    )
    return Scene(
        [customer, passer_by, staff], seed=seed, other_per_s=2.0, malformed_per_s=0.2, duration_s=duration_s
    )


SCENES = {"demo": demo_scene}

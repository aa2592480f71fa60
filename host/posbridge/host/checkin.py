"""Who is at the counter: beacon proximity check-in (issue 6, "Build" 4).

Per beacon *identity* (never per address: phones rotate theirs), :class:`CheckInTracker` keeps a
time-based RSSI estimate, turns it into a distance calibrated by the beacon's advertised 1 m
power (log-distance model, ``d = 10 ** ((P1m - RSSI) / (10 n))``), and moves the beacon between
zones -- at the ``COUNTER``, in the ``SHOP``, ``GONE`` -- with hysteresis and a dwell time.

The estimate is an exponentially time-weighted mean of RSSI in dB: each sample's weight decays as
``exp(-age / time_constant_s)``, so lost packets and irregular advertising intervals change only
how much evidence there is, not what it means. Deep fades are clipped (a sample counts as at most
``fade_clip_db`` below the current estimate). Alongside the mean the tracker keeps its standard
error, ``sigma_db * sqrt(sum w^2) / sum w``, and decides on confidence bounds: a beacon checks in
when the *lower* bound of its RSSI is above the level of ``counter_enter_m`` for ``dwell_s``, and
leaves the counter when the *upper* bound falls below the level of ``counter_exit_m`` for
``dwell_s`` (or when unseen for ``gone_timeout_s``). A dense beacon decides within a second or
two; a sparse, noisy one waits for enough packets instead of guessing.

Privacy: only registered beacons (or every beacon with ``any_beacon=True``) are tracked; an
unregistered advertisement leaves no trace. State is in memory, forgotten on timeout, and no RSSI
history is written anywhere; only check-in and check-out transitions leave the tracker.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from posbridge.protocols.beacons import EddystoneEid, EidResolver, Sighting
from posbridge.protocols.types import BeaconId, CheckIn, CheckOut, PresenceEvent, Zone

if TYPE_CHECKING:
    from posbridge.hardware.ble import BeaconScanner
    from posbridge.host.customers import CustomerRegistry

_EXPIRY_CHECK_S = 0.5


@dataclass(frozen=True)
class CheckInSettings:
    """Tuning of :class:`CheckInTracker` (distances in metres, times in seconds, levels in dB)."""

    counter_enter_m: float = 1.5
    counter_exit_m: float = 2.5
    dwell_s: float = 0.5
    gone_timeout_s: float = 12.0
    time_constant_s: float = 2.5
    path_loss_exponent: float = 2.0
    confidence_z: float = 1.0
    sigma_db: float = 5.0
    fade_clip_db: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.counter_enter_m < self.counter_exit_m:
            raise ValueError("need 0 < counter_enter_m < counter_exit_m")
        if min(self.gone_timeout_s, self.time_constant_s, self.path_loss_exponent, self.sigma_db) <= 0:
            raise ValueError("timeouts, time constant, path-loss exponent and sigma must be positive")


class _Track:
    """In-memory state of one registered beacon (no history: three running sums)."""

    __slots__ = (
        "beacon",
        "candidate",
        "candidate_since",
        "customer",
        "last_t",
        "power_1m",
        "q",
        "s0",
        "s1",
        "zone",
    )

    def __init__(self, beacon: BeaconId, customer: str | None, t: float) -> None:
        self.beacon = beacon
        self.customer = customer
        self.zone = Zone.SHOP
        self.candidate: Zone | None = None
        self.candidate_since = t
        self.last_t = t
        self.power_1m = -59
        self.s0 = 0.0
        self.s1 = 0.0
        self.q = 0.0


class CheckInTracker:
    """Turns beacon sightings into :class:`CheckIn` / :class:`CheckOut` events.

    ``registry`` decides which beacons count and who carries them (its ``by_beacon`` and
    ``eid_registrations``); ``any_beacon=True`` tracks every beacon, with ``customer`` None for
    unregistered ones. Feed :meth:`observe` in time order and call :meth:`expire` with the clock
    when nothing arrives; or let :meth:`track` drive both from a scanner.
    """

    def __init__(
        self,
        registry: CustomerRegistry | None = None,
        *,
        any_beacon: bool = False,
        settings: CheckInSettings | None = None,
    ) -> None:
        self.registry = registry
        self.any_beacon = any_beacon
        self.settings = settings or CheckInSettings()
        self._resolver = EidResolver(registry.eid_registrations() if registry is not None else ())
        self._tracks: dict[BeaconId, _Track] = {}
        self._next_expiry = -math.inf
        s = self.settings
        self._enter_db = 10 * s.path_loss_exponent * math.log10(s.counter_enter_m)
        self._exit_db = 10 * s.path_loss_exponent * math.log10(s.counter_exit_m)

    def zones(self) -> dict[BeaconId, Zone]:
        """The current zone of every beacon being tracked."""
        return {beacon: track.zone for beacon, track in self._tracks.items()}

    def distance_m(self, beacon: BeaconId) -> float | None:
        """The current distance estimate of a tracked beacon, metres."""
        track = self._tracks.get(beacon)
        return None if track is None or track.s0 == 0 else self._distance(track)

    def _distance(self, track: _Track) -> float:
        exponent = (track.power_1m - track.s1 / track.s0) / (10 * self.settings.path_loss_exponent)
        return round(10**exponent, 2)

    def observe(self, sighting: Sighting) -> list[PresenceEvent]:
        """Update with one sighting; returns the transitions it causes (usually none)."""
        frame = sighting.identity
        if frame is None:
            return []
        t = sighting.advertisement.t
        events = self.expire(t) if t >= self._next_expiry else []
        beacon: BeaconId | None = None
        if isinstance(frame, EddystoneEid):
            beacon = self._resolver.resolve(frame.eid, t)
        if beacon is None:
            beacon = frame.beacon_id
        track = self._tracks.get(beacon)
        if track is None:
            customer = self.registry.by_beacon(beacon) if self.registry is not None else None
            if customer is None and not self.any_beacon:
                return events
            track = self._tracks[beacon] = _Track(beacon, customer.id if customer else None, t)
        event = self._update(track, t, sighting.advertisement.rssi, frame.power_1m)
        if event is not None:
            events.append(event)
        return events

    def _update(self, track: _Track, t: float, rssi: float, power_1m: int) -> PresenceEvent | None:
        s = self.settings
        track.power_1m = power_1m
        if track.s0 > 0:
            decay = math.exp(-max(t - track.last_t, 0.0) / s.time_constant_s)
            floor = track.s1 / track.s0 - s.fade_clip_db
            if rssi < floor:
                rssi = floor
            track.s0 = decay * track.s0 + 1
            track.s1 = decay * track.s1 + rssi
            track.q = decay * decay * track.q + 1
        else:
            track.s0, track.s1, track.q = 1.0, float(rssi), 1.0
        track.last_t = t
        mean = track.s1 / track.s0
        margin = s.confidence_z * s.sigma_db * math.sqrt(track.q) / track.s0
        if track.zone is Zone.COUNTER:
            target = Zone.SHOP if mean + margin < power_1m - self._exit_db else Zone.COUNTER
        else:
            target = Zone.COUNTER if mean - margin >= power_1m - self._enter_db else Zone.SHOP
        if target is track.zone:
            track.candidate = None
            return None
        if track.candidate is not target:
            track.candidate, track.candidate_since = target, t
            return None
        if t - track.candidate_since < s.dwell_s:
            return None
        track.zone, track.candidate = target, None
        kind = CheckIn if target is Zone.COUNTER else CheckOut
        return kind(t, track.beacon, track.customer, target, self._distance(track))

    def expire(self, now: float) -> list[PresenceEvent]:
        """Forget beacons unseen for ``gone_timeout_s``; check out those that were at the counter.

        A check-out by timeout is stamped with the moment the timeout ran out.
        """
        self._next_expiry = now + _EXPIRY_CHECK_S
        timeout = self.settings.gone_timeout_s
        stale = [track for track in self._tracks.values() if now - track.last_t >= timeout]
        return self._forget(stale)

    def flush(self) -> list[PresenceEvent]:
        """Time out every beacon (the source ended): check-outs for those at the counter."""
        return self._forget(list(self._tracks.values()))

    def _forget(self, tracks: list[_Track]) -> list[PresenceEvent]:
        events: list[PresenceEvent] = []
        for track in sorted(tracks, key=lambda item: item.last_t):
            del self._tracks[track.beacon]
            if track.zone is Zone.COUNTER:
                t = track.last_t + self.settings.gone_timeout_s
                events.append(CheckOut(t, track.beacon, track.customer, Zone.GONE, None))
        return events

    async def track(self, scanner: BeaconScanner, *, tick_s: float = 1.0) -> AsyncIterator[PresenceEvent]:
        """Check-in events from a scanner until it ends, then check-outs for everyone left.

        With a live scanner, timeouts also run on the wall clock every ``tick_s`` seconds.
        """
        iterator = scanner.sightings().__aiter__()
        pending: asyncio.Future[Sighting] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(iterator))
                if scanner.live:
                    done, _ = await asyncio.wait({pending}, timeout=tick_s)
                    if not done:
                        for event in self.expire(time.time()):
                            yield event
                        continue
                try:
                    sighting = await pending
                except StopAsyncIteration:
                    pending = None
                    break
                pending = None
                for event in self.observe(sighting):
                    yield event
            for event in self.flush():
                yield event
        finally:
            if pending is not None:
                pending.cancel()
            await iterator.aclose()  # type: ignore[attr-defined]

"""Who is at the counter: beacon proximity check-in (issue 6, "Build" 4).

Per beacon *identity* (never per address: phones rotate theirs), :class:`CheckInTracker` weighs
each received packet as evidence about where the beacon is, calibrated by the beacon's advertised
1 m power through the log-distance model ``RSSI = P1m - 10 n log10(d)``, and moves the beacon
between zones -- at the ``COUNTER``, in the ``SHOP``, ``GONE`` -- with hysteresis, a dwell time
and a timeout.

The decision is Page's CUSUM test (E. S. Page, "Continuous inspection schemes", Biometrika 1954),
made robust and time-based. A packet at relative level ``r = RSSI - P1m`` adds evidence
``clamp((r - level) / evidence_scale_db, -clip_low, clip_high) * min(gap, max_gap)``, where
``gap`` is the time since the beacon's previous packet (at most ``check_in_max_gap_s`` counts
for checking in, ``max_gap_s`` for leaving: one packet of a slow advertiser must not stand for
long, or a far person's lucky packet does) and ``level`` is the RSSI expected at
``counter_enter_m`` (for checking in) or, with the sign reversed, at ``counter_exit_m`` (for
leaving): the two levels are the hysteresis. Evidence is thus counted per second observed, not
per packet, so a fast advertiser is not trusted more than a slow one for the same span of time,
and a burst of faded packets weighs no more than the fade lasted. The sum never drops below zero
and decays with time constant ``memory_s``. Clipping bounds what one packet can do (a deep fade,
a lucky reflection). A beacon checks in when its evidence reaches ``check_in_evidence`` from at
least ``min_packets`` packets over at least ``dwell_s``; it leaves the counter when the evidence
for "farther than ``counter_exit_m``" reaches ``check_out_evidence``, or when it is unseen for
``gone_timeout_s``. The distance reported with an event comes from an exponentially time-weighted
mean of RSSI (time constant ``time_constant_s``, deep fades clipped at ``fade_clip_db``).

A second way in uses approach dynamics (:meth:`CheckInTracker._rose`): a beacon whose recent
packets stand ``rise_db`` above its own smoothed level ``rise_delay_s`` earlier, and clearly above
what a beacon ``shop_m`` away could show, checks in too. The 1 m power's calibration error cancels
in that difference, which is what lets a slow, noisy advertiser check in within seconds of walking
up. (``benchmarks/checkin_misses.py`` shows why levels alone cannot: with each beacon's noise
level known, the best level-only rule that keeps every far person out is on time in ~96 % of the
benchmark's visits.)

Privacy: only registered beacons (or every beacon with ``any_beacon=True``) are tracked; an
unregistered advertisement leaves no trace. State is a few running sums and the last few seconds
of levels in memory, forgotten on timeout; no RSSI history is written anywhere; only check-in and
check-out transitions leave the tracker.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
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

    counter_enter_m: float = 1.6
    counter_exit_m: float = 3.0
    evidence_scale_db: float = 3.0
    clip_low: float = 3.0
    clip_high: float = 3.0
    check_in_evidence: float = 4.5
    check_out_evidence: float = 10.0
    memory_s: float = 10.0
    max_gap_s: float = 1.5
    check_in_max_gap_s: float = 0.8
    dwell_s: float = 0.5
    min_packets: int = 2
    gone_timeout_s: float = 12.0
    time_constant_s: float = 2.5
    path_loss_exponent: float = 2.0
    fade_clip_db: float = 10.0
    shop_m: float = 3.5
    power_tolerance_db: float = 3.0
    rise_db: float = 21.0
    rise_score: float = 2.5
    rise_noise_db: float = 4.5
    rise_window_s: float = 5.0
    rise_delay_s: float = 6.0
    rise_min_packets: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.counter_enter_m < self.counter_exit_m:
            raise ValueError("need 0 < counter_enter_m < counter_exit_m")
        positive = (self.evidence_scale_db, self.clip_low, self.clip_high, self.check_in_evidence,
                    self.check_out_evidence, self.memory_s, self.gone_timeout_s, self.time_constant_s,
                    self.path_loss_exponent)  # fmt: skip
        counts = (self.min_packets, self.rise_min_packets)
        if min(positive) <= 0 or self.rise_db <= 0 or min(counts) < 1 or self.shop_m <= self.counter_enter_m:
            raise ValueError(
                "scales, clips, evidence thresholds, packet counts, times and the path-loss exponent"
                " must be positive"
            )


CHECK_IN_MODES: dict[str, CheckInSettings] = {
    "cautious": CheckInSettings(),
    "quick": CheckInSettings(rise_min_packets=2, rise_db=19.0, check_in_evidence=4.0),
}
"""The merchant's choice between never checking in a bystander and checking visitors in quickly.

On the scenes of ``benchmarks/checkin.py`` (seeds 1-6, 500 visits and 300 people who stay 3.5 m
or more away for 5 minutes each): ``cautious``, the default, checks 88-92 % of visitors in within
5 s (median 1.5 s) and none of the 1,800 far people; ``quick`` 93-97 % within 5 s and 10 of the
1,800 far people. Slow, lossy advertisers on noisy channels are what the two trade between: no
setting does both (README, "Benchmarks").
"""


class _Track:
    """In-memory state of one registered beacon: running sums, no history."""

    __slots__ = (
        "beacon",
        "customer",
        "evidence",
        "evidence_since",
        "history",
        "last_t",
        "packets",
        "power_1m",
        "recent",
        "s0",
        "s1",
        "zone",
    )

    def __init__(self, beacon: BeaconId, customer: str | None, t: float) -> None:
        self.beacon = beacon
        self.customer = customer
        self.zone = Zone.SHOP
        self.evidence = 0.0
        self.evidence_since = t
        self.packets = 0
        self.last_t = t
        self.power_1m = -59
        self.s0 = 0.0
        self.s1 = 0.0
        self.recent: deque[tuple[float, float]] = deque()
        self.history: deque[tuple[float, float]] = deque()


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
        self._enter_level = -10 * s.path_loss_exponent * math.log10(s.counter_enter_m)
        self._exit_level = -10 * s.path_loss_exponent * math.log10(s.counter_exit_m)
        self._shop_level = -10 * s.path_loss_exponent * math.log10(s.shop_m) + s.power_tolerance_db

    def zones(self) -> dict[BeaconId, Zone]:
        """The current zone of every beacon being tracked."""
        return {beacon: track.zone for beacon, track in self._tracks.items()}

    def distance_m(self, beacon: BeaconId) -> float | None:
        """The current distance estimate of a tracked beacon, metres."""
        track = self._tracks.get(beacon)
        return None if track is None or track.s0 == 0 else self._distance(track)

    def _distance(self, track: _Track) -> float:
        return self._distance_at(track.s1 / track.s0 - track.power_1m)

    def _distance_at(self, relative: float) -> float:
        return round(10 ** (-relative / (10 * self.settings.path_loss_exponent)), 2)

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
        elapsed = max(t - track.last_t, 0.0)
        track.last_t = t
        if track.s0 > 0:
            decay = math.exp(-elapsed / s.time_constant_s)
            mean = track.s1 / track.s0
            clipped = max(rssi, mean - s.fade_clip_db)
            track.s0 = decay * track.s0 + 1
            track.s1 = decay * track.s1 + clipped
        else:
            track.s0, track.s1 = 1.0, float(rssi)
        relative = rssi - power_1m
        if track.zone is Zone.COUNTER:
            step = (self._exit_level - relative) / s.evidence_scale_db
            threshold, max_gap = s.check_out_evidence, s.max_gap_s
        else:
            step = (relative - self._enter_level) / s.evidence_scale_db
            threshold, max_gap = s.check_in_evidence, s.check_in_max_gap_s
        step = min(max(step, -s.clip_low), s.clip_high) * min(elapsed, max_gap)
        previous = track.evidence * math.exp(-elapsed / s.memory_s)
        track.evidence = max(previous + step, 0.0)
        if previous == 0.0:
            track.evidence_since, track.packets = t, 0
        track.packets += 1
        risen_to = None if track.zone is Zone.COUNTER else self._rose(track, t, relative)
        if risen_to is None and (
            track.evidence < threshold
            or t - track.evidence_since < s.dwell_s
            or track.packets < s.min_packets
        ):
            return None
        track.evidence, track.evidence_since, track.packets = 0.0, t, 0
        if track.zone is Zone.COUNTER:
            track.zone = Zone.SHOP
            return CheckOut(t, track.beacon, track.customer, Zone.SHOP, self._distance(track))
        track.zone = Zone.COUNTER
        distance = self._distance(track) if risen_to is None else self._distance_at(risen_to)
        return CheckIn(t, track.beacon, track.customer, Zone.COUNTER, distance)

    def _rose(self, track: _Track, t: float, relative: float) -> float | None:
        """Approach dynamics: has the beacon just risen ``rise_db`` above its own earlier level?

        Compares the mean relative level of the packets of the last ``rise_window_s`` (any run of
        the newest ``rise_min_packets`` or more) with the beacon's own smoothed level ``rise_delay_s``
        earlier (sampled once a second); the calibration error of the 1 m power cancels in the
        difference. The run must also stand ``rise_score`` noise-weighted sigmas (``rise_noise_db``
        per packet) above the level of a beacon ``shop_m`` away whose 1 m power is
        ``power_tolerance_db`` too low. Someone walking up to the counter from the door rises
        ~20 dB; someone crossing the shop floor 3.5 m or more away at most ~9 dB. Returns the
        run's mean relative level (dB) when it has risen, else None.
        """
        s = self.settings
        if s.rise_db == math.inf:
            return None
        own = track.s1 / track.s0 - track.power_1m
        history = track.history
        if not history or t - history[-1][0] >= 1.0:
            history.append((t, own))
        while len(history) > 1 and history[1][0] <= t - s.rise_delay_s:
            history.popleft()
        recent = track.recent
        recent.append((t, relative))
        while recent[0][0] < t - s.rise_window_s:
            recent.popleft()
        if history[0][0] > t - s.rise_delay_s + 1.0:
            return None
        before = history[0][1]
        needed = s.rise_score * s.rise_noise_db
        total = 0.0
        for n, (_, level) in enumerate(reversed(recent), start=1):
            total += level
            if (
                n >= s.rise_min_packets
                and total - n * self._shop_level >= needed * math.sqrt(n)
                and total / n - before >= s.rise_db
            ):
                return total / n
        return None

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
                await asyncio.gather(pending, return_exceptions=True)
            await iterator.aclose()  # type: ignore[attr-defined]

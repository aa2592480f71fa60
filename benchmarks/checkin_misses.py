"""Where the check-in benchmark's misses are: each visit and far person with its radio, and the verdict.

    .venv/bin/python benchmarks/checkin_misses.py [--visits 500] [--far 300] [--seed 1 2 3] [--show 30]

Runs exactly the scenes of ``benchmarks/checkin.py`` (same random draws), keeps each person's parsed
sightings with the *simulated* radio and path (analysis only: the tracker never sees them), and
prints the misses -- visits not checked in within 5 s once, far people checked in -- with the
advertising rate after loss, the shadowing sigma, the 1 m power error and the distance. Sightings
are cached in ``/tmp`` per seed, so re-running after a tracker change only re-runs the tracker.

``closest_m`` measures how near each far person's path really comes (``_keep_away`` in the
benchmark detours walks around the 3.5 m circle); the misses list and the bound count the far
people that really stayed away (>= ``TRULY_FAR_M``).

``--bound`` also prints what the best rule that looks only at levels could reach (see
:func:`level_only_limit`): with each beacon's noise level known, the threshold on a 5 s window's
level score that keeps every far person out, and the share of visits that reach it in time.
"""

from __future__ import annotations

import argparse
import math
import pickle
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path as FilePath

import checkin as bench  # the sibling benchmark script (a script's folder is on sys.path)
from posbridge.hardware.ble.scene import Path, Radio, Scene
from posbridge.host.checkin import CheckInSettings, CheckInTracker
from posbridge.protocols.beacons import Sighting, beacon_sightings
from posbridge.protocols.types import Advertisement, CheckIn, CheckOut, PresenceEvent


@dataclass
class Person:
    """One benchmark person: what the tracker sees (``sightings``) and the truth behind it."""

    kind: str
    radio: Radio
    path: Path
    sightings: list[Sighting]


def record(visits: int, far: int, seed: int) -> tuple[list[Person], list[Person]]:
    """The benchmark's visits and far people for ``seed``, with their sightings and truth."""
    cache = FilePath(f"/tmp/checkin-misses-{visits}-{far}-{seed}.pickle")
    if cache.exists():
        cached = [Person(*row) for row in pickle.loads(cache.read_bytes())]
        return cached[:visits], cached[visits:]
    people: list[Person] = []
    scenes: list[Scene] = []

    class RecordingScene(Scene):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            scenes.append(self)

    def recording_run(tracker: CheckInTracker, adverts: Iterable[Advertisement]) -> list[PresenceEvent]:
        sightings = parsed(adverts)
        (beacon,) = scenes[-1].beacons
        people.append(Person("", beacon.radio, beacon.path, sightings))
        return []

    vars(bench).update(Scene=RecordingScene, run=recording_run)
    rng = random.Random(seed)
    for index in range(visits):
        bench.visit(rng, index, seed)
        people[-1].kind = "visit"
    for index in range(far):
        bench.far_person(rng, 10_000 + index, seed)
        people[-1].kind = "far"
    rows = [(person.kind, person.radio, person.path, person.sightings) for person in people]
    cache.write_bytes(pickle.dumps(rows))
    return people[:visits], people[visits:]


def parsed(adverts: Iterable[Advertisement]) -> list[Sighting]:
    return list(beacon_sightings(adverts))


SETTINGS = CheckInSettings()


def events_of(person: Person) -> list[PresenceEvent]:
    tracker = CheckInTracker(any_beacon=True, settings=SETTINGS)
    events = [event for sighting in person.sightings for event in tracker.observe(sighting)]
    return events + tracker.flush()


def visit_verdict(person: Person) -> tuple[bool, bool, float | None, int]:
    """(checked in within 5 s once, checked out within 20 s, latency) -- the benchmark's definitions."""
    arrive, leave = person.path.waypoints[1].t, person.path.waypoints[2].t
    events = events_of(person)
    check_ins = [event.t for event in events if isinstance(event, CheckIn)]
    outs = [event.t - leave for event in events if isinstance(event, CheckOut) and event.t >= leave]
    on_time = len(check_ins) == 1 and check_ins[0] - arrive <= 5.0
    latency = check_ins[0] - arrive if check_ins else None
    return on_time, bool(outs) and min(outs) <= 20.0, latency, len(check_ins)


def describe(person: Person, t: float | None = None) -> str:
    radio = person.radio
    rate = (1 - radio.loss) / radio.interval_s
    error = radio.advertised_power_1m - radio.true_power_1m
    where = f" d={person.path.distance(t):.2f} m" if t is not None else ""
    return (
        f"{rate:5.2f} pkt/s  sigma {radio.shadowing_db:.1f} dB  1m error {error:+.0f} dB  "
        f"fades {radio.fade_fraction:.3f}{where}"
    )


def best_window_score(person: Person, until: float, window_s: float = 5.0) -> float:
    """Largest level score any window of the last ``window_s`` seconds reached up to ``until``.

    The score of the packets in a window is their mean relative level minus the worst far
    person's (3.5 m, 1 m power 3 dB low), over sigma / sqrt(n), with the beacon's *true* sigma
    (an oracle: the tracker has to estimate it) -- the statistic of the best level-only rule.
    """
    worst_far = -20 * math.log10(3.5) + 3.0
    sigma = person.radio.shadowing_db
    levels: list[tuple[float, float]] = []
    best = -math.inf
    for sighting in person.sightings:
        t = sighting.advertisement.t
        if t > until:
            break
        levels.append((t, sighting.advertisement.rssi - sighting.identity.power_1m))  # type: ignore[union-attr]
        total = 0.0
        for n, (seen, level) in enumerate(reversed(levels), start=1):
            if seen < t - window_s:
                break
            total += level - worst_far
            if n >= 2:
                best = max(best, total / math.sqrt(n) / sigma)
    return best


def closest_m(path: Path) -> float:
    """How close a path comes to the counter, metres (exact, over its straight segments)."""
    best = math.inf
    for a, b in zip(path.waypoints, path.waypoints[1:], strict=False):
        dx, dy = b.x - a.x, b.y - a.y
        length2 = dx * dx + dy * dy
        share = 0.0 if length2 == 0 else min(max(-(a.x * dx + a.y * dy) / length2, 0.0), 1.0)
        best = min(best, math.hypot(a.x + share * dx, a.y + share * dy))
    return min(best, path.distance(path.start))


TRULY_FAR_M = 3.4


def level_only_limit(visits: list[Person], far: list[Person]) -> tuple[float, float]:
    """(threshold, share of visits on time) of the best level-only rule that checks no far person in.

    Only far people whose path really stays beyond ``TRULY_FAR_M`` count (see the module docstring).
    """
    threshold = max(best_window_score(p, math.inf) for p in far if closest_m(p.path) >= TRULY_FAR_M)
    on_time = [best_window_score(person, person.path.waypoints[1].t + 5.0) >= threshold for person in visits]
    return threshold, sum(on_time) / len(on_time)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=500)
    parser.add_argument("--far", type=int, default=300)
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--show", type=int, default=30)
    parser.add_argument("--bound", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="tracker settings to try")
    args = parser.parse_args()
    global SETTINGS
    overrides = {
        name: float(value) if "." in value or "e" in value else int(value)
        for name, value in (item.split("=") for item in args.set)
    }
    SETTINGS = CheckInSettings(**overrides)  # type: ignore[arg-type]
    for seed in args.seed:
        visits, far = record(args.visits, args.far, seed)
        misses = []
        out_misses = 0
        for person in visits:
            on_time, out_ok, latency, check_ins = visit_verdict(person)
            out_misses += not out_ok
            if not on_time:
                misses.append((person, latency, check_ins))
        false = [(person, events_of(person)) for person in far]
        false = [(p, e) for p, e in false if any(isinstance(x, CheckIn) for x in e)]
        truly_false = sum(closest_m(p.path) >= TRULY_FAR_M for p, _ in false)
        print(
            f"seed {seed}: on time {100 * (1 - len(misses) / len(visits)):.1f} %  "
            f"({len(misses)} misses), check-out misses {out_misses}, far checked in {len(false)} "
            f"({truly_false} of them really stayed >= {TRULY_FAR_M} m)"
        )
        for person, latency, check_ins in misses[: args.show]:
            arrive = person.path.waypoints[1].t
            shown = "never" if latency is None else f"{latency:+.1f} s"
            print(f"  visit miss {shown:>7} x{check_ins}  {describe(person, arrive)}")
        for person, events in false[: args.show]:
            t = next(event.t for event in events if isinstance(event, CheckIn))
            print(f"  far check-in  {describe(person, t)}  closest {closest_m(person.path):.2f} m")
        if args.bound:
            close = [closest_m(person.path) for person in far]
            print(
                f"  far paths that come closer than {TRULY_FAR_M} m: {sum(d < TRULY_FAR_M for d in close)}, "
                f"closer than 1.5 m: {sum(d < 1.5 for d in close)}"
            )
            threshold, share = level_only_limit(visits, far)
            print(f"  level-only limit (sigma known): score {threshold:.2f}, on time {100 * share:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

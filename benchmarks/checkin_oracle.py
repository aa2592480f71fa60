"""How far the check-in target is from reach: a Bayesian tracker told each beacon's true radio.

    .venv/bin/python benchmarks/checkin_oracle.py [--seed 1 2 3] [--blind]

Analysis for issue 6, not part of the product. For the exact people of ``benchmarks/checkin.py``
(recorded by ``benchmarks/checkin_misses.py``), a grid Bayesian filter tracks each beacon's
distance: a log-spaced distance grid, a motion model (standing still with time constant
``--stay``, else moving up to ``--speed`` m/s), and a per-packet likelihood that is Gaussian in dB
around the log-distance model with a deep-fade component. As an *oracle* it is told each beacon's
true 1 m power error and shadowing sigma, which no real tracker knows (``--blind`` marginalises
over the benchmark's ranges instead). The decision statistic is the posterior probability of being
within ``--near`` metres; the threshold is set just above the highest value any far person ever
reached, so no far person is checked in, and the figure is the share of visits whose statistic
passes it within 5 s of arriving.

With the defaults, on seeds 1/2/3 the oracle reaches 98.8 / 97.8 / 97.0 % of visits and the blind
filter 95.8 / 95.0 / 95.4 % (the tracker: 94.6 / 96.2 / 96.6 % in its quick mode, 88.6 / 89.6 /
91.6 % in its cautious one). The threshold is fitted to each seed's far people after the fact,
which flatters both filters. Only with knowledge no real tracker
has does a filter come near the 98 % target, and not on every seed: what stands in the way is the
channel (slow, lossy advertisers give 1-3 packets near the counter within 5 s, with 3-6 dB noise,
12-25 dB fades and a 1 m power off by up to 3 dB), not a missed trick of the decision rule.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import ClassVar

import checkin_misses  # the sibling script: run as a script, this file's folder is on sys.path
import numpy as np
from numpy.typing import NDArray

GRID_M = np.geomspace(0.25, 40.0, 48)
ERRORS_DB = np.arange(-3.0, 3.01, 1.0)
SIGMAS_DB = np.array([3.0, 4.5, 6.0])
FADE_DB, FADE_SPREAD_DB, FADE_SHARE = 18.5, 5.0, 0.04
DT_STEP_S = 0.05


class DistanceFilter:
    """Grid posterior over (1 m power error, sigma, distance) of one beacon."""

    _motion: ClassVar[dict[tuple[float, float, int], NDArray[np.float64]]] = {}

    def __init__(self, errors: NDArray[np.float64], sigmas: NDArray[np.float64], stay_s: float, speed: float):
        self.stay_s, self.speed = stay_s, speed
        self.mean = (-20 * np.log10(GRID_M)[None, :] - errors[:, None])[:, None, :]
        self.sigma = sigmas[None, :, None]
        self.fade_sigma = np.sqrt(self.sigma**2 + FADE_SPREAD_DB**2)
        prior = np.broadcast_to(
            GRID_M / GRID_M.sum(), self.mean.shape[:1] + self.sigma.shape[1:2] + GRID_M.shape
        )
        self.posterior = prior / prior.sum()
        self.t: float | None = None

    def motion(self, elapsed_s: float) -> NDArray[np.float64]:
        """Transition matrix over the grid for ``elapsed_s`` (rounded to ``DT_STEP_S``, cached)."""
        steps = min(round(elapsed_s / DT_STEP_S), 200)
        key = (self.stay_s, self.speed, steps)
        if key not in self._motion:
            reach = self.speed * steps * DT_STEP_S
            edges = np.concatenate(([0.0], np.sqrt(GRID_M[:-1] * GRID_M[1:]), [1e9]))
            stay = math.exp(-steps * DT_STEP_S / self.stay_s)
            matrix = np.eye(len(GRID_M)) * stay
            if reach > 0:
                for row, distance in enumerate(GRID_M):
                    low, high = max(distance - reach, 0.0), distance + reach
                    share = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0, None)
                    matrix[row] += (1 - stay) * share / share.sum()
            self._motion[key] = matrix
        return self._motion[key]

    def update(self, t: float, relative_db: float) -> NDArray[np.float64]:
        """Add one packet at relative level ``RSSI - P1m``; returns the posterior over distance."""
        elapsed = 0.0 if self.t is None else max(t - self.t, 0.0)
        self.t = t
        shape = self.posterior.shape
        predicted = (self.posterior.reshape(-1, shape[-1]) @ self.motion(elapsed)).reshape(shape)
        direct = (relative_db - self.mean) / self.sigma
        faded = (relative_db - self.mean + FADE_DB) / self.fade_sigma
        likelihood = (1 - FADE_SHARE) * np.exp(-0.5 * direct**2) / self.sigma + FADE_SHARE * np.exp(
            -0.5 * faded**2
        ) / self.fade_sigma
        posterior = predicted * likelihood
        self.posterior = posterior / posterior.sum()
        result: NDArray[np.float64] = self.posterior.sum(axis=(0, 1))
        return result


def best_near_probability(person: object, args: argparse.Namespace, until: float = math.inf) -> float:
    """The highest posterior probability of being within ``args.near`` m the person reached by ``until``."""
    radio = person.radio  # type: ignore[attr-defined]
    if args.blind:
        errors, sigmas = ERRORS_DB, SIGMAS_DB
    else:
        errors = np.array([float(radio.advertised_power_1m - radio.true_power_1m)])
        sigmas = np.array([radio.shadowing_db])
    near = np.less_equal(GRID_M, args.near)
    tracker: DistanceFilter | None = None
    best = 0.0
    for sighting in person.sightings:  # type: ignore[attr-defined]
        t = sighting.advertisement.t
        if t > until:
            break
        if tracker is None or (tracker.t is not None and t - tracker.t >= 12.0):
            tracker = DistanceFilter(errors, sigmas, args.stay, args.speed)
        posterior = tracker.update(t, sighting.advertisement.rssi - sighting.identity.power_1m)
        best = max(best, float(posterior[near].sum()))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--blind", action="store_true", help="not told the radio: marginalise over its ranges"
    )
    parser.add_argument("--near", type=float, default=1.5, help="metres that count as at the counter")
    parser.add_argument("--stay", type=float, default=3.0, help="seconds a person stands still on average")
    parser.add_argument("--speed", type=float, default=2.0, help="fastest walk, m/s")
    args = parser.parse_args()
    for seed in args.seed:
        visits, far = checkin_misses.record(500, 300, seed)
        threshold = max(best_near_probability(person, args) for person in far)
        on_time = [
            best_near_probability(person, args, person.path.waypoints[1].t + 5.0) > threshold
            for person in visits
        ]
        kind = "blind" if args.blind else "oracle"
        print(
            f"seed {seed}: {kind} Bayesian tracker, no far person checked in (threshold {threshold:.3f}):"
            f" {100 * sum(on_time) / len(on_time):.1f} % of visits within 5 s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmark scripts share for printing figures (imported as a sibling: a script's folder
is on ``sys.path``)."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], fraction: float) -> float:
    """The value at ``fraction`` (0-1) of the sorted values, nearest rank (0.5 median, 1.0 max)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

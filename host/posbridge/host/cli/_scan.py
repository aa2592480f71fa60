"""Running a BLE scan to its end for a subcommand, with the one-line scan summary on stderr.

``posbridge ble`` and ``posbridge checkin`` both run a scanner until the source ends, a duration
passes or the user presses Ctrl-C, then report the scanner's counters
(:class:`~posbridge.hardware.ble.scanner.ScanStats`) as ``posbridge <command>: ...`` on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from posbridge.hardware.ble.scanner import ScanStats


class _CountingScanner(Protocol):
    @property
    def stats(self) -> ScanStats: ...


def run_scan(
    command: str,
    scanner: _CountingScanner,
    work: Coroutine[Any, Any, None],
    counts: Callable[[ScanStats], str],
) -> int:
    """Run ``work`` on a new event loop; then write ``posbridge COMMAND: counts(stats)`` to stderr.

    The summary follows a run that ends normally or with Ctrl-C (the ``KeyboardInterrupt`` is
    re-raised, so ``main`` exits 130); after any other error there is none, so the error's one
    line is all stderr holds. Returns exit code 0.
    """

    import asyncio

    def summary() -> None:
        sys.stderr.write(f"posbridge {command}: {counts(scanner.stats)}\n")

    try:
        asyncio.run(work)
    except KeyboardInterrupt:
        summary()
        raise
    summary()
    return 0

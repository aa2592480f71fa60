"""``virtual://demo[?seed=1&duration=90&realtime=0]``: advertisements from a simulated scene (:mod:`.scene`).

Stamped with scene time (seconds from 0); ``realtime=1`` paces them on the wall clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from posbridge.hardware.ble.scanner import BeaconScanner, ScannerOptions, paced, register_scanner
from posbridge.hardware.ble.scene import SCENES, Scene
from posbridge.protocols.errors import UsageError
from posbridge.protocols.types import Advertisement


@register_scanner("virtual")
class VirtualScanner(BeaconScanner):
    """Advertisements of a :class:`Scene`, deterministic for its seed."""

    def __init__(self, url: str, scene: Scene, realtime: bool = False) -> None:
        super().__init__(url)
        self.scene = scene
        self.realtime = realtime

    @classmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> VirtualScanner:
        """``target`` names a preset scene (default ``demo``)."""
        name = target.strip("/") or "demo"
        if name not in SCENES:
            raise UsageError(
                f"unknown virtual scene {name!r}; use one of {', '.join(sorted(SCENES))}", url=url
            )
        options = ScannerOptions(url, params)
        seed = options.integer("seed", 0, 0, 2**31)
        duration = options.number("duration", 90.0, 1.0, 86_400.0)
        realtime = options.flag("realtime", False)
        options.finish()
        return cls(url, SCENES[name](seed=seed, duration_s=duration), realtime)

    def _advertisements(self) -> AsyncIterator[Advertisement]:
        return paced(self.scene.advertisements(), self.realtime, time_origin=0.0)

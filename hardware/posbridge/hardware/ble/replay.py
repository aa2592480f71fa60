"""``replay://scan.jsonl[?realtime=1]``: play back a recording made by ``posbridge ble record``.

As fast as the consumer takes them by default; ``realtime=1`` paces them by their ``t`` stamps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from posbridge.hardware.ble.jsonl import read_records
from posbridge.hardware.ble.scanner import BeaconScanner, ScannerOptions, paced, register_scanner
from posbridge.protocols.errors import DeviceNotFound, UsageError
from posbridge.protocols.types import Advertisement


@register_scanner("replay")
class ReplayScanner(BeaconScanner):
    """Advertisements from a JSONL recording, stamped with their recorded ``t``."""

    def __init__(self, url: str, path: Path, realtime: bool = False) -> None:
        super().__init__(url)
        self.path = path
        self.realtime = realtime

    @classmethod
    def from_url(cls, url: str, target: str, params: dict[str, str]) -> ReplayScanner:
        """``target`` is the recording's path."""
        if not target:
            raise UsageError("replay:// needs a file: replay://scan.jsonl", url=url)
        options = ScannerOptions(url, params)
        realtime = options.flag("realtime", False)
        options.finish()
        return cls(url, Path(target), realtime)

    async def _advertisements(self) -> AsyncIterator[Advertisement]:
        try:
            stream = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            raise DeviceNotFound(f"scan recording {self.path} does not exist", path=str(self.path)) from None
        except OSError as error:
            raise DeviceNotFound(f"cannot read scan recording {self.path}: {error.strerror}") from error
        with stream:
            async for advertisement in paced(read_records(stream), self.realtime):
                yield advertisement

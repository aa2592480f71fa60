"""The dongle's persistent outbox: encrypted frames waiting for the host's ACK.

One file per frame (``<seq>.frame``: the unstuffed link frame of :mod:`posbridge.protocols.link`,
already carrying only ciphertext and the masked card), written durably before the frame is first
sent and removed once acknowledged. Frames survive a lost link, SIGKILL or a reboot and are sent
in sequence order. A damaged file (a crash cannot produce one, but a bad SD card can) is moved
aside, not sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from posbridge.firmware.keystore import fsync_directory, write_durably
from posbridge.protocols.errors import FrameError
from posbridge.protocols.link import Frame, frame_bytes, parse_frame_bytes

log = logging.getLogger(__name__)

_SUFFIX = ".frame"


@dataclass(frozen=True)
class OutboxEntry:
    """A frame in the outbox with the audio stream time (s) at which its swipe ended."""

    frame: Frame
    source_end: float


class Outbox:
    """Durable FIFO of frames keyed by sequence number; thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[int, OutboxEntry] = {}
        self._load()

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:010d}{_SUFFIX}"

    def _load(self) -> None:
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            try:
                raw = path.read_bytes()
                source_end = float(raw[:24].decode("ascii"))
                frame = parse_frame_bytes(raw[24:])
            except (OSError, ValueError, FrameError):
                log.warning("outbox file %s is damaged; moved aside", path.name)
                path.rename(path.with_suffix(".damaged"))
                continue
            self._entries[frame.seq] = OutboxEntry(frame, source_end)

    def put(self, frame: Frame, source_end: float) -> None:
        """Store ``frame`` durably (returns once it is on disk)."""
        header = f"{source_end:<24.6f}".encode("ascii")[:24]
        write_durably(self._path(frame.seq), header + frame_bytes(frame))
        with self._lock:
            self._entries[frame.seq] = OutboxEntry(frame, source_end)

    def get(self, seq: int) -> OutboxEntry | None:
        """The entry of frame ``seq``, if held."""
        with self._lock:
            return self._entries.get(seq)

    def remove(self, seq: int) -> bool:
        """Drop the frame ``seq`` (acknowledged); False if it was not there."""
        with self._lock:
            entry = self._entries.pop(seq, None)
        if entry is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(seq))
        fsync_directory(self.directory)
        return True

    def head(self) -> Frame | None:
        """The oldest frame not yet acknowledged."""
        with self._lock:
            return self._entries[min(self._entries)].frame if self._entries else None

    def entries(self) -> list[OutboxEntry]:
        """Every held entry in sequence order."""
        with self._lock:
            return [self._entries[seq] for seq in sorted(self._entries)]

    def latest_source_end(self) -> float:
        """The largest ``source_end`` held (-1 when empty)."""
        with self._lock:
            return max((entry.source_end for entry in self._entries.values()), default=-1.0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

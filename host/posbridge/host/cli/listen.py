"""``posbridge listen --audio URL [--json] [--reveal] [--save-swipes DIR]``: live swipes (issue 3 item 3).

Reads an :func:`~posbridge.hardware.audio.open_audio` source block by block through a streaming
:class:`~posbridge.dsp.detector.SwipeDetector` and prints each swipe the moment it is over,
masked unless ``--reveal``. With ``--json``: one ``{"t", "channel", "tracks", "card"}`` object per
swipe per line. On a terminal (and without ``--json``) a live input-level meter runs on the
status line. Overruns are reported on stderr as they happen. A sound card that goes away gives a
clear stderr line and the source waits for it to come back. ``--save-swipes DIR`` writes the
audio of each swipe (with 0.25 s either side) as WAV; it holds card data, so it needs
``--reveal`` and prints a warning. ``--link URL`` listens to a dongle on a serial link instead.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbridge.host.cli._listen_link import register_link_options, run_link_listener
from posbridge.host.cli._output import (
    add_output_options,
    emit_json,
    emit_line,
    ensure_directory,
    is_terminal,
    positive_seconds,
)
from posbridge.protocols.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from posbridge.hardware.audio import AudioSource
    from posbridge.protocols.types import Swipe

COMMAND = "listen"
HELP = "print card swipes live from a sound card, a file, a pipe or a virtual reader"

SAVE_MARGIN_S = 0.25
HISTORY_S = 20.0
METER_INTERVAL_S = 0.1
METER_WIDTH = 30
METER_FLOOR_DB = -60.0
OVERRUN_REPORT_S = 5.0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the listen options (and the dongle link's, when that module is present)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--audio",
        metavar="URL",
        help="device://NAME?rate=48000, wav://FILE, stdin://?rate=48000&format=s16le, virtual://?swipes=3",
    )
    source.add_argument(
        "--link", metavar="URL", help="a posbridge dongle on a serial link (/dev/ttyACM0, ...)"
    )
    parser.add_argument(
        "--save-swipes",
        metavar="DIR",
        default=None,
        help="keep the audio of each swipe as WAV in DIR (card data: needs --reveal)",
    )
    parser.add_argument("--count", type=int, default=None, metavar="N", help="stop after N swipes")
    parser.add_argument(
        "--duration", type=positive_seconds, default=None, metavar="S", help="stop after S seconds of audio"
    )
    add_output_options(parser)
    register_link_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Listen until the source ends, ``--count`` swipes, ``--duration`` seconds or Ctrl-C."""
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.link is not None:
        return run_link_listener(args)
    if args.save_swipes is not None and not args.reveal:
        raise UsageError("--save-swipes writes card data to disk; it needs --reveal")
    from posbridge.dsp.detector import SwipeDetector
    from posbridge.hardware.audio import open_audio

    save_dir = None
    if args.save_swipes is not None:
        save_dir = ensure_directory(args.save_swipes, "--save-swipes")
        sys.stderr.write(
            f"posbridge: warning: the WAV files in {save_dir} hold clear card data; "
            "keep them on a test bench and delete them when done\n"
        )
    with open_audio(args.audio) as source:
        listener = Listener(
            source,
            SwipeDetector(source.rate, source.channels),
            args.json,
            args.reveal,
            save_dir,
            meter=is_terminal() and not args.json,
        )
        listener.run(count=args.count, duration_s=args.duration)
    return 0


class Listener:
    """Feeds one source through one detector and reports swipes, overruns and the input level."""

    def __init__(
        self,
        source: AudioSource,
        detector: Any,
        as_json: bool,
        reveal: bool,
        save_dir: Path | None,
        meter: bool,
    ) -> None:
        self.source = source
        self.detector = detector
        self.as_json = as_json
        self.reveal = reveal
        self.save_dir = save_dir
        self.meter = meter
        self.reported = 0
        self._history: deque[tuple[float, NDArray[np.float32]]] = deque()
        self._history_frames = 0
        self._overruns_seen = 0
        self._overruns_at = -math.inf
        self._meter_shown = False
        self._meter_at = 0.0
        self._peak = 0.0
        from posbridge.hardware.audio.device import DeviceAudioSource

        if isinstance(source, DeviceAudioSource):
            source.on_disconnect = self._disconnected

    def _disconnected(self, error: Exception) -> None:
        self._clear_meter()
        sys.stderr.write(f"posbridge: {error}; waiting for it to come back (Ctrl-C to stop)\n")
        sys.stderr.flush()

    def run(self, count: int | None = None, duration_s: float | None = None) -> None:
        """Process blocks until the source ends or a limit is reached, then flush the detector."""
        try:
            for block in self.source:
                if self.save_dir is not None:
                    self._remember(block.t, block.samples)
                if self.meter:
                    self._show_level(block.samples)
                if self._report(self.detector.process(block.samples), count):
                    return
                self._check_overruns()
                if duration_s is not None and self.source.stream_time >= duration_s:
                    break
            self._report(self.detector.flush(), count)
        finally:
            self._clear_meter()
            self._check_overruns(final=True)

    def _report(self, swipes: list[Swipe], count: int | None) -> bool:
        from posbridge.host.cli._swipes import live_swipe_record, swipe_line

        for swipe in swipes:
            self._clear_meter()
            self.reported += 1
            if self.as_json:
                emit_json(live_swipe_record(swipe, self.reveal))
            else:
                emit_line(swipe_line(swipe, self.reveal))
            if self.save_dir is not None:
                self._save(swipe)
            if count is not None and self.reported >= count:
                return True
        return False

    def _check_overruns(self, final: bool = False) -> None:
        """Warn about lost audio on stderr: at once, then at most every OVERRUN_REPORT_S, and at the end."""
        now = time.monotonic()
        if self.source.overruns != self._overruns_seen and (
            final or now - self._overruns_at >= OVERRUN_REPORT_S
        ):
            self._overruns_at = now
            self._clear_meter()
            lost = self.source.overruns - self._overruns_seen
            self._overruns_seen = self.source.overruns
            sys.stderr.write(
                f"posbridge: warning: audio input overrun ({lost} more, {self._overruns_seen} in all); "
                "swipes in the lost audio may be missed\n"
            )
            sys.stderr.flush()

    def _remember(self, t: float, samples: NDArray[np.float32]) -> None:
        self._history.append((t, samples))
        self._history_frames += samples.shape[0]
        limit = int(HISTORY_S * self.source.rate)
        while self._history and self._history_frames - self._history[0][1].shape[0] >= limit:
            self._history_frames -= self._history.popleft()[1].shape[0]

    def _save(self, swipe: Swipe) -> None:
        import numpy as np
        from posbridge.hardware.audio import write_wav

        assert self.save_dir is not None
        first = int(max(swipe.started_at - SAVE_MARGIN_S, 0.0) * self.source.rate)
        last = int((swipe.ended_at + SAVE_MARGIN_S) * self.source.rate)
        pieces = []
        for t, samples in self._history:
            start = round(t * self.source.rate)
            lo, hi = max(first, start), min(last, start + samples.shape[0])
            if lo < hi:
                pieces.append(samples[lo - start : hi - start])
        if pieces:
            path = self.save_dir / f"swipe-{self.reported:04d}-t{swipe.started_at:09.3f}.wav"
            write_wav(path, np.concatenate(pieces), self.source.rate, "f32le")

    def _show_level(self, samples: NDArray[np.float32]) -> None:
        import numpy as np

        if samples.size:
            self._peak = max(self._peak, float(np.max(np.abs(samples))))
        now = time.monotonic()
        if now - self._meter_at < METER_INTERVAL_S:
            return
        self._meter_at = now
        level_db = 20 * math.log10(self._peak) if self._peak > 0 else -math.inf
        self._peak = 0.0
        filled = 0 if level_db <= METER_FLOOR_DB else round(METER_WIDTH * (1 - level_db / METER_FLOOR_DB))
        bar = "#" * min(filled, METER_WIDTH) + "." * (METER_WIDTH - min(filled, METER_WIDTH))
        text = f"{level_db:6.1f} dBFS" if math.isfinite(level_db) else "  -inf dBFS"
        sys.stdout.write(f"\r[{bar}] {text}  t={self.source.stream_time:8.1f} s  swipes {self.reported}")
        sys.stdout.flush()
        self._meter_shown = True

    def _clear_meter(self) -> None:
        if self._meter_shown:
            sys.stdout.write("\r" + " " * (METER_WIDTH + 48) + "\r")
            sys.stdout.flush()
            self._meter_shown = False

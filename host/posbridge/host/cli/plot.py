"""``posbridge plot FILE.wav -o swipe.png``: the picture a person debugging a reader wants (issue 2 item 5).

The top panel shows the whole recording with every detected swipe shaded. Below, one panel per
swipe (``--swipe`` picks one): the waveform, the F2F pulses the demodulator found (``^`` positive,
``v`` negative; :func:`posbridge.dsp.f2f.find_pulses`), the bit cells of each clock-locked burst
with their 0/1 decisions (:func:`~posbridge.dsp.f2f.recover_bursts`), and the decoded characters
over the bits that carry them (sentinels, text, LRC). Characters are masked like everywhere else
unless ``--reveal``: the picture would otherwise hold card data.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbridge.host.cli._output import add_output_options, emit_json, emit_line
from posbridge.protocols.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from posbridge.dsp.f2f import Pulses
    from posbridge.protocols.types import Swipe, Track

COMMAND = "plot"
HELP = "draw a recording's swipes with pulses, bit decisions and decoded characters (PNG/SVG/PDF)"

MARGIN_S = 0.01
MAX_PANELS = 6
STRONG_PULSE = 0.3


@dataclass(frozen=True)
class Panel:
    """One swipe on one channel, ready to draw (``first`` is the segment's first sample)."""

    swipe: Swipe
    channel: int
    segment: NDArray[np.float32]
    pulses: Pulses | None
    views: list[BurstView]
    first: int


def register(parser: argparse.ArgumentParser) -> None:
    """Add the plot options."""
    parser.add_argument("path", metavar="FILE.wav", help="the recording")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="OUT.png",
        help="picture to write (default: FILE.png beside the recording); .png, .svg or .pdf",
    )
    parser.add_argument("--swipe", type=int, default=None, metavar="N", help="draw only swipe N (1-based)")
    parser.add_argument("--channel", type=int, default=None, metavar="C", help="draw only channel C")
    add_output_options(parser)
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class BurstView:
    """One burst as drawn: the ``len(bits) + 1`` cell boundary times (samples) the clock tracker
    settled on (:attr:`posbridge.dsp.f2f.Burst.boundaries`), bits, and the characters over bit ranges."""

    boundaries: list[float]
    bits: list[int]
    characters: list[tuple[int, int, str]]  # (first bit, end bit, label)
    track: Track | None


def character_spans(burst_bits: Sequence[int], track: Track, shown_text: str) -> list[tuple[int, int, str]]:
    """``(first bit, end bit, label)`` for each character of ``track`` within ``burst_bits``."""
    from posbridge.protocols.magstripe import CHARACTER_SETS

    charset = CHARACTER_SETS[track.format]
    width = charset.bits_per_character
    recorded = list(track.raw_bits)
    if track.direction.value == "reverse":
        recorded = recorded[::-1]
    text = "".join(str(bit) for bit in burst_bits)
    needle = "".join(str(bit) for bit in recorded)
    offset = text.find(needle) if needle else -1
    if offset < 0:
        return []
    labels = [charset.start_sentinel, *shown_text, charset.end_sentinel, "LRC"]
    if track.direction.value == "reverse":
        labels = labels[::-1]
    return [
        (offset + index * width, offset + (index + 1) * width, label) for index, label in enumerate(labels)
    ]


def analyse(samples: NDArray[np.float32], rate: float, reveal: bool) -> tuple[Pulses | None, list[BurstView]]:
    """Pulses and drawable bursts of one channel of one swipe segment (times in samples)."""
    from posbridge.dsp.f2f import decode_bits, find_pulses, recover_bursts
    from posbridge.host.cli._swipes import track_text

    pulses = find_pulses(samples, rate)
    if pulses is None:
        return None, []
    views = []
    for burst in recover_bursts(samples, rate):
        track = decode_bits(burst.bits, burst.confidence)
        spans = character_spans(burst.bits, track, track_text(track, reveal)) if track is not None else []
        views.append(BurstView(list(burst.boundaries), burst.bits, spans, track))
    return pulses, views


def run(args: argparse.Namespace) -> int:
    """Decode the recording and draw it."""
    import numpy as np
    from posbridge.dsp.detector import decode_recording
    from posbridge.hardware.audio import read_wav

    path = Path(args.path)
    output = Path(args.output) if args.output else Path(path.stem + ".png")
    if output.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError("-o must end in .png, .svg or .pdf")
    try:
        samples, rate = read_wav(path)
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from error
    if args.channel is not None and not 0 <= args.channel < samples.shape[1]:
        raise UsageError(f"{path} has {samples.shape[1]} channel(s); --channel {args.channel} is not one")
    swipes = decode_recording(samples, rate, keep_undecoded=True)
    if args.channel is not None:
        swipes = [swipe for swipe in swipes if swipe.channel == args.channel]
    if args.swipe is not None:
        if not 1 <= args.swipe <= len(swipes):
            raise UsageError(f"{path} has {len(swipes)} swipe(s); --swipe {args.swipe} is not one")
        swipes = [swipes[args.swipe - 1]]
    drawn = swipes[:MAX_PANELS]
    panels: list[Panel] = []
    for swipe in drawn:
        first = max(int((swipe.started_at - MARGIN_S) * rate), 0)
        last = min(int((swipe.ended_at + MARGIN_S) * rate), samples.shape[0])
        channels = (
            [swipe.channel] if samples.shape[1] == 1 or args.channel is not None else range(samples.shape[1])
        )
        for channel in channels:
            segment = np.ascontiguousarray(samples[first:last, channel])
            pulses, views = analyse(segment, rate, args.reveal)
            panels.append(Panel(swipe, channel, segment, pulses, views, first))
    _draw(output, path, samples, rate, panels)
    decoded = sum(1 for swipe in swipes if swipe.tracks)
    if args.json:
        emit_json(
            {
                "file": str(path),
                "output": str(output),
                "swipes": len(swipes),
                "decoded": decoded,
                "drawn": len(drawn),
            }
        )
    else:
        more = f" (first {len(drawn)} drawn; use --swipe N)" if len(drawn) < len(swipes) else ""
        emit_line(f"wrote {output}: {len(swipes)} swipe(s), {decoded} decoded{more}")
    return 0


def _draw(
    output: Path,
    path: Path,
    samples: NDArray[np.float32],
    rate: float,
    panels: list[Panel],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = 1 + len(panels)
    most_bits = max((len(view.bits) for panel in panels for view in panel.views), default=0)
    width = min(max(16.0, 0.09 * most_bits), 80.0)
    figure, axes = plt.subplots(
        rows,
        1,
        figsize=(width, 2.2 + 3.6 * len(panels)),
        squeeze=False,
        gridspec_kw={"height_ratios": [1] + [2.2] * len(panels)},
    )
    overview = axes[0][0]
    step = max(1, samples.shape[0] // 20_000)
    times = np.arange(0, samples.shape[0], step) / rate
    for channel in range(samples.shape[1]):
        overview.plot(times, samples[::step, channel], linewidth=0.5, label=f"ch{channel}")
    for number, panel in enumerate(panels, start=1):
        overview.axvspan(panel.swipe.started_at, panel.swipe.ended_at, color="orange", alpha=0.3)
        overview.text(
            panel.swipe.started_at, 0.9, f"#{number}", transform=overview.get_xaxis_transform(), fontsize=8
        )
    overview.set_title(
        f"{path.name}: {samples.shape[0] / rate:.3f} s at {rate} Hz, {samples.shape[1]} channel(s)"
    )
    overview.set_xlabel("s")
    overview.set_xlim(0, samples.shape[0] / rate)
    for number, panel in enumerate(panels, start=1):
        _draw_panel(axes[number][0], number, panel, rate)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def _draw_panel(axis: Any, number: int, panel: Panel, rate: float) -> None:
    import numpy as np

    swipe, segment, pulses, views, first = panel.swipe, panel.segment, panel.pulses, panel.views, panel.first

    t0 = first / rate
    axis.plot(t0 + np.arange(segment.size) / rate, segment, color="0.35", linewidth=0.6)
    peak = float(np.max(np.abs(segment))) or 1.0
    if pulses is not None:
        strong = pulses.strengths >= STRONG_PULSE
        in_burst = np.zeros(pulses.times.shape, dtype=bool)
        for view in views:
            in_burst |= (pulses.times >= view.boundaries[0] - 1) & (pulses.times <= view.boundaries[-1] + 1)
        strong &= in_burst
        at = t0 + pulses.times / rate
        value = np.interp(pulses.times, np.arange(segment.size), segment)
        for sign, marker, colour in ((1, "^", "tab:red"), (-1, "v", "tab:blue")):
            chosen = strong & (pulses.signs == sign)
            axis.scatter(at[chosen], value[chosen], marker=marker, s=14, color=colour, zorder=3)
    for view in views:
        edges = t0 + np.asarray(view.boundaries) / rate
        for left, right, bit in zip(edges[:-1], edges[1:], view.bits, strict=False):
            axis.axvline(left, color="tab:green", alpha=0.25, linewidth=0.6)
            axis.text(
                (left + right) / 2,
                1.08 * peak,
                str(bit),
                ha="center",
                fontsize=6,
                color="black" if bit else "0.5",
            )
        for low, high, label in view.characters:
            if 0 <= low < high <= len(view.bits):
                left, right = edges[low], edges[high]
                axis.axvspan(
                    left, right, ymin=0.0, ymax=0.06, color="tab:purple", alpha=0.15 + 0.15 * (low % 2)
                )
                axis.text((left + right) / 2, -1.2 * peak, label, ha="center", fontsize=8, family="monospace")
    decoded = [view.track for view in views if view.track is not None]
    status = ", ".join(f"T{track.number} {track.direction.value}" for track in decoded) or "no track decoded"
    span = f"{swipe.started_at:.3f}-{swipe.ended_at:.3f} s"
    axis.set_title(
        f"swipe #{number} ch{panel.channel}: {span}, {len(views)} burst(s), {status}",
        fontsize=10,
    )
    axis.set_ylim(-1.35 * peak, 1.2 * peak)
    axis.set_xlabel("s")

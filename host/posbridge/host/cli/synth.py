"""``posbridge synth OUT.wav --track 2 --speed 60 --snr 25``: write a test swipe (issue 2 item 5).

The card is a random Luhn-valid test card (test BIN prefixes only, :func:`test_card_tracks`)
unless ``--pan`` gives one. Mono records one track (``--track``, default 1); ``--channels 2``
records Track 1 on the left and Track 2 on the right. The synthesizer is
:func:`posbridge.dsp.synth.synthesize_swipe`; see :class:`~posbridge.dsp.synth.SwipeParams`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posbridge.host.cli._output import add_output_options, emit_json, emit_line, seed_number
from posbridge.protocols.errors import ConfigError, TrackError, UsageError

COMMAND = "synth"
HELP = "write a synthesized magstripe swipe of a test card to a WAV file"

WAV_FORMATS = {"8": "u8", "16": "s16le", "24": "s24le", "32": "s32le", "float": "f32le"}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the synth options."""
    parser.add_argument("output", metavar="OUT.wav", help="the WAV file to write")
    parser.add_argument(
        "--track",
        type=int,
        choices=(1, 2),
        action="append",
        default=None,
        help="track to record (mono: one, default 1; stereo: left and right, default 1 2)",
    )
    parser.add_argument(
        "--channels", type=int, choices=(1, 2), default=1, help="1 mono (default) or 2 stereo"
    )
    parser.add_argument("--rate", type=int, default=48_000, metavar="HZ", help="sample rate (default 48000)")
    parser.add_argument("--speed", type=float, default=50.0, metavar="CM_S", help="swipe speed in cm/s (50)")
    parser.add_argument(
        "--ramp",
        type=float,
        default=1.0,
        metavar="X",
        help="end speed / start speed (2: the hand doubles its speed; default 1)",
    )
    parser.add_argument(
        "--wobble", type=float, default=0.0, metavar="X", help="relative speed wobble (0-0.9)"
    )
    parser.add_argument("--snr", type=float, default=35.0, metavar="DB", help="signal to noise ratio (35 dB)")
    parser.add_argument(
        "--hum", type=float, default=None, metavar="DB", help="mains hum power over signal power"
    )
    parser.add_argument(
        "--clip", type=float, default=None, metavar="X", help="clip at this fraction of the peak"
    )
    parser.add_argument(
        "--contact-from",
        type=float,
        default=1.0,
        metavar="X",
        help="relative amplitude as the head touches the stripe (0-1, default 1)",
    )
    parser.add_argument("--reverse", action="store_true", help="swipe the card backwards")
    parser.add_argument("--bits", choices=tuple(WAV_FORMATS), default="16", help="sample format (16)")
    parser.add_argument("--seed", type=seed_number, default=None, help="random seed (default: fresh)")
    parser.add_argument("--pan", default=None, help="a Luhn-valid test PAN instead of a random one")
    parser.add_argument("--name", default=None, help="cardholder name with --pan (SURNAME/GIVEN; TEST/CARD)")
    parser.add_argument("--expiry", default=None, metavar="YYMM", help="expiry with --pan (YYMM; 3012)")
    parser.add_argument("--service-code", default=None, metavar="NNN", help="service code with --pan (101)")
    add_output_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Synthesize and write the swipe; print what was written (masked unless --reveal)."""
    import numpy as np
    from posbridge.dsp.synth import SwipeParams, card_tracks, synthesize_swipe, test_card_tracks
    from posbridge.hardware.audio import write_wav
    from posbridge.host.cli._swipes import track_record, tracks_summary
    from posbridge.protocols.cards import luhn_valid
    from posbridge.protocols.types import Card, Direction, Track, TrackFormat

    card_fields = {"--name": args.name, "--expiry": args.expiry, "--service-code": args.service_code}
    if args.pan is None and any(value is not None for value in card_fields.values()):
        given = ", ".join(option for option, value in card_fields.items() if value is not None)
        raise UsageError(f"{given} describe the card of --pan; give --pan too")
    rng = np.random.default_rng(args.seed)
    if args.pan is not None:
        if not (args.pan.isdigit() and 12 <= len(args.pan) <= 19 and luhn_valid(args.pan)):
            raise UsageError("--pan must be a Luhn-valid 12-19 digit test number")
        service_code = "101" if args.service_code is None else args.service_code
        if not (len(service_code) == 3 and service_code.isascii() and service_code.isdigit()):
            raise UsageError("--service-code must be three digits (ISO/IEC 7813), such as 101")
        try:
            card = Card(
                pan=args.pan,
                expiry="3012" if args.expiry is None else args.expiry,
                service_code=service_code,
                name=args.name or "TEST/CARD",
                discretionary="000000",
            )
        except TrackError as error:
            raise UsageError(f"--expiry: {error}") from None
        specs = card_tracks(card)
    else:
        card, specs = test_card_tracks(rng)
    by_number = {1 if fmt is TrackFormat.ALPHA else 2: (text, fmt) for text, fmt in specs}
    numbers = args.track or ([1] if args.channels == 1 else [1, 2])
    if len(numbers) > args.channels:
        raise UsageError(f"{len(numbers)} tracks need --channels {len(numbers)}")
    chosen = [by_number[number] for number in numbers]
    try:
        params = SwipeParams(
            rate=float(args.rate),
            speed_cm_s=args.speed,
            speed_ramp=args.ramp,
            wobble=args.wobble,
            snr_db=args.snr,
            hum_db=args.hum,
            clip_level=args.clip,
            contact_ramp_from=args.contact_from,
            reverse=args.reverse,
            channels=args.channels,
        )
    except ConfigError as error:
        raise UsageError(str(error)) from error
    samples = synthesize_swipe(chosen, params, rng)
    output = Path(args.output)
    try:
        write_wav(output, samples, args.rate, WAV_FORMATS[args.bits])
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror or error}") from error
    direction = Direction.REVERSE if args.reverse else Direction.FORWARD
    tracks = [
        Track(number, fmt, text, direction=direction)
        for number, (text, fmt) in zip(numbers, chosen, strict=True)
    ]
    duration = samples.shape[0] / args.rate
    if args.json:
        emit_json(
            {
                "file": str(output),
                "rate": args.rate,
                "channels": args.channels,
                "duration_s": round(duration, 4),
                "tracks": [track_record(track, args.reveal) for track in tracks],
                "card": card.masked.to_json(),
            }
        )
    else:
        emit_line(
            f"wrote {output}: {duration:.3f} s at {args.rate} Hz, {card.masked}  "
            f"{tracks_summary(tracks, args.reveal)}"
        )
    return 0

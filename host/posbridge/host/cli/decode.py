"""``posbridge decode PATH... [--json] [--reveal]``: magstripe swipes in recordings (issue 2 item 5).

WAV files (8/16/24/32-bit PCM, 32/64-bit float, mono or stereo) or, with ``--raw --rate R
--format s16le``, headerless PCM. A directory means every ``.wav`` in it (every ``.raw``/``.pcm``
with ``--raw``). One line per swipe; with ``--json`` exactly one object per input file:
``{"file", "rate", "swipes": [{"start_s", "end_s", "channel", "tracks": [...], "card": {...}}]}``.
An unreadable file gets one line on stderr, the others are still decoded, and the exit code is 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posbridge.host.cli._output import add_output_options, emit_json, emit_line
from posbridge.protocols.cards import redact_pans
from posbridge.protocols.errors import DeviceNotFound, ParseError, UsageError

COMMAND = "decode"
HELP = "decode magstripe swipes in WAV or raw PCM recordings"

RAW_SUFFIXES = (".raw", ".pcm")


def register(parser: argparse.ArgumentParser) -> None:
    """Add the decode options."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="WAV files, raw PCM files or directories")
    parser.add_argument("--raw", action="store_true", help="the files are headerless PCM (give --rate)")
    parser.add_argument("--rate", type=int, default=None, metavar="HZ", help="sample rate of --raw input")
    parser.add_argument(
        "--format",
        default="s16le",
        metavar="FMT",
        help="sample format of --raw input: s16le (default), u8, s24le, s32le, f32le, ...",
    )
    parser.add_argument(
        "--channels", type=int, default=1, metavar="N", help="channels of --raw input (default 1)"
    )
    add_output_options(parser)
    parser.set_defaults(handler=run)


def input_files(paths: list[str], suffixes: tuple[str, ...]) -> list[Path]:
    """The files to decode: each path as given, each directory expanded to its ``suffixes`` files."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                entry for entry in path.iterdir() if entry.suffix.lower() in suffixes and entry.is_file()
            )
            if not found:
                raise UsageError(f"{path}: no {'/'.join(suffixes)} files in this directory", path=str(path))
            files.extend(found)
        else:
            files.append(path)
    return files


def _reason(error: Exception) -> str:
    if isinstance(error, DeviceNotFound):
        return "no such file or directory"
    if isinstance(error, OSError) and not isinstance(error, ParseError) and error.strerror:
        return error.strerror.lower()
    return str(error)


def run(args: argparse.Namespace) -> int:
    """Decode every input; 0 when all were readable, 2 when any was not."""
    if args.raw and not args.rate:
        raise UsageError("--raw needs --rate (the sample rate in Hz)")
    if not args.raw and (args.rate is not None or args.format != "s16le" or args.channels != 1):
        raise UsageError("--rate, --format and --channels describe --raw input; WAV files carry their own")
    import numpy as np
    from posbridge.dsp.detector import decode_recording
    from posbridge.hardware.audio import read_raw, read_wav, sample_format
    from posbridge.host.cli._swipes import decoded_swipe_record, swipe_line

    if args.raw:
        sample_format(args.format)
    files = input_files(args.paths, RAW_SUFFIXES if args.raw else (".wav",))
    failed = False
    for path in files:
        try:
            if args.raw:
                samples, rate = read_raw(path, args.rate, args.format, args.channels), int(args.rate)
            else:
                samples, rate = read_wav(path)
            swipes = decode_recording(
                samples if samples.shape[1] > 1 else np.ascontiguousarray(samples[:, 0]), rate
            )
        except (ParseError, OSError) as error:
            sys.stderr.write(f"posbridge: error: {path}: {redact_pans(_reason(error))}\n")
            failed = True
            continue
        if args.json:
            emit_json(
                {
                    "file": str(path),
                    "rate": rate,
                    "swipes": [decoded_swipe_record(swipe, args.reveal) for swipe in swipes],
                }
            )
        elif not swipes:
            emit_line(f"{path}: no swipe found")
        else:
            for swipe in swipes:
                emit_line(f"{path}: {swipe_line(swipe, args.reveal)}")
    return 2 if failed else 0

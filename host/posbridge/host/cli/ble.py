"""``posbridge ble``: record and inspect BLE advertisements (issue 6, "Build" 3).

``posbridge ble record -o scan.jsonl [--scanner URL] [--duration S]`` writes what bleak reports,
one JSON object per advertisement (:mod:`posbridge.hardware.ble.jsonl`), for ``replay://`` later.
``posbridge ble scan [--scanner URL] [--duration S] [--json]`` prints the beacons it sees.
The default scanner is ``bleak://`` (BlueZ's first powered adapter).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from posbridge.host.cli._output import add_output_options, emit_json, emit_line, positive_seconds
from posbridge.host.cli._scan import run_scan

COMMAND = "ble"
HELP = "record BLE advertisements to JSONL or list the beacons in range"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``record`` and ``scan`` subcommands."""
    actions = parser.add_subparsers(dest="ble_action", metavar="ACTION", required=True)
    record = actions.add_parser("record", help="write every advertisement to a JSONL file")
    record.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="JSONL file to write ('-': stdout)"
    )
    scan = actions.add_parser("scan", help="print each beacon sighting")
    add_output_options(scan, reveal=False)
    for sub in (record, scan):
        sub.add_argument(
            "--scanner", default="bleak://", metavar="URL", help="advertisement source (default bleak://)"
        )
        sub.add_argument(
            "--duration", type=positive_seconds, default=None, metavar="S", help="stop after S seconds"
        )
        sub.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Record or scan until the source ends, ``--duration`` passes, or Ctrl-C."""
    import asyncio
    import contextlib

    from posbridge.hardware.ble import open_scanner
    from posbridge.hardware.ble.jsonl import write_record
    from posbridge.protocols.errors import UsageError

    scanner = open_scanner(args.scanner)

    async def record(stream: Any) -> None:
        async for advertisement in scanner:
            write_record(stream, advertisement)

    async def scan() -> None:
        async for sighting in scanner.sightings():
            advertisement = sighting.advertisement
            for frame in sighting.frames:
                beacon = getattr(frame, "beacon_id", None)
                if args.json:
                    emit_json({"t": round(advertisement.t, 3), "address": advertisement.address,
                               "rssi": advertisement.rssi, "frame": type(frame).__name__,
                               "beacon": None if beacon is None else str(beacon)})  # fmt: skip
                else:
                    what = str(beacon) if beacon is not None else repr(frame)
                    where = f"{advertisement.address}  {advertisement.rssi:4d} dBm"
                    emit_line(f"{advertisement.t:14.3f}  {where}  {what}")

    async def main() -> None:
        async with scanner:
            if args.ble_action == "record":
                if args.output == "-":
                    job = record(sys.stdout)
                else:
                    try:
                        stream = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
                    except OSError as error:
                        raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
                    job = record(stream)
            else:
                job = scan()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(job, args.duration)
            finally:
                if args.ble_action == "record" and args.output != "-":
                    stream.close()

    return run_scan(
        "ble", scanner, main(), lambda stats: f"{stats.adverts} adverts, {stats.malformed} malformed"
    )

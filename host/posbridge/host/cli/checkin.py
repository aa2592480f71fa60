"""``posbridge checkin``: print who checks in at and out of the counter (issue 6, "Build" 5).

``posbridge checkin --scanner URL [--json] [--registry FILE] [--any-beacon] [--check-in MODE]``.
With ``--json`` one object per line: ``{"t", "event": "check_in"|"check_out", "beacon",
"customer", "zone", "distance_m"}``; ``t`` is the advertisement's own time (Unix seconds live, the
recording's when replaying). ``--check-in`` picks ``cautious`` (default) or ``quick``
(:data:`posbridge.host.checkin.CHECK_IN_MODES`). A recording replays as fast as the CPU allows.
A summary (adverts, beacons, malformed ignored) goes to stderr at the end.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from posbridge.host.cli._output import add_output_options, emit_json, emit_line
from posbridge.host.cli._scan import run_scan

if TYPE_CHECKING:
    from posbridge.hardware.ble.scanner import ScanStats

COMMAND = "checkin"
HELP = "check customers in and out by their BLE beacons' proximity to the counter"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the check-in options."""
    parser.add_argument(
        "--scanner", required=True, metavar="URL",
        help="bleak://hci0[?mode=passive], replay://scan.jsonl[?realtime=1] or virtual://demo",
    )  # fmt: skip
    parser.add_argument("--registry", metavar="FILE", help="customer registry (.toml or .json)")
    parser.add_argument(
        "--any-beacon", action="store_true", help="treat every beacon as registered (rigs and tests)"
    )
    parser.add_argument(
        "--check-in", choices=("cautious", "quick"), default="cautious",
        help="cautious (default): people a few metres away are not checked in, visitors within"
        " seconds; quick: visitors a little sooner, a bystander now and then",
    )  # fmt: skip
    add_output_options(parser, reveal=False)
    parser.set_defaults(handler=run)


def event_json(event: Any) -> dict[str, Any]:
    """The ``--json`` form of a check-in or check-out."""
    return {
        "t": round(event.t, 3),
        "event": event.event,
        "beacon": str(event.beacon),
        "customer": event.customer,
        "zone": event.zone.value,
        "distance_m": event.distance_m,
    }


def run(args: argparse.Namespace) -> int:
    """Track until the scanner ends (or Ctrl-C); exit 0."""
    from posbridge.hardware.ble import open_scanner
    from posbridge.host.checkin import CHECK_IN_MODES, CheckInTracker
    from posbridge.host.customers import CustomerRegistry
    from posbridge.protocols.errors import UsageError

    if args.registry is None and not args.any_beacon:
        raise UsageError("nothing to check in: pass --registry FILE or --any-beacon")
    registry = CustomerRegistry.load(args.registry) if args.registry else None
    scanner = open_scanner(args.scanner)
    tracker = CheckInTracker(registry, any_beacon=args.any_beacon, settings=CHECK_IN_MODES[args.check_in])

    def show(event: Any) -> None:
        if args.json:
            emit_json(event_json(event))
            return
        who = event.customer or "(unregistered)"
        if registry is not None and event.customer:
            who = f"{registry.get(event.customer).name} [{event.customer}]"
        distance = "" if event.distance_m is None else f" {event.distance_m:.1f} m"
        emit_line(f"{event.t:14.3f}  {event.event:<9}  {who}  {event.zone.value}{distance}  {event.beacon}")

    async def main() -> None:
        async with scanner:
            async for event in tracker.track(scanner):
                show(event)

    def counts(stats: ScanStats) -> str:
        return (
            f"{stats.adverts} adverts, {stats.beacons} beacon, "
            f"{stats.malformed} malformed ignored, {stats.restarts} scan restarts"
        )

    return run_scan("checkin", scanner, main(), counts)

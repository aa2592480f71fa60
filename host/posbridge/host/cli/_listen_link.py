"""``posbridge listen --link URL``: print what a posbridge dongle sends (issue 4, item 4).

Called by ``posbridge listen`` (:func:`run_link_listener`). With ``--json`` one object per event:
swipes as ``{"event": "swipe", "device", "seq", "ksn", "scheme", "ciphertext", "card": {masked},
"quality", "latency_ms"}``; chip reads as ``{"event": "chip", "device", "seq", "tlv_bytes"}`` (the
TLV itself, which holds the PAN, only with ``--reveal``). The host never holds clear track data:
the dongle encrypted it with DUKPT.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from posbridge.host.cli._output import emit_json, emit_line


def register_link_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``posbridge listen`` that only apply with ``--link``."""
    parser.add_argument(
        "--link-stats", action="store_true", help="with --link: print the link quality on exit (stderr)"
    )


def _swipe_record(event: Any) -> dict[str, Any]:
    return {
        "event": "swipe",
        "device": event.device,
        "seq": event.seq,
        "ksn": event.card.ksn.hex().upper(),
        "scheme": event.card.scheme,
        "ciphertext": event.card.ciphertext.hex().upper(),
        "card": event.card.masked.to_json(),
        "quality": round(event.quality, 4),
        "decoded_at": event.decoded_at,
        "latency_ms": round((event.received_at - event.decoded_at) * 1000, 2),
    }


async def _listen(args: argparse.Namespace) -> int:
    from posbridge.host.dongle import DongleSwipe, SerialDongle

    seen = 0
    dongle = SerialDongle(args.link, wait_for_device=False)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        async with dongle:
            iterator = dongle.events().__aiter__()
            while args.count is None or seen < args.count:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(iterator.__anext__(), timeout=remaining)
                except (TimeoutError, StopAsyncIteration):
                    break
                seen += 1
                if isinstance(event, DongleSwipe):
                    record = _swipe_record(event)
                    if args.json:
                        emit_json(record)
                    else:
                        emit_line(
                            f"{record['device']} #{event.seq}: {event.card.masked} KSN {record['ksn']} "
                            f"quality {event.quality:.2f} ({record['latency_ms']:.0f} ms)"
                        )
                else:
                    chip: dict[str, Any] = {
                        "event": "chip",
                        "device": event.device,
                        "seq": event.seq,
                        "tlv_bytes": len(event.tlv),
                    }
                    if args.reveal:
                        chip["tlv"] = event.tlv.hex().upper()
                    if args.json:
                        emit_json(chip)
                    else:
                        emit_line(f"{event.device} #{event.seq}: chip read")
    finally:
        if args.link_stats:
            quality = dongle.quality.to_json()
            sys.stderr.write("link quality: " + " ".join(f"{k}={v}" for k, v in quality.items()) + "\n")
    return 0


def run_link_listener(args: argparse.Namespace) -> int:
    """Listen to the dongle on ``args.link`` until ``--count`` events, ``--duration`` s or Ctrl-C.

    ``args`` are ``posbridge listen``'s, already checked by its ``run``.
    """
    if args.reveal:
        sys.stderr.write(
            "posbridge: the dongle sends only encrypted track data; --reveal shows chip TLV only\n"
        )
    return asyncio.run(_listen(args))

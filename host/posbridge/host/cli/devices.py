"""``posbridge devices [--json]``: the sound inputs a reader can be plugged into (issue 3 item 1).

Lists every input PortAudio offers with its channels and the common sample rates it accepts, and
the ``device://`` URL that ``posbridge listen --audio`` takes for it.
"""

from __future__ import annotations

import argparse

from posbridge.host.cli._output import add_output_options, emit_json, emit_line

COMMAND = "devices"
HELP = "list sound inputs (for posbridge listen --audio device://...)"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the devices options."""
    add_output_options(parser, reveal=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per input device."""
    from posbridge.hardware.audio import list_input_devices

    devices = list_input_devices()
    for device in devices:
        if args.json:
            emit_json(device.to_json())
        else:
            rates = ", ".join(
                f"{rate // 1000 if rate % 1000 == 0 else rate / 1000:g}k" for rate in device.rates
            )
            emit_line(
                f"{device.index:3d}  {device.name}  ({device.hostapi}, {device.max_channels} ch, "
                f"default {device.default_rate} Hz; rates {rates or 'none of the common ones'})  "
                f"{device.url}"
            )
    if not devices and not args.json:
        emit_line("no sound inputs found (plug in a USB sound card, or check 'arecord -l')")
    return 0

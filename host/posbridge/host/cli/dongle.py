"""``posbridge dongle``: run the Raspberry Pi dongle firmware, or provision its DUKPT key (issue 4).

``posbridge dongle --audio URL --link URL --key-file PATH [--exit-when-idle]`` decodes swipes from
the audio input, encrypts each under a fresh KSN and sends it to the host over the link until
acknowledged (:mod:`posbridge.firmware.dongle`). ``posbridge dongle provision --bdk-file FILE
--key-id HEX --key-file PATH`` derives the dongle's initial key from the BDK (test rigs) and writes
it with mode 0600.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from posbridge.host.cli._output import add_output_options, positive_seconds

COMMAND = "dongle"
HELP = "run the Raspberry Pi dongle firmware (audio -> DUKPT -> serial link), or provision its key"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the firmware options and the ``provision`` action."""
    parser.add_argument(
        "--audio", metavar="URL", help="audio input: device://hw:1,0, virtual://?swipes=3 ..."
    )
    parser.add_argument(
        "--link",
        metavar="URL",
        help="serial link to the host: /dev/ttyGS0, /dev/serial0, socket://, fault://",
    )
    parser.add_argument(
        "--key-file", metavar="PATH", help="the key file written by 'posbridge dongle provision'"
    )
    parser.add_argument(
        "--state-dir", metavar="DIR", default=None, help="KSN counter and outbox (default: <key file>.state)"
    )
    parser.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit once the audio source has ended and the host has acknowledged every swipe",
    )
    parser.add_argument(
        "--heartbeat", type=positive_seconds, default=1.0, metavar="S", help="heartbeat period (s)"
    )
    parser.add_argument(
        "--chunk-bytes", type=int, default=24, metavar="N", help="fragment payload size (0: whole frames)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each swipe's KSN and ACK to stderr")
    actions = parser.add_subparsers(dest="dongle_action", metavar="ACTION", parser_class=type(parser))
    provision = actions.add_parser("provision", help="derive the dongle's initial key from a BDK file")
    provision.add_argument("--bdk-file", required=True, metavar="FILE", help="file holding the BDK in hex")
    provision.add_argument(
        "--key-id",
        required=True,
        metavar="HEX",
        help="8-byte AES initial key ID, or a 10-byte TDES KSN (its counter bits are cleared)",
    )
    provision.add_argument("--key-file", required=True, metavar="PATH", dest="provision_key_file")
    provision.add_argument("--serial", default=None, metavar="TEXT", help="serial number the dongle reports")
    provision.add_argument("--force", action="store_true", help="replace an existing key file")
    add_output_options(provision, reveal=False)
    provision.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def _provision(args: argparse.Namespace) -> int:
    from posbridge.firmware.keystore import provision
    from posbridge.host.cli._keys import read_hex_key_file
    from posbridge.host.cli._output import emit_json, emit_line
    from posbridge.protocols.dukpt import parse_hex
    from posbridge.protocols.errors import UsageError

    key_file = Path(args.provision_key_file)
    if key_file.exists() and not args.force:
        raise UsageError(f"{key_file} exists; re-provisioning starts a new key (pass --force)")
    bdk = read_hex_key_file(args.bdk_file, "--bdk-file", "the BDK", (16, 32))
    key_id = parse_hex(args.key_id, "the key ID", (8, 10))
    key = provision(bdk, key_id, key_file, serial_number=args.serial)
    record = {
        "key_file": str(key_file),
        "scheme": key.scheme,
        "initial_ksn": key.initial_ksn.hex().upper(),
        "serial_number": key.serial_number,
    }
    if getattr(args, "json", False):
        emit_json(record)
    else:
        emit_line(
            f"provisioned {key.serial_number}: {key.scheme} DUKPT, KSN {record['initial_ksn']} -> {key_file}"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    """Provision, or run the firmware until the source ends (``--exit-when-idle``) or SIGTERM/Ctrl-C."""
    from posbridge.protocols.errors import UsageError

    if getattr(args, "dongle_action", None) == "provision":
        return _provision(args)
    missing = [name for name in ("audio", "link", "key_file") if not getattr(args, name)]
    if missing:
        options = ", ".join("--" + name.replace("_", "-") for name in missing)
        raise UsageError(f"posbridge dongle needs {options} (or: posbridge dongle provision ...)")
    if args.chunk_bytes < 0:
        raise UsageError("--chunk-bytes must be >= 0")
    import signal
    import threading

    from posbridge.firmware.dongle import DongleSettings, run_dongle
    from posbridge.host.cli import EXIT_INTERRUPTED
    from posbridge.protocols.logs import configure_logging

    configure_logging(logging.INFO if args.verbose else logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    settings = DongleSettings(heartbeat_s=args.heartbeat, chunk_bytes=args.chunk_bytes)
    try:
        run_dongle(
            args.audio,
            args.link,
            Path(args.key_file),
            state_dir=Path(args.state_dir) if args.state_dir else None,
            exit_when_idle=args.exit_when_idle,
            settings=settings,
            stop=stop,
        )
    except KeyboardInterrupt:
        stop.set()
        return EXIT_INTERRUPTED
    return 0

"""``posbridge dukpt derive --bdk HEX --ksn HEX``: the DUKPT keys of one KSN, as a lab checks a reader.

A 10-byte KSN selects TDES DUKPT (ANSI X9.24-1-2009), a 12-byte KSN AES-128 DUKPT (ANSI
X9.24-3-2017); see :mod:`posbridge.protocols.dukpt`. Prints one JSON object, keys in upper-case hex.
"""

from __future__ import annotations

import argparse
from typing import Any

from posbridge.host.cli._output import emit_json

COMMAND = "dukpt"
HELP = "derive DUKPT keys (ANSI X9.24-1 TDES, X9.24-3 AES) for a BDK and KSN"


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``derive`` and its options."""
    actions = parser.add_subparsers(dest="dukpt_action", metavar="ACTION", parser_class=type(parser))
    derive = actions.add_parser("derive", help="print the keys of one KSN as JSON")
    derive.add_argument(
        "--bdk", required=True, metavar="HEX", help="base derivation key (16, 24 or 32 bytes)"
    )
    derive.add_argument(
        "--ksn", required=True, metavar="HEX", help="10-byte TDES KSN or 12-byte AES KSN (key ID + counter)"
    )
    derive.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def derive_record(bdk_hex: str, ksn_hex: str) -> dict[str, Any]:
    """The JSON object ``posbridge dukpt derive`` prints."""
    from posbridge.host.cli._keys import BDK_LENGTHS
    from posbridge.protocols import dukpt

    ksn = dukpt.parse_hex(ksn_hex, "the KSN", (dukpt.TDES_KSN_BYTES, dukpt.AES_KSN_BYTES))
    bdk = dukpt.parse_hex(bdk_hex, "the BDK", BDK_LENGTHS)
    keys = dukpt.derive_keys(bdk, ksn)
    if isinstance(keys, dukpt.TdesDukptKeys):
        return {
            "scheme": "tdes",
            "ipek": keys.ipek.hex().upper(),
            "key": keys.key.hex().upper(),
            "pin_key": keys.pin_key.hex().upper(),
            "mac_key": keys.mac_key.hex().upper(),
            "data_key": keys.data_key.hex().upper(),
        }
    return {
        "scheme": "aes128",
        "initial_key": keys.initial_key.hex().upper(),
        "transaction_key": keys.transaction_key.hex().upper(),
        "pin_key": keys.pin_key.hex().upper(),
        "mac_key": keys.mac_key.hex().upper(),
        "data_key": keys.data_key.hex().upper(),
    }


def run(args: argparse.Namespace) -> int:
    """Print the keys; bad hex, lengths or an exhausted counter raise errors that exit 2."""
    from posbridge.protocols.errors import KsnExhaustedError, UsageError

    if getattr(args, "dukpt_action", None) != "derive":
        raise UsageError("say what to do: posbridge dukpt derive --bdk HEX --ksn HEX")
    try:
        emit_json(derive_record(args.bdk, args.ksn))
    except KsnExhaustedError as error:
        raise UsageError(f"the KSN cannot key a transaction: {error}") from error
    return 0

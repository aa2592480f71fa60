"""``posbridge emv decode HEX``: an EMV BER-TLV tree with tag names and decoded values (issue 5 item 5).

Card data (PAN, Track 2 Equivalent, cardholder name, discretionary data) is masked or hidden
unless ``--reveal``. ``--ff-padding`` skips ``FF`` bytes between objects and ``--strict-lengths``
rejects non-minimal length fields (see :mod:`posbridge.protocols.emv` for the policy). With
``--json``: one ``{"tlv": [...]}`` object, each node ``{"tag", "name", "offset", "length", "value",
"children"}``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from posbridge.host.cli._output import add_output_options, emit_json, emit_line
from posbridge.protocols.errors import UsageError

if TYPE_CHECKING:
    from posbridge.protocols.emv import Tlv

COMMAND = "emv"
HELP = "decode EMV chip data (BER-TLV) into a tree of named, decoded values"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``decode`` subcommand."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    decode = actions.add_parser("decode", help="print the TLV tree of hex data")
    decode.add_argument("hex", nargs="+", metavar="HEX", help="hex bytes (spaces allowed)")
    decode.add_argument("--ff-padding", action="store_true", help="treat FF bytes between objects as padding")
    decode.add_argument("--strict-lengths", action="store_true", help="reject non-minimal length fields")
    add_output_options(decode)
    decode.set_defaults(handler=run)
    parser.set_defaults(handler=run)


def _node(item: Tlv, reveal: bool) -> dict[str, Any]:
    from posbridge.protocols.emv import describe_value

    node: dict[str, Any] = {
        "tag": item.tag_hex,
        "name": item.info.name,
        "offset": item.offset,
        "length": len(item.value),
    }
    if item.constructed:
        node["children"] = [_node(child, reveal) for child in item.children]
    else:
        node["value"] = describe_value(item, reveal)
    if not item.minimal_length:
        node["minimal_length"] = False
    return node


def _lines(item: Tlv, reveal: bool, depth: int = 0) -> list[str]:
    from posbridge.protocols.emv import describe_value

    indent = "  " * depth
    head = f"{indent}{item.tag_hex} {item.info.name} [{len(item.value)} bytes @ {item.offset}]"
    if not item.constructed:
        return [f"{head}: {describe_value(item, reveal)}"]
    return [head] + [line for child in item.children for line in _lines(child, reveal, depth + 1)]


def run(args: argparse.Namespace) -> int:
    """Decode and print."""
    from posbridge.protocols.emv import parse_tlv

    text = "".join("".join(args.hex).split())
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise UsageError("HEX must be pairs of hexadecimal digits") from None
    if not data:
        raise UsageError("HEX is empty: give the TLV bytes to decode")
    objects = parse_tlv(data, ff_padding=args.ff_padding, strict_lengths=args.strict_lengths)
    if args.json:
        emit_json({"tlv": [_node(item, args.reveal) for item in objects]})
    else:
        for item in objects:
            for line in _lines(item, args.reveal):
                emit_line(line)
    return 0

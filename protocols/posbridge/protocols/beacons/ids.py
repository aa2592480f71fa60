"""Canonical beacon ids (DESIGN.md, "Core types"): parse, validate and normalise their text form.

``ibeacon:<uuid lower-case>:<major>:<minor>``, ``eddystone-uid:<namespace hex>:<instance hex>``,
``altbeacon:<id1 hex>:<id2>:<id3>``, ``eddystone-eid:<eid hex>``.
"""

from __future__ import annotations

import re

from posbridge.protocols.beacons.frames import format_uuid
from posbridge.protocols.errors import ParseError
from posbridge.protocols.types import BeaconId

_HEX = re.compile(r"[0-9a-f]+")


def _hex(text: str, digits: int, what: str, original: str) -> str:
    value = text.replace("-", "").lower() if digits == 32 else text.lower()
    if len(value) != digits or not _HEX.fullmatch(value):
        raise ParseError(f"beacon id {original!r}: {what} must be {digits} hex digits", beacon=original)
    return value


def _u16(text: str, what: str, original: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFF:
        raise ParseError(f"beacon id {original!r}: {what} must be 0-65535", beacon=original)
    return int(text)


def canonical_beacon_id(text: str) -> BeaconId:
    """Parse a beacon id written by a person (any case, UUIDs with or without dashes) into canonical form."""
    parts = text.strip().split(":")
    scheme = parts[0].lower()
    if scheme == "ibeacon" and len(parts) == 4:
        uuid = format_uuid(bytes.fromhex(_hex(parts[1], 32, "the UUID", text)))
        return BeaconId(f"ibeacon:{uuid}:{_u16(parts[2], 'major', text)}:{_u16(parts[3], 'minor', text)}")
    if scheme == "altbeacon" and len(parts) == 4:
        id1 = _hex(parts[1], 32, "id1", text)
        return BeaconId(f"altbeacon:{id1}:{_u16(parts[2], 'id2', text)}:{_u16(parts[3], 'id3', text)}")
    if scheme == "eddystone-uid" and len(parts) == 3:
        namespace = _hex(parts[1], 20, "the namespace", text)
        return BeaconId(f"eddystone-uid:{namespace}:{_hex(parts[2], 12, 'the instance', text)}")
    if scheme == "eddystone-eid" and len(parts) == 2:
        return BeaconId(f"eddystone-eid:{_hex(parts[1], 16, 'the EID', text)}")
    raise ParseError(
        f"beacon id {text!r} is not ibeacon:<uuid>:<major>:<minor>, altbeacon:<id1>:<id2>:<id3>, "
        "eddystone-uid:<namespace>:<instance> or eddystone-eid:<eid>",
        beacon=text,
    )

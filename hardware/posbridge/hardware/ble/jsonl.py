"""The scan recording format: one JSON object per advertisement, one per line (JSON Lines).

``{"t": <seconds>, "address": "AA:BB:..", "rssi": -60, "name": null, "tx_power": null,
"manufacturer_data": {"<company id decimal>": "<hex>"}, "service_data": {"<128-bit uuid>": "<hex>"},
"service_uuids": [...]}`` -- what bleak reports, as ``posbridge ble record`` writes it and
``replay://`` reads it. Both sides use this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from posbridge.protocols.errors import ParseError
from posbridge.protocols.types import Advertisement


def advertisement_to_json(advertisement: Advertisement) -> dict[str, Any]:
    """The recording form of one advertisement."""
    return {
        "t": round(advertisement.t, 6),
        "address": advertisement.address,
        "rssi": advertisement.rssi,
        "name": advertisement.name,
        "tx_power": advertisement.tx_power,
        "manufacturer_data": {
            str(key): value.hex() for key, value in advertisement.manufacturer_data.items()
        },
        "service_data": {key: value.hex() for key, value in advertisement.service_data.items()},
        "service_uuids": list(advertisement.service_uuids),
    }


def dumps(advertisement: Advertisement) -> str:
    """One line of a recording, without the newline."""
    return json.dumps(advertisement_to_json(advertisement), separators=(",", ":"))


def _bytes_map(value: object, field: str, line: int) -> dict[str, bytes]:
    if not isinstance(value, dict):
        raise ParseError(f"scan record line {line}: {field} must be an object", line=line, field=field)
    try:
        return {str(key): bytes.fromhex(text) for key, text in value.items()}
    except (TypeError, ValueError):
        raise ParseError(
            f"scan record line {line}: {field} values must be hex", line=line, field=field
        ) from None


def advertisement_from_json(record: object, line: int = 0) -> Advertisement:
    """Rebuild an advertisement from its recording form; :class:`ParseError` names the bad field."""
    if not isinstance(record, dict):
        raise ParseError(f"scan record line {line}: not a JSON object", line=line)
    try:
        t, address, rssi = float(record["t"]), record["address"], record["rssi"]
    except KeyError as missing:
        raise ParseError(f"scan record line {line}: missing {missing}", line=line) from None
    except (TypeError, ValueError):
        raise ParseError(f"scan record line {line}: t must be a number", line=line, field="t") from None
    if not isinstance(address, str) or not isinstance(rssi, int) or isinstance(rssi, bool):
        raise ParseError(f"scan record line {line}: address must be text and rssi an integer", line=line)
    name, tx_power = record.get("name"), record.get("tx_power")
    if name is not None and not isinstance(name, str):
        raise ParseError(f"scan record line {line}: name must be text or null", line=line, field="name")
    if tx_power is not None and (not isinstance(tx_power, int) or isinstance(tx_power, bool)):
        raise ParseError(f"scan record line {line}: tx_power must be an integer", line=line, field="tx_power")
    manufacturer = _bytes_map(record.get("manufacturer_data", {}), "manufacturer_data", line)
    try:
        manufacturer_data = {int(key): value for key, value in manufacturer.items()}
    except ValueError:
        raise ParseError(
            f"scan record line {line}: manufacturer_data keys must be decimal company ids", line=line
        ) from None
    uuids = record.get("service_uuids", [])
    if not isinstance(uuids, list) or not all(isinstance(uuid, str) for uuid in uuids):
        raise ParseError(f"scan record line {line}: service_uuids must be a list of text", line=line)
    return Advertisement(
        t=t,
        address=address,
        rssi=rssi,
        name=name,
        tx_power=tx_power,
        manufacturer_data=manufacturer_data,
        service_data=_bytes_map(record.get("service_data", {}), "service_data", line),
        service_uuids=tuple(uuids),
    )


def loads(text: str, line: int = 0) -> Advertisement:
    """Parse one line of a recording."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ParseError(f"scan record line {line}: not JSON ({error.msg})", line=line) from None
    return advertisement_from_json(record, line)


def read_records(stream: IO[str]) -> Iterator[Advertisement]:
    """Every advertisement of a recording (blank lines skipped).

    Raises :class:`ParseError` for a line that is not an advertisement or not UTF-8 text.
    """
    lines = iter(stream)
    number = 0
    while True:
        number += 1
        try:
            text = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise ParseError(f"scan record line {number}: not UTF-8 text", line=number) from None
        if text.strip():
            yield loads(text, number)


def write_record(stream: IO[str], advertisement: Advertisement) -> None:
    """Append one advertisement to a recording."""
    stream.write(dumps(advertisement) + "\n")

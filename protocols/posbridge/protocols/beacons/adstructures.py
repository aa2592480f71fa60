"""Raw BLE advertising data (AD structures) to and from bleak's ``AdvertisementData`` shape.

Bluetooth Core Specification v5.4, Vol 3, Part C, §11 (advertising data format: a sequence of
``length, type, data`` structures) and the Core Specification Supplement (CSS) v11, Part A, §1
(data types). Handled types: Flags (0x01), 16/32/128-bit service UUID lists (0x02-0x07), shortened
and complete local name (0x08, 0x09), TX power level (0x0A), service data for 16/32/128-bit UUIDs
(0x16, 0x20, 0x21) and manufacturer specific data (0xFF). Short UUIDs are expanded with the
Bluetooth base UUID, as BlueZ and bleak do. A zero length byte ends the significant part (padding
follows); a final structure that runs past the end of the data is dropped, as scanners do with the
garbage some controllers append.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from posbridge.protocols.beacons.frames import (
    EDDYSTONE_UUID16,
    AltBeacon,
    BeaconFrame,
    IBeacon,
    format_uuid,
    parse_advertisement,
)
from posbridge.protocols.errors import AdvertisementError
from posbridge.protocols.types import Advertisement

AD_FLAGS = 0x01
AD_UUID16_INCOMPLETE = 0x02
AD_UUID16_COMPLETE = 0x03
AD_UUID32_INCOMPLETE = 0x04
AD_UUID32_COMPLETE = 0x05
AD_UUID128_INCOMPLETE = 0x06
AD_UUID128_COMPLETE = 0x07
AD_NAME_SHORT = 0x08
AD_NAME_COMPLETE = 0x09
AD_TX_POWER = 0x0A
AD_SERVICE_DATA_UUID16 = 0x16
AD_SERVICE_DATA_UUID32 = 0x20
AD_SERVICE_DATA_UUID128 = 0x21
AD_MANUFACTURER = 0xFF

FLAGS_LE_GENERAL_NO_BREDR = 0x06
BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def uuid16(value: int) -> str:
    """A 16-bit (or 32-bit) SIG UUID expanded with the Bluetooth base UUID, lower case."""
    return f"{value:08x}{BASE_UUID_SUFFIX}"


def _uuid128_le(raw: bytes) -> str:
    return format_uuid(raw[::-1])


def _uuid128_le_bytes(uuid: str) -> bytes:
    return bytes.fromhex(uuid.replace("-", ""))[::-1]


def _short_uuid(uuid: str) -> int | None:
    if uuid.endswith(BASE_UUID_SUFFIX) and uuid.startswith("0000"):
        return int(uuid[4:8], 16)
    return None


def _need(data: bytes, size: int, ad_type: int) -> None:
    if len(data) < size:
        raise AdvertisementError(
            f"AD structure 0x{ad_type:02x} holds {len(data)} bytes, needs at least {size}",
            reason="truncated",
            ad_type=ad_type,
            length=len(data),
        )


def advertisement_from_ad(
    raw: bytes, *, t: float = 0.0, address: str = "", rssi: int = -127
) -> Advertisement:
    """Decode raw advertising data (advertisement plus scan response, concatenated) into bleak's shape.

    Raises :class:`AdvertisementError` when a structure within bounds is malformed.
    """
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    uuids: list[str] = []
    name: str | None = None
    tx_power: int | None = None
    offset = 0
    while offset < len(raw):
        length = raw[offset]
        if length == 0 or offset + 1 + length > len(raw):
            break
        ad_type = raw[offset + 1]
        data = raw[offset + 2 : offset + 1 + length]
        offset += 1 + length
        if ad_type in (AD_UUID16_INCOMPLETE, AD_UUID16_COMPLETE):
            if len(data) % 2:
                raise AdvertisementError(
                    "16-bit UUID list has an odd length", reason="length", ad_type=ad_type
                )
            uuids.extend(uuid16(value) for (value,) in struct.iter_unpack("<H", data))
        elif ad_type in (AD_UUID32_INCOMPLETE, AD_UUID32_COMPLETE):
            if len(data) % 4:
                raise AdvertisementError("32-bit UUID list length is not a multiple of 4", reason="length")
            uuids.extend(uuid16(value) for (value,) in struct.iter_unpack("<I", data))
        elif ad_type in (AD_UUID128_INCOMPLETE, AD_UUID128_COMPLETE):
            if len(data) % 16:
                raise AdvertisementError("128-bit UUID list length is not a multiple of 16", reason="length")
            uuids.extend(_uuid128_le(data[i : i + 16]) for i in range(0, len(data), 16))
        elif ad_type in (AD_NAME_SHORT, AD_NAME_COMPLETE):
            if ad_type == AD_NAME_COMPLETE or name is None:
                name = data.decode("utf-8", errors="replace")
        elif ad_type == AD_TX_POWER:
            _need(data, 1, ad_type)
            tx_power = struct.unpack_from("<b", data)[0]
        elif ad_type == AD_SERVICE_DATA_UUID16:
            _need(data, 2, ad_type)
            service_data[uuid16(struct.unpack_from("<H", data)[0])] = data[2:]
        elif ad_type == AD_SERVICE_DATA_UUID32:
            _need(data, 4, ad_type)
            service_data[uuid16(struct.unpack_from("<I", data)[0])] = data[4:]
        elif ad_type == AD_SERVICE_DATA_UUID128:
            _need(data, 16, ad_type)
            service_data[_uuid128_le(data[:16])] = data[16:]
        elif ad_type == AD_MANUFACTURER:
            _need(data, 2, ad_type)
            manufacturer[struct.unpack_from("<H", data)[0]] = data[2:]
    return Advertisement(
        t=t,
        address=address,
        rssi=rssi,
        name=name,
        tx_power=tx_power,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=tuple(uuids),
    )


def parse_ad_structures(raw: bytes) -> tuple[BeaconFrame, ...]:
    """Every beacon frame in raw advertising data (see :func:`frames.parse_advertisement`)."""
    return parse_advertisement(advertisement_from_ad(raw))


def _structure(ad_type: int, data: bytes) -> bytes:
    if len(data) > 254:
        raise AdvertisementError(
            f"AD structure 0x{ad_type:02x} too long ({len(data)} bytes)", reason="length"
        )
    return bytes((len(data) + 1, ad_type)) + data


def build_advertisement(
    frames: Sequence[BeaconFrame],
    *,
    t: float = 0.0,
    address: str = "",
    rssi: int = -127,
    name: str | None = None,
    tx_power: int | None = None,
) -> Advertisement:
    """An advertisement in bleak's shape carrying ``frames`` (at most one Eddystone frame)."""
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    uuids: tuple[str, ...] = ()
    for frame in frames:
        if isinstance(frame, IBeacon | AltBeacon):
            manufacturer[frame.company_id] = frame.encode()
        else:
            if service_data:
                raise AdvertisementError("one advertisement carries one Eddystone frame", reason="value")
            service_data[uuid16(EDDYSTONE_UUID16)] = frame.encode()
            uuids = (uuid16(EDDYSTONE_UUID16),)
    return Advertisement(
        t=t,
        address=address,
        rssi=rssi,
        name=name,
        tx_power=tx_power,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=uuids,
    )


def build_ad_structures(
    advertisement: Advertisement, *, flags: int | None = FLAGS_LE_GENERAL_NO_BREDR
) -> bytes:
    """Raw advertising data for a bleak-shaped advertisement (inverse of :func:`advertisement_from_ad`)."""
    parts: list[bytes] = []
    if flags is not None:
        parts.append(_structure(AD_FLAGS, bytes((flags,))))
    if advertisement.service_uuids:
        short = [value for uuid in advertisement.service_uuids if (value := _short_uuid(uuid)) is not None]
        if len(short) == len(advertisement.service_uuids):
            parts.append(_structure(AD_UUID16_COMPLETE, b"".join(struct.pack("<H", v) for v in short)))
        else:
            raw = b"".join(_uuid128_le_bytes(uuid) for uuid in advertisement.service_uuids)
            parts.append(_structure(AD_UUID128_COMPLETE, raw))
    for uuid, payload in advertisement.service_data.items():
        value = _short_uuid(uuid)
        if value is not None:
            parts.append(_structure(AD_SERVICE_DATA_UUID16, struct.pack("<H", value) + payload))
        else:
            parts.append(_structure(AD_SERVICE_DATA_UUID128, _uuid128_le_bytes(uuid) + payload))
    for company_id, payload in advertisement.manufacturer_data.items():
        parts.append(_structure(AD_MANUFACTURER, struct.pack("<H", company_id) + payload))
    if advertisement.name is not None:
        parts.append(_structure(AD_NAME_COMPLETE, advertisement.name.encode("utf-8")))
    if advertisement.tx_power is not None:
        parts.append(_structure(AD_TX_POWER, struct.pack("<b", advertisement.tx_power)))
    return b"".join(parts)

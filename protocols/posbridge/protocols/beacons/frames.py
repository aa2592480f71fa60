"""Beacon frames carried in BLE advertisements: iBeacon, AltBeacon and Eddystone.

Each frame is a frozen dataclass with ``encode()`` (the payload as bleak reports it: manufacturer
data without the 2 company-id bytes, or Eddystone service data without the 2 UUID bytes) and a
parser that is its exact inverse. Layouts, all multi-byte fields big-endian:

- iBeacon (Apple "Proximity Beacon Specification" R1): company 0x004C, ``02 15``, 16-byte proximity
  UUID, major u16, minor u16, measured power at 1 m (i8 dBm).
- AltBeacon (AltBeacon spec 1.0): any company, ``BE AC``, 20-byte beacon id (id1 16 bytes, id2 u16,
  id3 u16), reference RSSI at 1 m (i8 dBm), manufacturer reserved (u8).
- Eddystone (google/eddystone protocol specification), service data of UUID 0xFEAA:
  UID ``00`` (ranging i8 at 0 m, namespace 10 bytes, instance 6 bytes, 2 RFU bytes, optional),
  URL ``10`` (ranging, scheme prefix code, URL with expansion codes),
  TLM ``20 00`` (battery mV u16, temperature signed 8.8 °C with 0x8000 = unsupported, advertising
  count u32, time since power-on u32 in 0.1 s), encrypted TLM ``20 01`` (12 bytes eTLM, salt u16,
  MIC u16), EID ``30`` (ranging, 8-byte ephemeral id).

Eddystone's ranging byte is the power received at 0 m; the power at 1 m is 41 dB lower. Payloads
under Apple's company id that are not iBeacons (Continuity traffic) are not beacons and are ignored;
a payload that claims a beacon format but breaks it raises :class:`AdvertisementError` with a
``reason`` field (``truncated``, ``length``, ``prefix``, ``value``, ``frame-type``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from posbridge.protocols.errors import AdvertisementError
from posbridge.protocols.types import Advertisement, BeaconId

APPLE_COMPANY_ID = 0x004C
RADIUS_NETWORKS_COMPANY_ID = 0x0118
EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
EDDYSTONE_UUID16 = 0xFEAA
EDDYSTONE_0M_TO_1M_DB = 41

_IBEACON_PREFIX = b"\x02\x15"
_ALTBEACON_PREFIX = b"\xbe\xac"
_IBEACON = struct.Struct(">2s16sHHb")
_ALTBEACON = struct.Struct(">2s16sHHbB")
_EDDYSTONE_UID = struct.Struct(">Bb10s6s")
_EDDYSTONE_TLM = struct.Struct(">BBHhII")
_EDDYSTONE_ETLM = struct.Struct(">BB12sHH")
_EDDYSTONE_EID = struct.Struct(">Bb8s")

URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
URL_EXPANSIONS = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)  # fmt: skip
_MAX_URL_BYTES = 17
_TLM_TEMPERATURE_UNSUPPORTED = -0x8000


def format_uuid(raw: bytes) -> str:
    """16 bytes as a lower-case 8-4-4-4-12 UUID."""
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _uuid_bytes(text: str, field: str) -> bytes:
    try:
        raw = bytes.fromhex(text.replace("-", ""))
    except ValueError as error:
        raise AdvertisementError(f"{field} is not hex: {text!r}", reason="value", field=field) from error
    if len(raw) != 16:
        raise AdvertisementError(f"{field} must be 16 bytes, got {len(raw)}", reason="value", field=field)
    return raw


def _fixed_hex(text: str, size: int, field: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError as error:
        raise AdvertisementError(f"{field} is not hex: {text!r}", reason="value", field=field) from error
    if len(raw) != size:
        raise AdvertisementError(f"{field} must be {size} bytes, got {len(raw)}", reason="value", field=field)
    return raw


def _length_error(name: str, expected: str, got: int) -> AdvertisementError:
    reason = "truncated" if expected.isdigit() and got < int(expected) else "length"
    return AdvertisementError(
        f"{name} payload is {got} bytes, expected {expected}", reason=reason, frame=name, length=got
    )


@dataclass(frozen=True, slots=True)
class IBeacon:
    """An Apple iBeacon: ``uuid`` lower-case 8-4-4-4-12, ``measured_power`` dBm at 1 m."""

    uuid: str
    major: int
    minor: int
    measured_power: int

    company_id: ClassVar[int] = APPLE_COMPANY_ID

    @property
    def beacon_id(self) -> BeaconId:
        """``ibeacon:<uuid>:<major>:<minor>``."""
        return BeaconId(f"ibeacon:{self.uuid}:{self.major}:{self.minor}")

    @property
    def power_1m(self) -> int:
        """Advertised RSSI at 1 m, dBm."""
        return self.measured_power

    def encode(self) -> bytes:
        """Manufacturer data for company 0x004C (without the company id)."""
        return _IBEACON.pack(
            _IBEACON_PREFIX, _uuid_bytes(self.uuid, "uuid"), self.major, self.minor, self.measured_power
        )

    @classmethod
    def decode(cls, payload: bytes) -> IBeacon:
        """Parse Apple manufacturer data that starts with ``02``."""
        if payload[:2] != _IBEACON_PREFIX:
            raise AdvertisementError(
                f"iBeacon prefix is {payload[:2].hex()}, expected 0215", reason="prefix", frame="ibeacon"
            )
        if len(payload) != _IBEACON.size:
            raise _length_error("ibeacon", str(_IBEACON.size), len(payload))
        _, uuid, major, minor, power = _IBEACON.unpack(payload)
        return cls(format_uuid(uuid), major, minor, power)


@dataclass(frozen=True, slots=True)
class AltBeacon:
    """An AltBeacon: ``id1`` 32 lower-case hex digits, ``reference_rssi`` dBm at 1 m."""

    id1: str
    id2: int
    id3: int
    reference_rssi: int
    mfg_reserved: int = 0
    manufacturer: int = RADIUS_NETWORKS_COMPANY_ID

    @property
    def company_id(self) -> int:
        """The manufacturer's Bluetooth SIG company id the frame is advertised under."""
        return self.manufacturer

    @property
    def id1_uuid(self) -> str:
        """``id1`` in UUID form."""
        return format_uuid(bytes.fromhex(self.id1))

    @property
    def beacon_id(self) -> BeaconId:
        """``altbeacon:<id1 hex>:<id2>:<id3>``."""
        return BeaconId(f"altbeacon:{self.id1}:{self.id2}:{self.id3}")

    @property
    def power_1m(self) -> int:
        """Advertised RSSI at 1 m, dBm."""
        return self.reference_rssi

    def encode(self) -> bytes:
        """Manufacturer data for ``manufacturer`` (without the company id)."""
        return _ALTBEACON.pack(
            _ALTBEACON_PREFIX,
            _fixed_hex(self.id1, 16, "id1"),
            self.id2,
            self.id3,
            self.reference_rssi,
            self.mfg_reserved,
        )

    @classmethod
    def decode(cls, payload: bytes, manufacturer: int) -> AltBeacon:
        """Parse manufacturer data that starts with ``BE AC``."""
        if len(payload) != _ALTBEACON.size:
            raise _length_error("altbeacon", str(_ALTBEACON.size), len(payload))
        _, id1, id2, id3, rssi, reserved = _ALTBEACON.unpack(payload)
        return cls(id1.hex(), id2, id3, rssi, reserved, manufacturer)


@dataclass(frozen=True, slots=True)
class EddystoneUid:
    """Eddystone-UID: ``namespace`` 20 hex digits, ``instance`` 12, ``tx_power_0m`` dBm at 0 m."""

    tx_power_0m: int
    namespace: str
    instance: str
    has_rfu: bool = True

    @property
    def beacon_id(self) -> BeaconId:
        """``eddystone-uid:<namespace>:<instance>``."""
        return BeaconId(f"eddystone-uid:{self.namespace}:{self.instance}")

    @property
    def power_1m(self) -> int:
        """RSSI at 1 m, dBm (ranging data minus 41 dB)."""
        return self.tx_power_0m - EDDYSTONE_0M_TO_1M_DB

    def encode(self) -> bytes:
        """Service data for UUID 0xFEAA."""
        body = _EDDYSTONE_UID.pack(
            0x00,
            self.tx_power_0m,
            _fixed_hex(self.namespace, 10, "namespace"),
            _fixed_hex(self.instance, 6, "instance"),
        )
        return body + b"\x00\x00" if self.has_rfu else body

    @classmethod
    def decode(cls, payload: bytes) -> EddystoneUid:
        """Parse a UID frame (18 bytes, or 20 with the RFU bytes)."""
        if len(payload) not in (18, 20):
            raise _length_error("eddystone-uid", "18 or 20", len(payload))
        _, power, namespace, instance = _EDDYSTONE_UID.unpack_from(payload)
        return cls(power, namespace.hex(), instance.hex(), len(payload) == 20)


@dataclass(frozen=True, slots=True)
class EddystoneUrl:
    """Eddystone-URL: the expanded ``url`` and ``tx_power_0m`` dBm at 0 m."""

    tx_power_0m: int
    url: str

    def encode(self) -> bytes:
        """Service data for UUID 0xFEAA, the URL compressed with the scheme and expansion codes."""
        return bytes((0x10, self.tx_power_0m & 0xFF)) + encode_url(self.url)

    @classmethod
    def decode(cls, payload: bytes) -> EddystoneUrl:
        """Parse a URL frame."""
        if len(payload) < 3:
            raise _length_error("eddystone-url", "3", len(payload))
        if len(payload) > 3 + _MAX_URL_BYTES:
            raise _length_error("eddystone-url", f"at most {3 + _MAX_URL_BYTES}", len(payload))
        return cls(struct.unpack_from(">b", payload, 1)[0], decode_url(payload[2:]))


@dataclass(frozen=True, slots=True)
class EddystoneTlm:
    """Unencrypted Eddystone-TLM (version 0).

    ``vbatt_mv`` battery in mV (0 = not battery powered), ``temp_c`` °C or None when unsupported,
    ``adv_cnt`` frames sent since power-on, ``sec_cnt`` time since power-on in 0.1 s.
    """

    vbatt_mv: int
    temp_c: float | None
    adv_cnt: int
    sec_cnt: int

    version: ClassVar[int] = 0

    @property
    def uptime_s(self) -> float:
        """Time since power-on, seconds."""
        return self.sec_cnt / 10

    def encode(self) -> bytes:
        """Service data for UUID 0xFEAA."""
        temperature = _TLM_TEMPERATURE_UNSUPPORTED if self.temp_c is None else round(self.temp_c * 256)
        return _EDDYSTONE_TLM.pack(0x20, 0x00, self.vbatt_mv, temperature, self.adv_cnt, self.sec_cnt)

    @classmethod
    def decode(cls, payload: bytes) -> EddystoneTlm:
        """Parse a version-0 TLM frame (14 bytes)."""
        if len(payload) != _EDDYSTONE_TLM.size:
            raise _length_error("eddystone-tlm", str(_EDDYSTONE_TLM.size), len(payload))
        _, _, vbatt, temperature, adv_cnt, sec_cnt = _EDDYSTONE_TLM.unpack(payload)
        temp_c = None if temperature == _TLM_TEMPERATURE_UNSUPPORTED else temperature / 256
        return cls(vbatt, temp_c, adv_cnt, sec_cnt)


@dataclass(frozen=True, slots=True)
class EddystoneEtlm:
    """Encrypted Eddystone-TLM (version 1): recognised, kept opaque (needs the EID identity key)."""

    etlm: bytes
    salt: int
    mic: int

    version: ClassVar[int] = 1

    def encode(self) -> bytes:
        """Service data for UUID 0xFEAA."""
        return _EDDYSTONE_ETLM.pack(0x20, 0x01, self.etlm, self.salt, self.mic)

    @classmethod
    def decode(cls, payload: bytes) -> EddystoneEtlm:
        """Parse a version-1 TLM frame (18 bytes)."""
        if len(payload) != _EDDYSTONE_ETLM.size:
            raise _length_error("eddystone-etlm", str(_EDDYSTONE_ETLM.size), len(payload))
        _, _, etlm, salt, mic = _EDDYSTONE_ETLM.unpack(payload)
        return cls(etlm, salt, mic)


@dataclass(frozen=True, slots=True)
class EddystoneEid:
    """Eddystone-EID: the 8-byte rotating ``eid`` and ``tx_power_0m`` dBm at 0 m."""

    tx_power_0m: int
    eid: bytes

    @property
    def beacon_id(self) -> BeaconId:
        """``eddystone-eid:<eid hex>`` (changes every rotation period; see ``eid.EidResolver``)."""
        return BeaconId(f"eddystone-eid:{self.eid.hex()}")

    @property
    def power_1m(self) -> int:
        """RSSI at 1 m, dBm (ranging data minus 41 dB)."""
        return self.tx_power_0m - EDDYSTONE_0M_TO_1M_DB

    def encode(self) -> bytes:
        """Service data for UUID 0xFEAA."""
        if len(self.eid) != 8:
            raise AdvertisementError(f"eid must be 8 bytes, got {len(self.eid)}", reason="value", field="eid")
        return _EDDYSTONE_EID.pack(0x30, self.tx_power_0m, self.eid)

    @classmethod
    def decode(cls, payload: bytes) -> EddystoneEid:
        """Parse an EID frame (10 bytes)."""
        if len(payload) != _EDDYSTONE_EID.size:
            raise _length_error("eddystone-eid", str(_EDDYSTONE_EID.size), len(payload))
        _, power, eid = _EDDYSTONE_EID.unpack(payload)
        return cls(power, eid)


ManufacturerFrame = IBeacon | AltBeacon
EddystoneFrame = EddystoneUid | EddystoneUrl | EddystoneTlm | EddystoneEtlm | EddystoneEid
BeaconFrame = ManufacturerFrame | EddystoneFrame
IdentityFrame = IBeacon | AltBeacon | EddystoneUid | EddystoneEid
"""Frames that name a beacon (have ``beacon_id`` and ``power_1m``)."""


def decode_url(encoded: bytes) -> str:
    """Expand an Eddystone-URL scheme byte and body into the URL text."""
    if not encoded:
        raise AdvertisementError(
            "eddystone-url has no scheme byte", reason="truncated", frame="eddystone-url"
        )
    scheme = encoded[0]
    if scheme >= len(URL_SCHEMES):
        raise AdvertisementError(
            f"eddystone-url scheme code 0x{scheme:02x} is reserved", reason="value", frame="eddystone-url"
        )
    parts = [URL_SCHEMES[scheme]]
    for code in encoded[1:]:
        if code < len(URL_EXPANSIONS):
            parts.append(URL_EXPANSIONS[code])
        elif 0x20 < code < 0x7F:
            parts.append(chr(code))
        else:
            raise AdvertisementError(
                f"eddystone-url byte 0x{code:02x} is reserved", reason="value", frame="eddystone-url"
            )
    return "".join(parts)


def encode_url(url: str) -> bytes:
    """Compress a URL with the Eddystone scheme prefixes and expansion codes (longest match first)."""
    for code, scheme in sorted(enumerate(URL_SCHEMES), key=lambda item: -len(item[1])):
        if url.startswith(scheme):
            encoded = bytearray((code,))
            rest = url[len(scheme) :]
            break
    else:
        raise AdvertisementError(f"URL {url!r} has no Eddystone scheme", reason="value", field="url")
    expansions = sorted(enumerate(URL_EXPANSIONS), key=lambda item: -len(item[1]))
    while rest:
        for code, text in expansions:
            if rest.startswith(text):
                encoded.append(code)
                rest = rest[len(text) :]
                break
        else:
            char = rest[0]
            if not 0x20 < ord(char) < 0x7F:
                raise AdvertisementError(
                    f"URL character {char!r} cannot be encoded", reason="value", field="url"
                )
            encoded.append(ord(char))
            rest = rest[1:]
    if len(encoded) - 1 > _MAX_URL_BYTES:
        raise AdvertisementError(
            f"URL encodes to {len(encoded) - 1} bytes, at most {_MAX_URL_BYTES} fit",
            reason="length",
            field="url",
        )
    return bytes(encoded)


def decode_eddystone(payload: bytes) -> EddystoneFrame:
    """Parse Eddystone service data (UUID 0xFEAA, without the UUID bytes)."""
    if len(payload) < 2:
        raise AdvertisementError(
            f"eddystone payload is {len(payload)} bytes, too short for a frame", reason="truncated",
            frame="eddystone", length=len(payload),
        )  # fmt: skip
    frame_type = payload[0]
    if frame_type == 0x00:
        return EddystoneUid.decode(payload)
    if frame_type == 0x10:
        return EddystoneUrl.decode(payload)
    if frame_type == 0x20:
        version = payload[1]
        if version == 0x00:
            return EddystoneTlm.decode(payload)
        if version == 0x01:
            return EddystoneEtlm.decode(payload)
        raise AdvertisementError(
            f"eddystone-tlm version {version} is unknown", reason="frame-type", frame="eddystone-tlm"
        )
    if frame_type == 0x30:
        return EddystoneEid.decode(payload)
    raise AdvertisementError(
        f"eddystone frame type 0x{frame_type:02x} is unknown", reason="frame-type", frame="eddystone"
    )


def decode_manufacturer(company_id: int, payload: bytes) -> ManufacturerFrame | None:
    """Parse manufacturer data (without the company id); None when it is not a beacon format."""
    if payload[:2] == _ALTBEACON_PREFIX:
        return AltBeacon.decode(payload, company_id)
    if company_id == APPLE_COMPANY_ID and payload[:1] == b"\x02":
        return IBeacon.decode(payload)
    return None


def parse_advertisement(advertisement: Advertisement) -> tuple[BeaconFrame, ...]:
    """Every beacon frame in one advertisement (empty when it carries none).

    Raises :class:`AdvertisementError` when a payload claims a beacon format and breaks it; the
    caller ignores and counts such adverts.
    """
    return parse_payloads(advertisement.manufacturer_data, advertisement.service_data)


def parse_payloads(
    manufacturer_data: Mapping[int, bytes], service_data: Mapping[str, bytes]
) -> tuple[BeaconFrame, ...]:
    """Beacon frames from bleak-shaped manufacturer data and service data."""
    frames: list[BeaconFrame] = []
    for company_id, payload in manufacturer_data.items():
        frame = decode_manufacturer(company_id, payload)
        if frame is not None:
            frames.append(frame)
    eddystone = service_data.get(EDDYSTONE_SERVICE_UUID)
    if eddystone is not None:
        frames.append(decode_eddystone(eddystone))
    return tuple(frames)


def identity_frame(frames: tuple[BeaconFrame, ...]) -> IdentityFrame | None:
    """The first frame that names a beacon (iBeacon, AltBeacon, Eddystone-UID or -EID), if any."""
    for frame in frames:
        if isinstance(frame, IBeacon | AltBeacon | EddystoneUid | EddystoneEid):
            return frame
    return None


@dataclass(frozen=True, slots=True)
class Sighting:
    """One advertisement and the beacon frames it carries (what a scanner hands to check-in)."""

    advertisement: Advertisement
    frames: tuple[BeaconFrame, ...]

    @classmethod
    def of(cls, advertisement: Advertisement) -> Sighting | None:
        """The sighting ``advertisement`` makes, or ``None`` when it carries no beacon frame.

        Raises :class:`AdvertisementError` when a beacon payload in it is malformed.
        """
        frames = parse_advertisement(advertisement)
        return cls(advertisement, frames) if frames else None

    @property
    def identity(self) -> IdentityFrame | None:
        """The frame that names the beacon, if any."""
        return identity_frame(self.frames)


def beacon_sightings(adverts: Iterable[Advertisement]) -> Iterator[Sighting]:
    """The sightings in a stream of advertisements, skipping malformed ones and those without a beacon."""
    for advertisement in adverts:
        try:
            sighting = Sighting.of(advertisement)
        except AdvertisementError:
            continue
        if sighting is not None:
            yield sighting

"""BLE beacon formats: iBeacon, AltBeacon, Eddystone (UID, URL, TLM, eTLM, EID) and raw AD structures.

Parse and build from bleak's ``AdvertisementData`` shape (:class:`posbridge.protocols.types.Advertisement`)
or from raw advertising data; canonical :class:`BeaconId` text; Eddystone-EID computation and
resolution. See the submodules for the specification clauses.
"""

from posbridge.protocols.beacons.adstructures import (
    advertisement_from_ad,
    build_ad_structures,
    build_advertisement,
    parse_ad_structures,
    uuid16,
)
from posbridge.protocols.beacons.eid import EidRegistration, EidResolver, compute_eid, temporary_key
from posbridge.protocols.beacons.frames import (
    APPLE_COMPANY_ID,
    EDDYSTONE_SERVICE_UUID,
    AltBeacon,
    BeaconFrame,
    EddystoneEid,
    EddystoneEtlm,
    EddystoneTlm,
    EddystoneUid,
    EddystoneUrl,
    IBeacon,
    IdentityFrame,
    Sighting,
    beacon_sightings,
    decode_eddystone,
    decode_manufacturer,
    decode_url,
    encode_url,
    identity_frame,
    parse_advertisement,
    parse_payloads,
)
from posbridge.protocols.beacons.ids import canonical_beacon_id

__all__ = [
    "APPLE_COMPANY_ID",
    "EDDYSTONE_SERVICE_UUID",
    "AltBeacon",
    "BeaconFrame",
    "EddystoneEid",
    "EddystoneEtlm",
    "EddystoneTlm",
    "EddystoneUid",
    "EddystoneUrl",
    "EidRegistration",
    "EidResolver",
    "IBeacon",
    "IdentityFrame",
    "Sighting",
    "advertisement_from_ad",
    "beacon_sightings",
    "build_ad_structures",
    "build_advertisement",
    "canonical_beacon_id",
    "compute_eid",
    "decode_eddystone",
    "decode_manufacturer",
    "decode_url",
    "encode_url",
    "identity_frame",
    "parse_ad_structures",
    "parse_advertisement",
    "parse_payloads",
    "temporary_key",
    "uuid16",
]

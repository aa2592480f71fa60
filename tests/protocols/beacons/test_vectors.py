"""Every vector of vectors/ble.json and vectors/eid.json decodes as the spec says (bleak shape and raw AD)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from posbridge.protocols.beacons import (
    AltBeacon,
    BeaconFrame,
    EddystoneEid,
    EddystoneEtlm,
    EddystoneTlm,
    EddystoneUid,
    EddystoneUrl,
    IBeacon,
    advertisement_from_ad,
    build_ad_structures,
    compute_eid,
    parse_advertisement,
)
from posbridge.protocols.errors import AdvertisementError
from posbridge.protocols.types import Advertisement

VECTORS = Path(__file__).parent / "vectors"
BLE = json.loads((VECTORS / "ble.json").read_text())["vectors"]
EID = json.loads((VECTORS / "eid.json").read_text())["vectors"]


def as_expected(frame: BeaconFrame) -> dict[str, Any]:
    """A frame in the vocabulary of the vectors' ``expected`` entries."""
    if isinstance(frame, IBeacon):
        return {
            "type": "ibeacon",
            "uuid": frame.uuid,
            "major": frame.major,
            "minor": frame.minor,
            "measured_power_1m": frame.measured_power,
        }
    if isinstance(frame, AltBeacon):
        return {
            "type": "altbeacon",
            "manufacturer": frame.manufacturer,
            "id1": frame.id1_uuid,
            "id2": frame.id2,
            "id3": frame.id3,
            "reference_rssi_1m": frame.reference_rssi,
            "mfg_reserved": frame.mfg_reserved,
        }
    if isinstance(frame, EddystoneUid):
        return {
            "type": "eddystone-uid",
            "tx_power_0m": frame.tx_power_0m,
            "namespace": frame.namespace,
            "instance": frame.instance,
            "has_rfu": frame.has_rfu,
        }
    if isinstance(frame, EddystoneUrl):
        return {"type": "eddystone-url", "tx_power_0m": frame.tx_power_0m, "url": frame.url}
    if isinstance(frame, EddystoneTlm):
        return {
            "type": "eddystone-tlm",
            "version": 0,
            "vbatt_mv": frame.vbatt_mv,
            "temp_c": frame.temp_c,
            "adv_cnt": frame.adv_cnt,
            "sec_cnt_0_1s": frame.sec_cnt,
        }
    if isinstance(frame, EddystoneEtlm):
        return {
            "type": "eddystone-etlm",
            "version": 1,
            "etlm": frame.etlm.hex(),
            "salt_be": frame.salt,
            "mic_be": frame.mic,
        }
    assert isinstance(frame, EddystoneEid)
    return {"type": "eddystone-eid", "tx_power_0m": frame.tx_power_0m, "eid": frame.eid.hex()}


def bleak_advertisement(vector: dict[str, Any]) -> Advertisement:
    bleak = vector["bleak"]
    return Advertisement(
        t=0.0,
        address=bleak.get("address", "00:00:00:00:00:00"),
        rssi=bleak.get("rssi", -60),
        name=bleak["local_name"],
        tx_power=bleak.get("tx_power"),
        manufacturer_data={
            int(key): bytes.fromhex(value) for key, value in bleak["manufacturer_data"].items()
        },
        service_data={key: bytes.fromhex(value) for key, value in bleak["service_data"].items()},
        service_uuids=tuple(bleak["service_uuids"]),
    )


def check_decode(advertisement: Advertisement, expected: list[dict[str, Any]]) -> None:
    errors = [entry for entry in expected if "error" in entry]
    if errors:
        with pytest.raises(AdvertisementError) as caught:
            parse_advertisement(advertisement)
        assert caught.value.reason == errors[0]["error"]
        assert caught.value.length == errors[0]["service_data_len"]
        return
    assert [as_expected(frame) for frame in parse_advertisement(advertisement)] == expected


@pytest.mark.parametrize("vector", BLE, ids=[vector["id"] for vector in BLE])
def test_bleak_shape_decodes_as_expected(vector: dict[str, Any]) -> None:
    check_decode(bleak_advertisement(vector), vector["expected"])


RAW = [vector for vector in BLE if vector["raw_adv_hex"]]


@pytest.mark.parametrize("vector", RAW, ids=[vector["id"] for vector in RAW])
def test_raw_ad_structures_give_bleaks_shape_and_the_same_decode(vector: dict[str, Any]) -> None:
    decoded = advertisement_from_ad(
        bytes.fromhex(vector["raw_adv_hex"]), address="00:00:00:00:00:00", rssi=-60
    )
    reference = bleak_advertisement(vector)
    assert decoded.manufacturer_data == reference.manufacturer_data
    assert decoded.service_data == reference.service_data
    assert decoded.service_uuids == reference.service_uuids
    assert decoded.name == reference.name
    assert decoded.tx_power == reference.tx_power
    check_decode(decoded, vector["expected"])


GOOD = [vector for vector in BLE if not any("error" in entry for entry in vector["expected"])]


@pytest.mark.parametrize("vector", GOOD, ids=[vector["id"] for vector in GOOD])
def test_encoding_the_decoded_frames_gives_back_the_payloads(vector: dict[str, Any]) -> None:
    advertisement = bleak_advertisement(vector)
    for frame in parse_advertisement(advertisement):
        if isinstance(frame, IBeacon | AltBeacon):
            assert frame.encode() == advertisement.manufacturer_data[frame.company_id]
        else:
            assert frame.encode() == advertisement.service_data["0000feaa-0000-1000-8000-00805f9b34fb"]
    rebuilt = advertisement_from_ad(build_ad_structures(advertisement))
    assert parse_advertisement(rebuilt) == parse_advertisement(advertisement)


def test_spec_not_beacontools_decides_etlm_byte_order_and_tlm_temperature() -> None:
    etlm = EddystoneEtlm.decode(bytes.fromhex("2001414141414141414141414141deadbeff"))
    assert (etlm.salt, etlm.mic) == (0xDEAD, 0xBEFF)
    assert EddystoneTlm.decode(bytes.fromhex("20000b18ff800000146700002ac4")).temp_c == -0.5
    assert EddystoneTlm.decode(bytes.fromhex("20000b18800000001467000000c4")).temp_c is None


def test_eddystone_power_at_one_metre_is_ranging_data_minus_41_db() -> None:
    (frame,) = parse_advertisement(bleak_advertisement(BLE[2]))
    assert isinstance(frame, EddystoneUid)
    assert frame.power_1m == -29 - 41


@pytest.mark.parametrize("vector", EID, ids=[vector["id"] for vector in EID])
def test_eid_vectors(vector: dict[str, Any]) -> None:
    eid = compute_eid(
        bytes.fromhex(vector["identity_key"]), vector["rotation_exponent"], vector["beacon_time"]
    )
    assert eid.hex() == vector["eid"]

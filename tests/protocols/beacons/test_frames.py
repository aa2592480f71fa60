"""Beacon frames: round trips, malformed payloads, fuzzing, canonical ids and EID resolution."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.protocols.beacons import (
    APPLE_COMPANY_ID,
    EDDYSTONE_SERVICE_UUID,
    AltBeacon,
    BeaconFrame,
    EddystoneEid,
    EddystoneEtlm,
    EddystoneTlm,
    EddystoneUid,
    EddystoneUrl,
    EidRegistration,
    EidResolver,
    IBeacon,
    Sighting,
    advertisement_from_ad,
    beacon_sightings,
    build_ad_structures,
    build_advertisement,
    canonical_beacon_id,
    compute_eid,
    decode_url,
    encode_url,
    identity_frame,
    parse_advertisement,
    parse_payloads,
)
from posbridge.protocols.errors import AdvertisementError, KeyMaterialError, ParseError
from posbridge.protocols.types import Advertisement

IBEACON = bytes.fromhex("0215e2c56db5dffb48d2b060d0f5a71096e000010002c5")


@pytest.mark.parametrize(
    ("company", "payload", "reason"),
    [
        (APPLE_COMPANY_ID, IBEACON[:-1], "truncated"),
        (APPLE_COMPANY_ID, IBEACON + b"\x00", "length"),
        (APPLE_COMPANY_ID, b"\x02\x16" + IBEACON[2:], "prefix"),
        (APPLE_COMPANY_ID, b"\x02", "prefix"),
        (0x0118, bytes.fromhex("beac2f234454cf6d4a0fadf2f4911ba9ffa600010002c5"), "truncated"),
    ],
)
def test_malformed_manufacturer_beacons_raise_with_a_reason(
    company: int, payload: bytes, reason: str
) -> None:
    with pytest.raises(AdvertisementError) as caught:
        parse_payloads({company: payload}, {})
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "truncated"),
        ("00", "truncated"),
        ("00e31234567890123467890100000000000100", "length"),
        ("10e7", "truncated"),
        ("10e704676f6f676c65", "value"),
        ("10e702676f6f676c65ff", "value"),
        ("20000b18", "truncated"),
        ("2002000000000000000000000000", "frame-type"),
        ("30e34549445f7465", "truncated"),
        ("40e3", "frame-type"),
    ],
)
def test_malformed_eddystone_frames_raise_with_a_reason(payload: str, reason: str) -> None:
    with pytest.raises(AdvertisementError) as caught:
        parse_payloads({}, {EDDYSTONE_SERVICE_UUID: bytes.fromhex(payload)})
    assert caught.value.reason == reason


def test_apple_continuity_and_other_companies_are_not_beacons() -> None:
    nearby = bytes.fromhex("1005031c0a2f91")
    assert parse_payloads({APPLE_COMPANY_ID: nearby, 0x0006: b"\x01\x09\x20"}, {}) == ()


def test_raw_ad_structures_that_break_inside_their_bounds_raise() -> None:
    with pytest.raises(AdvertisementError):
        advertisement_from_ad(bytes.fromhex("0201060203aa"))  # odd 16-bit UUID list
    with pytest.raises(AdvertisementError):
        advertisement_from_ad(bytes.fromhex("02ff4c"))  # manufacturer data without a company id
    assert advertisement_from_ad(bytes.fromhex("020106" + "00" * 10)).manufacturer_data == {}


def test_url_compression_uses_longest_codes() -> None:
    assert encode_url("https://www.example.com/shop") == b"\x01example\x00shop"
    assert decode_url(encode_url("http://a.org")) == "http://a.org"
    with pytest.raises(AdvertisementError):
        encode_url("ftp://example.com")
    with pytest.raises(AdvertisementError):
        encode_url("https://a-very-long-host-name.example/")


uuids = st.uuids().map(str)
u16 = st.integers(0, 0xFFFF)
i8 = st.integers(-128, 127)
frames: st.SearchStrategy[BeaconFrame] = st.one_of(
    st.builds(IBeacon, uuids, u16, u16, i8),
    st.builds(
        AltBeacon, st.binary(min_size=16, max_size=16).map(bytes.hex), u16, u16, i8, st.integers(0, 255), u16
    ),
    st.builds(
        EddystoneUid,
        i8,
        st.binary(min_size=10, max_size=10).map(bytes.hex),
        st.binary(min_size=6, max_size=6).map(bytes.hex),
        st.booleans(),
    ),
    st.builds(
        EddystoneUrl, i8, st.sampled_from(["https://example.com/", "http://www.a.org/x", "https://b.io"])
    ),
    st.builds(
        EddystoneTlm,
        u16,
        st.one_of(st.none(), st.integers(-32767, 32767).map(lambda v: v / 256)),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(EddystoneEtlm, st.binary(min_size=12, max_size=12), u16, u16),
    st.builds(EddystoneEid, i8, st.binary(min_size=8, max_size=8)),
)


@settings(max_examples=150, deadline=None)
@given(frame=frames)
def test_every_frame_survives_build_and_parse_through_bleak_shape_and_raw_ad(frame: BeaconFrame) -> None:
    advertisement = build_advertisement([frame], address="AA:BB:CC:DD:EE:FF", rssi=-60)
    assert parse_advertisement(advertisement) == (frame,)
    raw = build_ad_structures(advertisement)
    assert parse_advertisement(advertisement_from_ad(raw)) == (frame,)


@settings(max_examples=300, deadline=None)
@given(
    company=st.sampled_from([APPLE_COMPANY_ID, 0x0118, 0x0059]),
    payload=st.binary(max_size=40),
    eddystone=st.one_of(st.none(), st.binary(max_size=30)),
)
def test_arbitrary_payloads_parse_or_raise_advertisement_error(
    company: int, payload: bytes, eddystone: bytes | None
) -> None:
    service = {} if eddystone is None else {EDDYSTONE_SERVICE_UUID: eddystone}
    try:
        parsed = parse_payloads({company: payload}, service)
    except AdvertisementError:
        return
    assert all(frame.encode() in (payload, eddystone) for frame in parsed)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=62))
def test_arbitrary_raw_advertising_data_parses_or_raises_advertisement_error(raw: bytes) -> None:
    with contextlib.suppress(AdvertisementError):
        parse_advertisement(advertisement_from_ad(raw))


def test_identity_frame_skips_telemetry() -> None:
    uid = EddystoneUid(-20, "00" * 10, "00" * 6)
    assert identity_frame((EddystoneTlm(3000, 20.0, 1, 1), uid)) is uid
    assert identity_frame((EddystoneUrl(-20, "https://a.io"),)) is None


def test_canonical_ids_are_normalised_and_validated() -> None:
    text = "iBeacon:E2C56DB5DFFB48D2B060D0F5A71096E0:1:2"
    assert str(canonical_beacon_id(text)) == "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:2"
    assert canonical_beacon_id(text) == IBeacon.decode(IBEACON).beacon_id
    uid = canonical_beacon_id("eddystone-uid:12345678901234678901:00000000000A")
    assert str(uid).endswith(":00000000000a")
    assert canonical_beacon_id("altbeacon:2F234454CF6D4A0FADF2F4911BA9FFA6:1:2").scheme == "altbeacon"
    for bad in ["ibeacon:xyz:1:2", "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:70000:1", "mac:aa", ""]:
        with pytest.raises(ParseError):
            canonical_beacon_id(bad)


KEY = bytes.fromhex("0102030405060708090a111213141516")


def test_eid_rotates_every_two_to_the_k_seconds() -> None:
    assert compute_eid(KEY, 10, 0) == compute_eid(KEY, 10, 1023) != compute_eid(KEY, 10, 1024)
    with pytest.raises(KeyMaterialError):
        compute_eid(KEY[:8], 10, 0)
    with pytest.raises(KeyMaterialError):
        EidRegistration(KEY, 16)


def test_resolver_maps_current_and_neighbouring_eids_to_the_stable_id() -> None:
    registration = EidRegistration(KEY, 10, epoch=1_700_000_000.0)
    other = EidRegistration(bytes(range(16)), 12, epoch=1_600_000_000.0)
    resolver = EidResolver([registration, other])
    now = 1_700_050_000.0
    assert resolver.resolve(registration.eid_at(now), now) == registration.beacon_id
    assert resolver.resolve(registration.eid_at(now - 1024), now) == registration.beacon_id
    assert resolver.resolve(other.eid_at(now), now) == other.beacon_id
    assert resolver.resolve(registration.eid_at(now - 5000), now) is None
    later = now + 3 * 4096
    assert resolver.resolve(registration.eid_at(later), later) == registration.beacon_id
    assert "identity_key" not in repr(registration)
    assert registration.beacon_id.value == f"eddystone-eid:{compute_eid(KEY, 10, 0).hex()}"


def test_beacon_sightings_skip_malformed_and_non_beacon_adverts() -> None:
    beacon = IBeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 2, -59)
    good = build_advertisement([beacon], address="AA:BB:CC:DD:EE:01", rssi=-50)
    malformed = Advertisement(t=0.0, address="AA:BB:CC:DD:EE:02", rssi=-50,
                              manufacturer_data={APPLE_COMPANY_ID: bytes.fromhex("0215") + b"\x01\x02"})
    other = Advertisement(t=0.0, address="AA:BB:CC:DD:EE:03", rssi=-50,
                          manufacturer_data={APPLE_COMPANY_ID: bytes.fromhex("1005031c")})
    with pytest.raises(AdvertisementError):
        Sighting.of(malformed)
    assert Sighting.of(other) is None
    sightings = list(beacon_sightings([malformed, good, other, good]))
    assert [sighting.advertisement for sighting in sightings] == [good, good]
    assert all(sighting.frames == (beacon,) for sighting in sightings)

"""ANSI X9.24-1-2009 TDES and X9.24-3-2017 AES DUKPT against the published vectors, and the rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.protocols import dukpt
from posbridge.protocols.errors import IntegrityError, KeyMaterialError, KsnExhaustedError
from posbridge.protocols.types import MaskedCard, Track, TrackFormat

_VECTORS = json.loads((Path(__file__).parent / "vectors" / "dukpt.json").read_text())
_H = bytes.fromhex


def _hex(value: bytes) -> str:
    return value.hex().upper()


def test_tdes_ipek(vectors: dict[str, Any]) -> None:
    tdes = vectors["tdes"]
    assert _hex(dukpt.derive_tdes_ipek(_H(tdes["bdk"]), _H(tdes["ipek"]["ksn"]))) == tdes["ipek"]["key"]


@pytest.mark.parametrize("case", _VECTORS["tdes"]["current_keys"], ids=lambda case: case["ksn"])
def test_tdes_current_keys(case: dict[str, str]) -> None:
    keys = dukpt.tdes_keys_for_ksn(_H(_VECTORS["tdes"]["bdk"]), _H(case["ksn"]))
    assert _hex(keys.pin_key) == case["pin_key"]
    if "key" in case:
        assert _hex(keys.key) == case["key"]


def test_tdes_variants_are_the_published_masks(vectors: dict[str, Any]) -> None:
    variants = vectors["tdes"]["variants"]
    assert _hex(dukpt.TDES_PIN_VARIANT) == variants["pin"]
    assert _hex(dukpt.TDES_MAC_REQUEST_VARIANT) == variants["mac_request"]
    assert _hex(dukpt.TDES_MAC_RESPONSE_VARIANT) == variants["mac_response"]
    assert _hex(dukpt.TDES_DATA_REQUEST_VARIANT) == variants["data_request"]
    keys = dukpt.tdes_keys_for_ksn(_H(vectors["tdes"]["bdk"]), _H("FFFF9876543210E00001"))
    assert bytes(a ^ b for a, b in zip(keys.key, keys.mac_key, strict=True)) == dukpt.TDES_MAC_REQUEST_VARIANT
    assert (
        bytes(a ^ b for a, b in zip(keys.key, keys.data_key, strict=True)) == dukpt.TDES_DATA_REQUEST_VARIANT
    )


@pytest.mark.parametrize("ksn", sorted(_VECTORS["tdes"]["pin_blocks"]["encrypted"]))
def test_tdes_pin_blocks(ksn: str) -> None:
    blocks = _VECTORS["tdes"]["pin_blocks"]
    pin_key = dukpt.tdes_keys_for_ksn(_H(_VECTORS["tdes"]["bdk"]), _H(ksn)).pin_key
    clear = _H(blocks["clear_iso0_pin_1234_pan_4012345678909"])
    assert _hex(dukpt.encrypt_tdes_pin_block(pin_key, clear)) == blocks["encrypted"][ksn]


def test_aes128_initial_key(vectors: dict[str, Any]) -> None:
    aes = vectors["aes128"]
    key = dukpt.derive_aes_initial_key(_H(aes["bdk"]), _H(aes["initial_key_id"]))
    assert _hex(key) == aes["initial_key"]


@pytest.mark.parametrize("case", _VECTORS["aes128"]["by_counter"], ids=lambda case: str(case["counter"]))
def test_aes128_keys_by_counter(case: dict[str, Any]) -> None:
    aes = _VECTORS["aes128"]
    ksn = _H(aes["initial_key_id"]) + case["counter"].to_bytes(4, "big")
    keys = dukpt.aes_keys_for_ksn(_H(aes["bdk"]), ksn)
    for name in ("transaction_key", "pin_key", "mac_key", "data_key"):
        if name in case:
            assert _hex(getattr(keys, name)) == case[name], name


def test_aes256_initial_key(vectors: dict[str, Any]) -> None:
    case = vectors["aes256_initial_key"]
    key = dukpt.derive_aes_initial_key(_H(case["bdk"]), _H(case["initial_key_id"]))
    assert _hex(key) == case["initial_key"]


def test_aes256_initial_key_gives_aes128_working_keys(vectors: dict[str, Any]) -> None:
    case = vectors["aes256_initial_key"]
    ksn = _H(case["initial_key_id"]) + (1).to_bytes(4, "big")
    keys = dukpt.aes_keys_for_ksn(_H(case["bdk"]), ksn)
    assert len(keys.transaction_key) == 32
    assert len(keys.data_key) == len(keys.pin_key) == 16


@pytest.mark.parametrize(
    ("counter", "expected"),
    [(0, 1), (1, 2), (0xFFFF, 0x10000), (0xFFFE0000, 0xFFFE0001), (0x0FFFF000, 0x10000000)],
)
def test_aes_counter_skips_more_than_16_one_bits(counter: int, expected: int) -> None:
    assert dukpt.next_counter(counter, 32, 16) == expected
    assert expected.bit_count() <= 16


@given(st.integers(min_value=0, max_value=(1 << 21) - 2))
@settings(max_examples=200)
def test_next_counter_is_the_smallest_valid_successor(counter: int) -> None:
    try:
        following = dukpt.next_counter(counter, 21, 10)
    except KsnExhaustedError:
        assert all(c.bit_count() > 10 for c in range(counter + 1, min(counter + 2000, 1 << 21)))
        return
    assert following > counter
    assert following.bit_count() <= 10
    skipped = range(counter + 1, following)
    assert all(c.bit_count() > 10 for c in list(skipped)[:2000])


def test_tdes_counter_exhausts() -> None:
    last = dukpt.tdes_ksn_with_counter(_H("FFFF9876543210E00000"), 0x1FF800)
    with pytest.raises(KsnExhaustedError):
        dukpt.tdes_next_ksn(last)
    assert dukpt.tdes_counter(dukpt.tdes_next_ksn(_H("FFFF9876543210E00000"))) == 1


def test_aes_counter_exhausts() -> None:
    last = dukpt.AesKsn(_H("1234567890123456"), 0xFFFF0000)
    with pytest.raises(KsnExhaustedError):
        last.next()


def test_transaction_key_refuses_unusable_counters() -> None:
    aes = _VECTORS["aes128"]
    initial_key = _H(aes["initial_key"])
    with pytest.raises(KsnExhaustedError):
        dukpt.derive_aes_transaction_key(initial_key, _H(aes["initial_key_id"]) + bytes(4))
    with pytest.raises(KsnExhaustedError):
        dukpt.derive_aes_transaction_key(
            initial_key, _H(aes["initial_key_id"]) + (0x1FFFF).to_bytes(4, "big")
        )
    ipek = _H(_VECTORS["tdes"]["ipek"]["key"])
    with pytest.raises(KsnExhaustedError):
        dukpt.derive_tdes_transaction_key(
            ipek, dukpt.tdes_ksn_with_counter(_H("FFFF9876543210E00000"), 0x7FF)
        )


@pytest.mark.parametrize(
    ("bdk", "ksn"),
    [
        ("0123", "FFFF9876543210E00001"),
        ("0123456789ABCDEFFEDCBA9876543210", "FFFF9876543210E001"),
        ("0123456789ABCDEFFEDCBA98765432", "123456789012345600000001"),
        ("FEDCBA9876543210F1F1F1F1F1F1F1F1", "1234567890123456000000010000"),
    ],
)
def test_wrong_lengths_are_key_material_errors(bdk: str, ksn: str) -> None:
    with pytest.raises(KeyMaterialError):
        dukpt.derive_keys(_H(bdk), _H(ksn))


@pytest.mark.parametrize("text", ["zz", "0", "01 2"])
def test_parse_hex_refuses_bad_hex(text: str) -> None:
    with pytest.raises(KeyMaterialError, match="not valid hex"):
        dukpt.parse_hex(text, "the BDK")


def test_parse_hex_checks_length() -> None:
    assert dukpt.parse_hex("01 02", "x", (2,)) == b"\x01\x02"
    with pytest.raises(KeyMaterialError, match="must be 16 bytes"):
        dukpt.parse_hex("0102", "the BDK", (16,))


_TRACKS = (
    Track(number=1, format=TrackFormat.ALPHA, text="B4000001234567899^TEST/CARD^29121010000000000"),
    Track(number=2, format=TrackFormat.BCD, text="4000001234567899=29121010000000000"),
)
_MASKED = MaskedCard.from_pan("4000001234567899", "2912", "101")


@pytest.mark.parametrize("scheme", ["aes128", "aes256-bdk", "tdes"])
def test_card_data_round_trip_from_bdk(scheme: str) -> None:
    if scheme.startswith("aes"):
        bdk = _H(_VECTORS["aes128" if scheme == "aes128" else "aes256_initial_key"]["bdk"])
        ksn = _H(_VECTORS["aes128"]["initial_key_id"]) + (5).to_bytes(4, "big")
    else:
        bdk = _H(_VECTORS["tdes"]["bdk"])
        ksn = _H("FFFF9876543210E00005")
    initial_key = dukpt.initial_key_for_ksn(bdk, ksn)
    encrypted = dukpt.encrypt_tracks(initial_key, ksn, _TRACKS, _MASKED)
    assert encrypted.scheme == scheme.split("-")[0].replace("aes256", "aes128")
    assert b"4000001234567899" not in encrypted.ciphertext
    assert dukpt.decrypt_tracks(bdk, encrypted) == _TRACKS


def test_decrypt_with_the_wrong_bdk_is_an_integrity_error() -> None:
    ksn = _H("1234567890123456") + (7).to_bytes(4, "big")
    initial_key = dukpt.derive_aes_initial_key(_H(_VECTORS["aes128"]["bdk"]), ksn[:8])
    encrypted = dukpt.encrypt_card_data(initial_key, ksn, b"x" * 40, _MASKED)
    wrong = _H("00112233445566778899AABBCCDDEEFF")
    with pytest.raises((IntegrityError, ValueError)):
        dukpt.unpack_tracks(dukpt.decrypt_card_data(wrong, encrypted))
    truncated = type(encrypted)(encrypted.ksn, encrypted.ciphertext[:-1], encrypted.masked)
    with pytest.raises(IntegrityError):
        dukpt.decrypt_card_data(_H(_VECTORS["aes128"]["bdk"]), truncated)


def test_each_ksn_gives_a_different_ciphertext() -> None:
    bdk = _H(_VECTORS["aes128"]["bdk"])
    initial_key = dukpt.derive_aes_initial_key(bdk, _H("1234567890123456"))
    ksn = dukpt.AesKsn(_H("1234567890123456"), 0)
    seen = set()
    for _ in range(20):
        ksn = ksn.next()
        seen.add(dukpt.encrypt_tracks(initial_key, ksn.to_bytes(), _TRACKS, _MASKED).ciphertext)
    assert len(seen) == 20


def test_keys_never_appear_in_repr() -> None:
    keys = dukpt.aes_keys_for_ksn(_H(_VECTORS["aes128"]["bdk"]), _H("123456789012345600000001"))
    assert keys.data_key.hex() not in repr(keys).lower()

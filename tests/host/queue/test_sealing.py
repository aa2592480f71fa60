"""Card data at rest: per-record data keys wrapped by the device key, the PAN fingerprint, and the
JSON texts a capture stores (sealed card fields, masked card)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.host.queue import CaptureRequest, DeviceKey
from posbridge.host.queue.capture import json_text
from posbridge.host.queue.sealing import KEY_BYTES, NONCE_BYTES, SealedRecord
from posbridge.host.queue.store import _masked_from_json, _masked_to_json
from posbridge.protocols.cards import generate_test_pan
from posbridge.protocols.errors import IntegrityError
from posbridge.protocols.types import Card, MaskedCard


def test_fingerprint_is_hmac_sha256_under_the_derived_key() -> None:
    device_key = DeviceKey(bytes(range(32)))
    fingerprint_key = hmac.new(bytes(range(32)), b"posbridge card fingerprint", hashlib.sha256).digest()
    for pan in ("4000000000000002", "4111111111111111", "378282246310005"):
        expected = hmac.digest(fingerprint_key, pan.encode("ascii"), "sha256").hex()[:32]
        assert device_key.fingerprint(pan) == expected
        assert device_key.fingerprint(pan) == expected


def test_fingerprints_differ_by_card_and_by_device_key() -> None:
    one, other = DeviceKey(bytes(32)), DeviceKey(bytes([1]) * 32)
    assert one.fingerprint("4000000000000002") != one.fingerprint("4111111111111111")
    assert one.fingerprint("4000000000000002") != other.fingerprint("4000000000000002")


def test_each_record_has_its_own_data_key_and_nonce() -> None:
    device_key = DeviceKey(bytes(range(32)))
    first = device_key.seal(b'{"pan":"4000000000000002"}', b"key-1")
    second = device_key.seal(b'{"pan":"4000000000000002"}', b"key-1")
    assert len(first.nonce) == NONCE_BYTES
    assert len(first.wrapped_key) == KEY_BYTES + 8
    assert first.nonce != second.nonce
    first_key = aes_key_unwrap(bytes(range(32)), first.wrapped_key)
    second_key = aes_key_unwrap(bytes(range(32)), second.wrapped_key)
    assert first_key != second_key
    assert first.nonce not in first_key
    assert b"4000000000000002" not in first.ciphertext + first.wrapped_key + first.nonce
    assert device_key.open(first, b"key-1") == b'{"pan":"4000000000000002"}'


def test_a_record_opens_only_with_its_key_and_device_key() -> None:
    device_key = DeviceKey(bytes(range(32)))
    record = device_key.seal(b"secret", b"key-1")
    with pytest.raises(IntegrityError):
        device_key.open(record, b"key-2")
    with pytest.raises(IntegrityError):
        DeviceKey(bytes(32)).open(record, b"key-1")
    with pytest.raises(IntegrityError):
        device_key.open(SealedRecord(record.nonce, record.ciphertext, bytes(40)), b"key-1")


_TEXT = st.none() | st.text(max_size=24)


@settings(max_examples=60, deadline=None)
@given(
    pan=st.text(min_size=1, max_size=24),
    expiry=st.none() | st.from_regex(r"[0-9]{2}(0[1-9]|1[0-2])", fullmatch=True),
    service_code=_TEXT,
    track2=_TEXT,
)
def test_sealed_payload_is_the_json_of_the_card_fields(
    pan: str, expiry: str | None, service_code: str | None, track2: str | None
) -> None:
    request = CaptureRequest(100, "USD", "keyed", card=Card(pan, expiry, service_code), track2=track2)
    expected: dict[str, str | None] = {"pan": pan, "expiry": expiry, "service_code": service_code}
    if track2:
        expected["track2"] = track2
    assert request.sealed_payload() == json.dumps(expected, separators=(",", ":")).encode()
    assert json.loads(request.sealed_payload()) == expected


@settings(max_examples=30, deadline=None)
@given(token=st.text(min_size=1, max_size=40))
def test_sealed_payload_of_an_account_token(token: str) -> None:
    request = CaptureRequest(100, "USD", "checkin", customer="c1", account_token=token)
    assert json.loads(request.sealed_payload()) == {"account_token": token}
    assert request.sealed_payload() == json.dumps({"account_token": token}, separators=(",", ":")).encode()


@settings(max_examples=60, deadline=None)
@given(
    first6=st.text(max_size=8),
    last4=st.text(max_size=6),
    pan_length=st.integers(0, 19),
    brand=st.text(max_size=12),
    expiry=_TEXT,
    service_code=_TEXT,
)
def test_masked_card_is_stored_as_a_compact_json_array(
    first6: str, last4: str, pan_length: int, brand: str, expiry: str | None, service_code: str | None
) -> None:
    masked = MaskedCard(first6, last4, pan_length, brand, expiry, service_code)
    fields = [first6, last4, pan_length, brand, expiry, service_code]
    assert _masked_to_json(masked) == json.dumps(fields, separators=(",", ":"))
    assert _masked_from_json(_masked_to_json(masked)) == masked


_JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=24) | st.characters()
)


@settings(max_examples=100, deadline=None)
@given(value=_JSON_SCALARS)
def test_json_text_is_what_json_dumps_gives_for_any_scalar(value: object) -> None:
    assert json_text(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", [chr(0xD800), chr(0xDFFF) + "a", '"\\', "\x00\x1f\x7f", "é€😀", "\u2028"])
def test_json_text_escapes_like_json_dumps_and_reads_back(value: str) -> None:
    assert json_text(value) == json.dumps(value)
    assert json.loads(json_text(value)) == value


def test_card_fields_that_are_not_text_are_stored_as_json_dumps_stores_them() -> None:
    masked = MaskedCard("411111", "1111", 16, "visa", "3012", 101)  # type: ignore[arg-type]
    assert _masked_to_json(masked) == json.dumps(
        ["411111", "1111", 16, "visa", "3012", 101], separators=(",", ":")
    )
    assert _masked_from_json(_masked_to_json(masked)) == masked
    pan = generate_test_pan(random.Random(101))
    request = CaptureRequest(100, "USD", "keyed", card=Card(pan, "3012", 101))  # type: ignore[arg-type]
    assert json.loads(request.sealed_payload()) == {"pan": pan, "expiry": "3012", "service_code": 101}

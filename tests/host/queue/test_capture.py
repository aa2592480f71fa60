"""Capture: idempotency keys, every source, sealing at rest, destruction after the answer."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from posbridge.host.queue import (
    CaptureRequest,
    DeviceKey,
    ProcessorAnswer,
    TransactionQueue,
    card_from_track2,
    open_queue,
)
from posbridge.protocols.errors import IntegrityError, ParseError, UsageError
from posbridge.protocols.types import (
    Card,
    EncryptedCardData,
    MaskedCard,
    Swipe,
    Track,
    TrackFormat,
    TransactionState,
)


def test_same_key_twice_is_one_transaction(queue: TransactionQueue, pans: Iterator[str]) -> None:
    card = Card(next(pans), "3012", "101")
    first = queue.capture(1250, "USD", card, key="abc", keyed=True)
    again = queue.capture(1250, "USD", card, key="abc", keyed=True)
    assert first == again
    assert [t.key for t in queue.list()] == ["abc"]
    assert first.state is TransactionState.CAPTURED
    assert first.card is not None
    assert first.card.last4 == card.pan[-4:]


def test_new_keys_are_unique(queue: TransactionQueue, pans: Iterator[str]) -> None:
    keys = {queue.capture(100 + i, "USD", Card(next(pans), "3012", "101"), keyed=True).key for i in range(20)}
    assert len(keys) == 20


def test_swipe_source(queue: TransactionQueue, pans: Iterator[str]) -> None:
    pan = next(pans)
    swipe = Swipe(tracks=(Track(2, TrackFormat.BCD, f"{pan}=30121011234567"),), started_at=0.0, ended_at=0.2)
    transaction = queue.capture(990, "USD", swipe)
    assert transaction.source == "swipe"
    assert transaction.card == MaskedCard.from_pan(pan, "3012", "101")


def test_dongle_payload_is_stored_as_it_arrived(queue: TransactionQueue, pans: Iterator[str]) -> None:
    masked = MaskedCard.from_pan(next(pans), "3012", "101")
    payload = EncryptedCardData(ksn=bytes(range(12)), ciphertext=bytes(range(16, 48)), masked=masked)
    transaction = queue.capture(700, "USD", payload, key="d1")
    assert transaction.source == "dongle"
    row = (
        sqlite3.connect(queue.path)
        .execute("SELECT dukpt_ksn, dukpt_ciphertext, sealed FROM transactions WHERE key='d1'")
        .fetchone()
    )
    assert row == (payload.ksn, payload.ciphertext, None)
    claimed = queue.claim_for_forwarding()
    assert claimed[0].request_body()["dukpt"]["ciphertext"] == payload.ciphertext.hex()


def test_card_data_is_sealed_and_destroyed_after_answer(queue: TransactionQueue, pans: Iterator[str]) -> None:
    pan = next(pans)
    queue.capture(1250, "USD", Card(pan, "3012", "101"), key="k1", keyed=True)
    db = sqlite3.connect(queue.path)
    sealed, wrapped = db.execute("SELECT sealed, wrapped_key FROM transactions WHERE key='k1'").fetchone()
    assert pan.encode() not in sealed
    assert len(wrapped) == 40
    claimed = queue.claim_for_forwarding()
    assert claimed[0].request_body()["card"]["pan"] == pan
    assert pan not in repr(claimed[0])
    queue.record_answers([ProcessorAnswer("k1", TransactionState.APPROVED, None, "r")])
    assert db.execute("SELECT nonce, sealed, wrapped_key FROM transactions WHERE key='k1'").fetchone() == (
        None,
        None,
        None,
    )
    wal = queue.path.with_name(queue.path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    db.close()


def test_wrong_device_key_cannot_open(
    tmp_path: object, make_queue: Callable[..., TransactionQueue], pans: Iterator[str]
) -> None:
    first = make_queue()
    first.capture(1250, "USD", Card(next(pans), "3012", "101"), key="k1", keyed=True)
    message = dict(first.unpublished())["k1"]
    other = make_queue(device_key=DeviceKey.generate())
    with pytest.raises(IntegrityError):
        other.open_sealed("k1", json.loads(message)["sealed"])
    assert "pan" in first.open_sealed("k1", json.loads(message)["sealed"])


def test_device_key_file_is_created_private(tmp_path: object) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    queue = open_queue(f"sqlite:///{base / 'q.db'}")
    key_file = base / "q.db.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    queue.close()
    assert open_queue(f"sqlite:///{base / 'q.db'}").url.endswith("q.db")


@pytest.mark.parametrize(
    "url", ["sqlite://host/x.db", "redis://x", "nats://h:1", "sqlite:///x?max_count=lots"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(UsageError):
        open_queue(url)


def test_json_forms(pans: Iterator[str]) -> None:
    pan = next(pans)
    swipe = CaptureRequest.from_json(
        {"key": "a", "amount": 5, "currency": "USD", "track2": f";{pan}=30121010000?"}
    )
    assert (swipe.source, swipe.card.pan if swipe.card else None, swipe.track2) == (
        "swipe",
        pan,
        f"{pan}=30121010000",
    )
    keyed = CaptureRequest.from_json({"amount": 5, "pan": pan, "expiry": "3012"})
    assert keyed.source == "keyed"
    assert keyed.key is None
    token = CaptureRequest.from_json({"amount": 5, "customer": "c1", "account_token": "tok_1"})
    assert token.source == "checkin"
    assert "tok_1" not in repr(token)
    dongle = CaptureRequest.from_json(
        {"amount": 5, "ksn": "00" * 12, "ciphertext": "11" * 16, "masked": MaskedCard.from_pan(pan).__dict__}
    )
    assert dongle.encrypted is not None
    assert dongle.encrypted.ksn == bytes(12)
    assert pan not in repr(keyed)
    assert pan not in repr(swipe)


@pytest.mark.parametrize(
    "record",
    [
        {"amount": 0, "pan": "4000000000000002", "expiry": "3012"},
        {"amount": 5, "currency": "usd", "pan": "4000000000000002"},
        {"amount": 5},
        {"amount": "5", "pan": "4000000000000002"},
        {"amount": 5, "pan": "40000"},
        {"amount": 5, "pan": "4000000000000002", "expiry": "12/30"},
        {"amount": 5, "track2": "4000000000000002"},
        {"amount": 5, "ksn": "zz", "ciphertext": "00"},
        [1, 2],
    ],
)
def test_json_rejects(record: object) -> None:
    with pytest.raises(ParseError):
        CaptureRequest.from_json(record)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "key",
                "amount",
                "currency",
                "track2",
                "pan",
                "expiry",
                "ksn",
                "ciphertext",
                "masked",
                "account_token",
                "confirm",
                "source",
            ]
        ),
        st.one_of(st.none(), st.integers(), st.text(max_size=30), st.lists(st.text(max_size=3))),
    )
)
def test_json_fuzz_only_parse_errors(record: dict[str, object]) -> None:
    with contextlib.suppress(ParseError):
        CaptureRequest.from_json(record)


def test_track2_parse() -> None:
    card = card_from_track2("4000000000000002=30122011234")
    assert (card.expiry, card.service_code, card.discretionary) == ("3012", "201", "1234")


def test_a_request_carries_exactly_one_kind_of_payment(pans: Iterator[str]) -> None:
    card = Card(next(pans), "3012", "101")
    with pytest.raises(ParseError, match="exactly one"):
        CaptureRequest(100, "USD", "keyed")
    with pytest.raises(ParseError, match="exactly one"):
        CaptureRequest(100, "USD", "keyed", card=card, account_token="tok_1")
    assert CaptureRequest(100, "USD", "checkin", customer="c1", account_token="tok_1").card is None


def test_new_keys_sort_by_creation_time(queue: TransactionQueue) -> None:
    earlier = [queue.new_key() for _ in range(200)]
    time.sleep(0.002)
    later = queue.new_key()
    assert len(set(earlier)) == 200
    assert all(key < later for key in earlier)
    assert all(len(key) == len(later) == 35 and key.startswith("tx_") for key in earlier)
    assert abs(int(later[3:15], 16) / 1000 - time.time()) < 60


_MASKED = {"first6": "400000", "last4": "0002", "pan_length": 16, "brand": "visa", "expiry": "3012"}


@pytest.mark.parametrize(
    "masked",
    [
        {**_MASKED, "first6": 400000},
        {**_MASKED, "brand": None},
        {**_MASKED, "pan_length": "16"},
        {**_MASKED, "pan_length": True},
        {**_MASKED, "expiry": 3012},
        {**_MASKED, "service_code": ["101"]},
        {**_MASKED, "color": "red"},
        ["400000", "0002"],
    ],
)
def test_a_dongle_record_whose_masked_card_has_a_wrong_type_is_a_parse_error(
    queue: TransactionQueue, masked: object
) -> None:
    record = {"amount": 100, "ksn": "00" * 10, "ciphertext": "00" * 16, "masked": masked}
    with pytest.raises(ParseError):
        queue.capture_request(CaptureRequest.from_json(record))
    assert queue.list() == []


@pytest.mark.parametrize("service_code", [101, 21, ["101"], {"code": "101"}])
def test_a_keyed_record_whose_service_code_is_not_text_is_a_parse_error(
    queue: TransactionQueue, pans: Iterator[str], service_code: object
) -> None:
    record = {"amount": 100, "pan": next(pans), "expiry": "3012", "service_code": service_code}
    with pytest.raises(ParseError):
        queue.capture_request(CaptureRequest.from_json(record))
    assert queue.list() == []


def test_a_dongle_record_with_a_well_typed_masked_card_is_captured(queue: TransactionQueue) -> None:
    record = {"amount": 100, "ksn": "00" * 10, "ciphertext": "00" * 16, "masked": _MASKED}
    transaction = queue.capture_request(CaptureRequest.from_json(record))
    assert transaction.card == MaskedCard(**_MASKED)
    assert queue.get(transaction.key).card == MaskedCard(**_MASKED)

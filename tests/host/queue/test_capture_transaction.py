"""The capture transaction: one commit holds the row, its audit entry and the offline position;
what a refusal or a question to the cashier leaves behind; races between two connections."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator

import pytest
from posbridge.host.queue import ConfirmationRequired, OfflineLimits, RiskRules, TransactionQueue
from posbridge.protocols.errors import CaptureRefused
from posbridge.protocols.types import Card, EncryptedCardData, MaskedCard, TransactionState

from .conftest import ManualClock


def _card_columns(queue: TransactionQueue, key: str) -> tuple[object, ...]:
    raw = sqlite3.connect(queue.path)
    try:
        row: tuple[object, ...] = raw.execute(
            "SELECT nonce, sealed, wrapped_key, dukpt_ksn, dukpt_ciphertext FROM transactions WHERE key=?",
            (key,),
        ).fetchone()
    finally:
        raw.close()
    return row


def test_capture_appends_one_audit_entry(queue: TransactionQueue, pans: Iterator[str]) -> None:
    transaction = queue.capture(1250, "USD", Card(next(pans), "3012", "101"), key="a1", keyed=True)
    entries = queue.audit("a1")
    assert [(e.from_state, e.to_state, e.detail, e.at) for e in entries] == [
        (None, "captured", "keyed capture", transaction.created_at)
    ]


def test_refusals_are_audited_and_keep_no_card_data(queue: TransactionQueue, pans: Iterator[str]) -> None:
    with pytest.raises(CaptureRefused) as over:
        queue.capture(60_000, "USD", Card(next(pans), "3012", "101"), key="over", keyed=True)
    with pytest.raises(CaptureRefused) as expired:
        queue.capture(1000, "USD", Card(next(pans), "2001", "101"), key="expired", keyed=True)
    masked = MaskedCard.from_pan(next(pans), "3012", "101")
    dongle = EncryptedCardData(ksn=bytes(12), ciphertext=bytes(32), masked=masked)
    with pytest.raises(CaptureRefused):
        queue.capture(60_000, "USD", dongle, key="dongle-over")
    for key, reason in (("over", over.value.reason), ("expired", expired.value.reason)):
        assert [(e.from_state, e.to_state, e.detail) for e in queue.audit(key)] == [(None, "refused", reason)]
    for key in ("over", "expired", "dongle-over"):
        assert queue.get(key).state is TransactionState.REFUSED
        assert _card_columns(queue, key) == (None, None, None, None, None)


def test_question_to_the_cashier_writes_nothing(
    queue: TransactionQueue, pans: Iterator[str], clock: ManualClock
) -> None:
    card = Card(next(pans), "3012", "101")
    queue.capture(1000, "USD", card, key="first", keyed=True)
    clock.advance(5)
    with pytest.raises(ConfirmationRequired):
        queue.capture(1000, "USD", card, key="second", keyed=True)
    assert [t.key for t in queue.list()] == ["first"]
    assert [e.key for e in queue.audit()] == ["first"]
    assert queue.offline_status().count == 1
    confirmed = queue.capture(1000, "USD", card, key="second", keyed=True, confirm=["duplicate"])
    assert confirmed.state is TransactionState.CAPTURED
    assert queue.offline_status().total_amount == 2000


def test_repeated_key_returns_the_stored_capture_before_any_rule(
    make_queue: Callable[..., TransactionQueue], pans: Iterator[str], clock: ManualClock
) -> None:
    queue = make_queue(limits=OfflineLimits(50_000, 1_000, 1), rules=RiskRules(velocity_max=1))
    card = Card(next(pans), "3012", "101")
    first = queue.capture(1000, "USD", card, key="k", keyed=True)
    clock.advance(60)
    assert queue.capture(1000, "USD", card, key="k", keyed=True) == first
    assert len(queue.audit("k")) == 1


def _race(lanes: tuple[TransactionQueue, TransactionQueue], card: Card, keys: tuple[str, str]) -> list[str]:
    """Both lanes capture the same card and amount at the same moment; what each one got."""
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def capture(queue: TransactionQueue, key: str) -> None:
        start.wait()
        try:
            queue.capture(777, "USD", card, key=key, keyed=True)
            outcomes.append("captured")
        except ConfirmationRequired:
            outcomes.append("asked")

    threads = [threading.Thread(target=capture, args=pair) for pair in zip(lanes, keys, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_two_connections_never_capture_the_same_swipe_twice(
    make_queue: Callable[..., TransactionQueue], pans: Iterator[str]
) -> None:
    """The duplicate check and the insert are one transaction, so a race cannot pass both."""
    lane_a = make_queue()
    lane_b = TransactionQueue(lane_a.path, device_key=lane_a._device_key, clock=lane_a.clock, lane="lane-1")
    try:
        for round_number in range(15):
            outcomes = _race(
                (lane_a, lane_b), Card(next(pans), "3012", "101"), (f"a{round_number}", f"b{round_number}")
            )
            assert outcomes == ["asked", "captured"]
        status = lane_a.offline_status()
        assert (status.count, status.total_amount) == (15, 15 * 777)
    finally:
        lane_b.close()

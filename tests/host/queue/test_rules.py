"""Offline limits and risk rules: refusals carry a cashier-readable reason, alerts are events."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from posbridge.host.queue import (
    AlertKind,
    ConfirmationRequired,
    OfflineLimits,
    QueueEvent,
    RiskRules,
    TransactionQueue,
)
from posbridge.protocols.cards import luhn_check_digit
from posbridge.protocols.errors import CaptureRefused, ConfigError
from posbridge.protocols.types import Card, MaskedCard, Swipe, Track, TrackFormat, TransactionState

from .conftest import ManualClock


def _card(pan: str, expiry: str = "3012", service_code: str = "101") -> Card:
    return Card(pan, expiry, service_code)


def test_per_transaction_limit(queue: TransactionQueue, pans: Iterator[str]) -> None:
    with pytest.raises(CaptureRefused) as caught:
        queue.capture(50_001, "USD", _card(next(pans)), key="big", keyed=True)
    assert "per payment" in caught.value.reason
    assert "500.00 USD" in caught.value.reason
    assert queue.get("big").state is TransactionState.REFUSED
    with pytest.raises(CaptureRefused):
        queue.capture(50_001, "USD", _card(next(pans)), key="big", keyed=True)
    assert len(queue.list()) == 1


def test_total_and_count_limits(make_queue: Callable[..., TransactionQueue], pans: Iterator[str]) -> None:
    queue = make_queue(limits=OfflineLimits(10_000, 25_000, 3))
    queue.capture(10_000, "USD", _card(next(pans)), keyed=True)
    queue.capture(10_000, "USD", _card(next(pans)), keyed=True)
    with pytest.raises(CaptureRefused, match="offline total"):
        queue.capture(10_000, "USD", _card(next(pans)), keyed=True)
    queue.capture(100, "USD", _card(next(pans)), keyed=True)
    with pytest.raises(CaptureRefused, match="already held offline"):
        queue.capture(100, "USD", _card(next(pans)), keyed=True)
    status = queue.offline_status()
    assert (status.count, status.total_amount) == (3, 20_100)
    assert queue.status().by_state == {"captured": 3, "refused": 2}


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        OfflineLimits(max_count=0)


def test_duplicate_swipe_asks_the_cashier(
    queue: TransactionQueue, pans: Iterator[str], clock: ManualClock
) -> None:
    events: list[QueueEvent] = []
    queue.subscribe(events.append)
    card = _card(next(pans))
    queue.capture(1250, "USD", card, keyed=True)
    with pytest.raises(ConfirmationRequired) as caught:
        queue.capture(1250, "USD", card, keyed=True)
    assert caught.value.kind == "duplicate"
    assert "charge again" in caught.value.reason
    alerts = [event.alert for event in events if event.alert is not None]
    assert [alert.kind for alert in alerts] == [AlertKind.DUPLICATE]
    assert alerts[0].needs_confirmation
    assert alerts[0].to_json()["card"]["pan"].startswith("400000")
    confirmed = queue.capture(1250, "USD", card, keyed=True, confirm=["duplicate"])
    assert confirmed.state is TransactionState.CAPTURED
    clock.advance(121)
    queue.capture(1250, "USD", card, keyed=True)
    assert len(queue.list()) == 3


def test_velocity_per_card(queue: TransactionQueue, pans: Iterator[str]) -> None:
    card = _card(next(pans))
    for amount in range(100, 105):
        queue.capture(amount, "USD", card, keyed=True)
    with pytest.raises(ConfirmationRequired) as caught:
        queue.capture(200, "USD", card, keyed=True)
    assert caught.value.kind == "velocity"
    queue.capture(201, "USD", _card(next(pans)), keyed=True)


def test_expired_card_refused(queue: TransactionQueue, pans: Iterator[str]) -> None:
    with pytest.raises(CaptureRefused, match="expired") as caught:
        queue.capture(100, "USD", _card(next(pans), expiry="2510"), keyed=True, key="old")
    assert caught.value.kind == "expired_card"
    assert queue.get("old").state is TransactionState.REFUSED


def test_chip_card_swiped(queue: TransactionQueue, pans: Iterator[str]) -> None:
    pan = next(pans)
    swipe = Swipe((Track(2, TrackFormat.BCD, f"{pan}=30122010000"),), 0.0, 0.1)
    with pytest.raises(ConfirmationRequired, match="insert the chip"):
        queue.capture(100, "USD", swipe)
    assert queue.capture(100, "USD", swipe, confirm=["chip_swiped"]).state is TransactionState.CAPTURED
    keyed = queue.capture(300, "USD", _card(next(pans), service_code="201"), keyed=True)
    assert keyed.state is TransactionState.CAPTURED


def test_luhn_failure_refused(queue: TransactionQueue) -> None:
    body = "400000123456789"
    wrong = body + str((int(luhn_check_digit(body)) + 1) % 10)
    with pytest.raises(CaptureRefused, match="check digit") as caught:
        queue.capture(100, "USD", _card(wrong), keyed=True, key="typo")
    assert caught.value.kind == "luhn"


def test_bin_block_list(queue: TransactionQueue) -> None:
    from posbridge.protocols.cards import generate_test_pan

    with pytest.raises(CaptureRefused, match="blocked"):
        queue.capture(100, "USD", _card(generate_test_pan(prefix="510510")), keyed=True)


def test_blocked_bin_applies_to_dongle_payloads(queue: TransactionQueue) -> None:
    from posbridge.protocols.cards import generate_test_pan
    from posbridge.protocols.types import EncryptedCardData

    masked = MaskedCard.from_pan(generate_test_pan(prefix="510510"), "3012", "101")
    with pytest.raises(CaptureRefused, match="blocked"):
        queue.capture(100, "USD", EncryptedCardData(bytes(12), bytes(16), masked))


def test_rules_configurable(make_queue: Callable[..., TransactionQueue], pans: Iterator[str]) -> None:
    queue = make_queue(rules=RiskRules(duplicate_window_s=0.0, velocity_max=100))
    card = _card(next(pans))
    queue.capture(1250, "USD", card, keyed=True)
    queue.capture(1250, "USD", card, keyed=True)
    assert len(queue.list()) == 2

"""Presence from check-in/out events, pay by check-in, and the retention of presence rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from posbridge.host.customers import Customer, CustomerRegistry
from posbridge.host.queue import TransactionQueue
from posbridge.protocols.errors import CaptureRefused
from posbridge.protocols.types import BeaconId, CheckIn, CheckOut, TransactionState, Zone

from .conftest import ManualClock

BEACON = BeaconId("ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:7")
ALICE = Customer("c-alice", "Alice", (str(BEACON),), "tok_alice")


def _check_in(customer: str = "c-alice") -> CheckIn:
    return CheckIn(t=1.0, beacon=BEACON, customer=customer, zone=Zone.COUNTER, distance_m=0.4)


def _check_out(customer: str = "c-alice") -> CheckOut:
    return CheckOut(t=9.0, beacon=BEACON, customer=customer, zone=Zone.GONE, distance_m=None)


def test_pay_by_check_in_carries_the_token_not_card_data(queue: TransactionQueue) -> None:
    queue.record_presence(_check_in())
    assert queue.checked_in() == ["c-alice"]
    transaction = queue.capture(2500, "USD", ALICE, key="sale1")
    assert (transaction.source, transaction.customer, transaction.card) == ("checkin", "c-alice", None)
    body = queue.claim_for_forwarding()[0].request_body()
    assert body["account_token"] == "tok_alice"
    assert "card" not in body
    assert [row["sale_key"] for row in queue.presence_rows()] == ["sale1"]


def test_not_checked_in_is_refused(queue: TransactionQueue) -> None:
    with pytest.raises(CaptureRefused, match="not checked in"):
        queue.capture(2500, "USD", ALICE)


def test_check_out_voids_nothing(queue: TransactionQueue) -> None:
    queue.record_presence(_check_in())
    queue.capture(2500, "USD", ALICE, key="sale1")
    queue.record_presence(_check_out())
    assert queue.checked_in() == []
    assert queue.get("sale1").state is TransactionState.CAPTURED


def test_presence_not_attached_to_a_sale_is_deleted_after_retention(
    queue: TransactionQueue, clock: ManualClock
) -> None:
    queue.record_presence(_check_in())
    queue.capture(2500, "USD", ALICE, key="sale1")
    queue.record_presence(_check_out())
    queue.record_presence(_check_in("c-bob"))
    clock.advance(23 * 3600)
    assert queue.purge_presence() == 0
    clock.advance(2 * 3600)
    assert queue.purge_presence() == 2
    assert [(row["customer"], row["sale_key"]) for row in queue.presence_rows()] == [("c-alice", "sale1")]


def test_presence_events_reach_listeners(queue: TransactionQueue) -> None:
    seen = []
    queue.subscribe(lambda event: seen.append(event.presence))
    queue.record_presence(_check_in())
    assert seen[0]["event"] == "check_in"
    assert seen[0]["customer"] == "c-alice"


def test_registry_names_the_beacon_and_pays_by_customer_id(
    make_queue: Callable[..., TransactionQueue],
) -> None:
    bob = Customer("c-bob", "Bob", ("eddystone-uid:00112233445566778899:000000000001",), None)
    queue = make_queue(customers=CustomerRegistry([ALICE, bob]))
    queue.record_presence(CheckIn(t=1.0, beacon=BEACON, customer=None, zone=Zone.COUNTER, distance_m=0.5))
    assert queue.checked_in() == ["c-alice"]
    transaction = queue.capture_for_customer(1500, "USD", "c-alice")
    assert transaction.customer == "c-alice"
    with pytest.raises(CaptureRefused, match="not in the customer registry"):
        queue.capture_for_customer(1500, "USD", "c-nobody")
    with pytest.raises(CaptureRefused, match="no account"):
        queue.capture_for_customer(1500, "USD", "c-bob")


def test_only_the_customers_latest_event_at_this_lane_counts(queue: TransactionQueue) -> None:
    queue.record_presence(_check_in())
    queue.record_presence(_check_in("c-bob"))
    queue.record_presence(_check_out())
    with pytest.raises(CaptureRefused, match="not checked in"):
        queue.capture(2500, "USD", ALICE, key="after-check-out")
    queue.record_presence(_check_in(), lane="lane-2")
    with pytest.raises(CaptureRefused, match="not checked in"):
        queue.capture(2500, "USD", ALICE, key="other-lane")
    queue.record_presence(_check_in())
    assert queue.capture(2500, "USD", ALICE, key="back").state is TransactionState.CAPTURED

"""The lifecycle state machine and the append-only audit trail."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator

import pytest
from posbridge.host.queue import ALLOWED_TRANSITIONS, ProcessorAnswer, TransactionQueue, check_transition
from posbridge.protocols.errors import IllegalTransition, UnknownTransaction
from posbridge.protocols.types import Card, TransactionState

State = TransactionState


def test_every_pair_is_allowed_or_refused() -> None:
    for current, target in itertools.product(State, State):
        if target in ALLOWED_TRANSITIONS[current]:
            check_transition("k", current, target)
        else:
            with pytest.raises(IllegalTransition) as caught:
                check_transition("k", current, target)
            assert caught.value.current == current.value
            assert caught.value.target == target.value


def test_documented_path() -> None:
    path = [State.CAPTURED, State.FORWARDING, State.APPROVED, State.SETTLED]
    for current, target in itertools.pairwise(path):
        check_transition("k", current, target)
    assert not ALLOWED_TRANSITIONS[State.REFUSED]
    assert not ALLOWED_TRANSITIONS[State.SETTLED]


def test_queue_refuses_illegal_step_and_audits_legal_ones(
    queue: TransactionQueue, pans: Iterator[str]
) -> None:
    pan = next(pans)
    queue.capture(1000, "USD", Card(pan, "3012", "101"), key="k1", keyed=True)
    with pytest.raises(IllegalTransition):
        queue.transition("k1", State.APPROVED)
    queue.claim_for_forwarding()
    queue.record_answers([ProcessorAnswer("k1", State.APPROVED, None, "ref1")])
    queue.settle(["k1"])
    steps = [(entry.from_state, entry.to_state) for entry in queue.audit("k1")]
    assert steps == [
        (None, "captured"),
        ("captured", "forwarding"),
        ("forwarding", "approved"),
        ("approved", "settled"),
    ]
    assert queue.get("k1").processor_ref == "ref1"


def test_answer_delivered_twice_is_applied_once(queue: TransactionQueue, pans: Iterator[str]) -> None:
    queue.capture(1000, "USD", Card(next(pans), "3012", "101"), key="k1", keyed=True)
    queue.claim_for_forwarding()
    answer = ProcessorAnswer("k1", State.APPROVED, None, "ref1")
    assert queue.record_answers([answer]) == ["k1"]
    assert queue.record_answers([answer]) == []
    assert queue.record_answers([ProcessorAnswer("k1", State.DECLINED)]) == []
    assert queue.get("k1").state is State.APPROVED
    assert len(queue.audit("k1")) == 3


def test_audit_trail_is_append_only(queue: TransactionQueue, pans: Iterator[str]) -> None:
    queue.capture(1000, "USD", Card(next(pans), "3012", "101"), key="k1", keyed=True)
    raw = sqlite3.connect(queue.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE audit SET to_state='approved'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM audit")
    raw.close()


def test_unknown_key(queue: TransactionQueue) -> None:
    with pytest.raises(UnknownTransaction):
        queue.get("nope")
    with pytest.raises(KeyError):
        queue.transition("nope", State.FORWARDING)


def test_offline_position_follows_every_transition(queue: TransactionQueue, pans: Iterator[str]) -> None:
    def recount() -> tuple[int, int]:
        pending = [t for t in queue.list() if t.state in (State.CAPTURED, State.FORWARDING)]
        return len(pending), sum(t.amount for t in pending)

    for index in range(6):
        queue.capture(1000 + index, "USD", Card(next(pans), "3012", "101"), key=f"k{index}", keyed=True)
    queue.claim_for_forwarding(limit=4)
    queue.record_answers(
        [
            ProcessorAnswer("k0", State.APPROVED),
            ProcessorAnswer("k1", State.DECLINED),
            ProcessorAnswer("k2", State.FAILED, "HTTP 409"),
        ]
    )
    assert (
        (queue.offline_status().count, queue.offline_status().total_amount)
        == recount()
        == (3, 1003 + 1004 + 1005)
    )
    queue.retry(["k2"])
    queue.settle(["k0", "k1"])
    status = queue.offline_status()
    assert (status.count, status.total_amount) == recount() == (4, 1002 + 1003 + 1004 + 1005)


def test_expiring_nothing_takes_no_write_lock(queue: TransactionQueue, pans: Iterator[str]) -> None:
    """The forwarder looks for overdue payments on every pass; when there are none it must not
    queue up for the write lock the captures need (another connection holds it here)."""
    queue.capture(1000, "USD", Card(next(pans), "3012", "101"), key="k1", keyed=True)
    writer = sqlite3.connect(queue.path, isolation_level=None, timeout=0.0)
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert queue.expire_overdue() == []
        assert queue.mark_expired([]) == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert queue.get("k1").state is State.CAPTURED

"""Schema versions: a version 1 queue (from before ``user_version``) opens and is upgraded in place
with its transactions, audit trail and offline position intact; a newer file is refused."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from posbridge.host.queue import DeviceKey, ProcessorAnswer, TransactionQueue
from posbridge.host.queue.store import SCHEMA_VERSION
from posbridge.protocols.errors import QueueError
from posbridge.protocols.types import Card, MaskedCard, TransactionState

from .conftest import NOW, ManualClock

OLD_MASKED = MaskedCard("411111", "1111", 16, "visa", "3012", "101")
V1_SCHEMA = (Path(__file__).parent / "schema_v1.sql").read_text(encoding="utf-8")


def _version_1_queue(path: Path) -> None:
    """A version 1 file as posbridge wrote it: two pending payments (300 + 500), one approved."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    for key, amount, state in (
        ("old-1", 300, "captured"),
        ("old-2", 700, "captured"),
        ("old-3", 500, "captured"),
    ):
        db.execute(
            "INSERT INTO transactions(key, amount, currency, lane, source, state, created_at, updated_at,"
            " card_id) VALUES (?, ?, 'USD', 'lane-1', 'keyed', ?, ?, ?, ?)",
            (key, amount, state, NOW, NOW, f"customer:{key}"),
        )
    db.execute("UPDATE transactions SET state='approved' WHERE key='old-2'")
    db.execute("UPDATE transactions SET masked=? WHERE key='old-1'", (json.dumps(OLD_MASKED.__dict__),))
    db.execute(
        "INSERT INTO audit(key, at, from_state, to_state) VALUES ('old-2', ?, 'captured', 'approved')", (NOW,)
    )
    assert db.execute("SELECT count, total FROM offline_position").fetchone() == (2, 800)
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    db.close()


def _names(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()


def test_version_1_queue_is_upgraded_with_everything_kept(
    tmp_path: Path, device_key: DeviceKey, clock: ManualClock, pans: Iterator[str]
) -> None:
    path = tmp_path / "v1.db"
    _version_1_queue(path)
    queue = TransactionQueue(path, device_key=device_key, clock=clock)
    try:
        assert queue._db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert {"offline_position", "transactions_state"}.isdisjoint(_names(path))
        assert "transactions_pending" in _names(path)
        status = queue.offline_status()
        assert (status.count, status.total_amount) == (2, 800)
        assert [(t.key, t.state) for t in queue.list()] == [
            ("old-1", TransactionState.CAPTURED),
            ("old-2", TransactionState.APPROVED),
            ("old-3", TransactionState.CAPTURED),
        ]
        assert queue.get("old-1").card == OLD_MASKED
        assert dict(queue.unpublished())["old-1"].find(b'"masked":{"first6":"411111"') > 0
        assert [(e.from_state, e.to_state) for e in queue.audit("old-2")] == [
            (None, "captured"),
            ("captured", "approved"),
        ]
        queue.capture(1000, "USD", Card(next(pans), "3012", "101"), key="new", keyed=True)
        assert (queue.offline_status().count, queue.offline_status().total_amount) == (3, 1800)
        assert [p.key for p in queue.claim_for_forwarding()] == ["old-1", "old-3", "new"]
        queue.record_answers([ProcessorAnswer("old-1", TransactionState.APPROVED)])
        assert (queue.offline_status().count, queue.offline_status().total_amount) == (2, 1500)
        assert [(e.key, e.to_state) for e in queue.audit()] == [
            ("old-1", "captured"),
            ("old-2", "captured"),
            ("old-3", "captured"),
            ("old-2", "approved"),
            ("new", "captured"),
            ("old-1", "forwarding"),
            ("old-3", "forwarding"),
            ("new", "forwarding"),
            ("old-1", "approved"),
        ]
    finally:
        queue.close()
    raw = sqlite3.connect(path)
    try:
        for statement in ("UPDATE audit SET to_state='declined'", "DELETE FROM audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)
    finally:
        raw.close()
    reopened = TransactionQueue(path, device_key=device_key, clock=clock)
    try:
        assert (reopened.offline_status().count, reopened.offline_status().total_amount) == (2, 1500)
    finally:
        reopened.close()


def test_empty_version_1_queue_is_upgraded(
    tmp_path: Path, device_key: DeviceKey, pans: Iterator[str]
) -> None:
    path = tmp_path / "empty.db"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()
    with TransactionQueue(path, device_key=device_key) as queue:
        assert queue.offline_status().count == 0
        queue.capture(1000, "USD", Card(next(pans), "3012", "101"), keyed=True)
        assert queue.offline_status().count == 1


def test_newer_schema_is_refused_with_what_to_do(tmp_path: Path, device_key: DeviceKey) -> None:
    path = tmp_path / "future.db"
    TransactionQueue(path, device_key=device_key).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(QueueError, match="upgrade posbridge") as refused:
        TransactionQueue(path, device_key=device_key)
    assert refused.value.version == SCHEMA_VERSION + 1  # type: ignore[attr-defined]


def test_what_the_forwarder_and_console_ask_is_answered_from_an_index(
    queue: TransactionQueue, pans: Iterator[str]
) -> None:
    """Every SELECT the forwarder, the fleet outbox and ``show``/``status`` run is an index search
    (the pending partial index, the key, the audit trail's key), never a scan of every row."""
    queue.capture(1000, "USD", Card(next(pans), "3012", "101"), key="k1", keyed=True)
    statements: list[str] = []
    queue._db.set_trace_callback(statements.append)
    try:
        queue.claim_for_forwarding()
        queue.unpublished()
        queue.expire_overdue()
        queue.offline_status()
        queue.get("k1")
        queue.audit("k1")
    finally:
        queue._db.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 6
    for statement in selects:
        plan = " / ".join(row[3] for row in queue._db.execute("EXPLAIN QUERY PLAN " + statement))
        newest_row = "ORDER BY seq DESC LIMIT 1" in statement
        assert newest_row or "INDEX" in plan or "PRIMARY KEY" in plan, (statement, plan)

"""Storage upkeep: WAL checkpoints run on a background connection, the WAL rewinds instead of
growing, new databases get small pages."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from posbridge.host.queue import DeviceKey, OfflineLimits, TransactionQueue
from posbridge.host.queue.checkpointer import AUTOCHECKPOINT_PAGES, BackgroundCheckpointer
from posbridge.host.queue.store import PAGE_SIZE
from posbridge.protocols.types import Card


def _rows_in_database_file(queue: TransactionQueue, tmp_path: Path) -> int:
    """Transactions already folded into the main database file (a copy read without its WAL)."""
    copy = tmp_path / "folded.db"
    shutil.copyfile(queue.path, copy)
    raw = sqlite3.connect(copy)
    try:
        return int(raw.execute("SELECT COUNT(*) FROM transactions").fetchone()[0])
    finally:
        raw.close()


def _wait_for(condition: Callable[[], bool], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_captures_reach_the_database_file_through_background_checkpoints(
    make_queue: Callable[..., TransactionQueue], pans: Iterator[str], tmp_path: Path
) -> None:
    queue = make_queue(checkpoint_after_commits=5)
    for index in range(12):
        queue.capture(100 + index, "USD", Card(next(pans), "3012", "101"), keyed=True)
    _wait_for(lambda: queue.checkpointer.count >= 2)
    assert queue.checkpointer.count >= 2
    assert _rows_in_database_file(queue, tmp_path) >= 10
    assert queue._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES


def test_checkpointer_folds_the_wal_after_its_commit_count(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t(x)")
    checkpointer = BackgroundCheckpointer(path, after_commits=3)
    try:
        for value in range(2):
            db.execute("INSERT INTO t VALUES (?)", (value,))
            checkpointer.committed()
        assert checkpointer.count == 0
        db.execute("INSERT INTO t VALUES (2)")
        checkpointer.committed()
        _wait_for(lambda: checkpointer.count == 1)
    finally:
        checkpointer.close()
    assert checkpointer.count == 1
    assert checkpointer.busy_s > 0
    assert not checkpointer._thread.is_alive()
    copy = tmp_path / "folded.db"
    shutil.copyfile(path, copy)
    raw = sqlite3.connect(copy)
    assert raw.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3
    raw.close()
    db.close()


def test_close_stops_the_thread_and_truncates_the_wal(
    make_queue: Callable[..., TransactionQueue], pans: Iterator[str]
) -> None:
    queue = make_queue()
    queue.capture(100, "USD", Card(next(pans), "3012", "101"), keyed=True)
    queue.close()
    assert not queue.checkpointer._thread.is_alive()
    wal = queue.path.with_name(queue.path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_new_database_uses_small_pages_and_an_old_one_keeps_its_own(
    tmp_path: Path, device_key: DeviceKey
) -> None:
    fresh = TransactionQueue(tmp_path / "fresh.db", device_key=device_key)
    assert fresh._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    fresh.close()
    old_path = tmp_path / "old.db"
    old = sqlite3.connect(old_path)
    old.execute("PRAGMA page_size=4096")
    old.execute("PRAGMA journal_mode=WAL")
    old.close()
    reopened = TransactionQueue(old_path, device_key=device_key)
    assert reopened._db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert reopened.offline_status().count == 0
    reopened.close()


def test_the_wal_rewinds_instead_of_growing(
    make_queue: Callable[..., TransactionQueue], pans: Iterator[str]
) -> None:
    """Every capture writes at least five WAL frames (its row, key, card and pending index
    entries and audit entry), so these captures write 2.5 times the automatic checkpoint's
    pages; the WAL stays within twice that (the background checkpoint may hold off the
    automatic one for a while) because it is rewound and written again from its start."""
    queue = make_queue(limits=OfflineLimits(10**6, 10**12, 10**6))
    page_size = queue._db.execute("PRAGMA page_size").fetchone()[0]
    wal = queue.path.with_name(queue.path.name + "-wal")
    captures = AUTOCHECKPOINT_PAGES // 2
    largest = 0
    for index in range(captures):
        queue.capture(100 + index, "USD", Card(next(pans), "3012", "101"), keyed=True)
        largest = max(largest, wal.stat().st_size)
    assert largest <= 32 + 2 * AUTOCHECKPOINT_PAGES * (page_size + 24)
    assert queue.offline_status().count == captures
    assert len(queue.audit()) == captures


def test_a_truncate_checkpoint_empties_the_wal_while_background_checkpoints_run(
    make_queue: Callable[..., TransactionQueue], pans: Iterator[str]
) -> None:
    """A ``TRUNCATE`` checkpoint (run after card data is destroyed) returns busy at once while
    the background connection checkpoints; the queue holds that off, so the WAL -- holding the
    overwritten sealed records -- is emptied every time. Each capture wakes the background
    thread; the truncation follows as soon as it is awake (without the hold-off, about half of
    them found it checkpointing)."""
    queue = make_queue(checkpoint_after_commits=1, limits=OfflineLimits(10**6, 10**12, 10**6))
    wal = queue.path.with_name(queue.path.name + "-wal")
    left_in_wal = []
    for index in range(80):
        queue.capture(100 + index, "USD", Card(next(pans), "3012", "101"), keyed=True)
        deadline = time.monotonic() + 10
        while queue.checkpointer._due.is_set() and time.monotonic() < deadline:
            time.sleep(0)
        queue.checkpoint()
        left_in_wal.append(wal.stat().st_size)
    assert queue.checkpointer.count > 0
    assert set(left_in_wal) == {0}

"""WAL checkpoints off the capture path (SQLite "Write-Ahead Logging" §6, "Checkpointing").

With ``synchronous=FULL`` a capture is durable once its frames are in the WAL and the WAL is
synced; folding the WAL back into the database (a checkpoint: write the pages, sync the
database) is upkeep, not durability. SQLite's automatic checkpoint runs inside whichever commit
crosses ``wal_autocheckpoint`` pages, which makes that capture wait for two more syncs -- the
slowest one in a hundred. :class:`BackgroundCheckpointer` runs a ``PASSIVE`` checkpoint on its
own connection and thread once every ``after_commits`` commits, so captures never wait for it
(a passive checkpoint takes no writer lock); the queue keeps SQLite's automatic checkpoint only
as a safety valve at :data:`SAFETY_AUTOCHECKPOINT_PAGES`. After a complete checkpoint the next
commit rewinds the WAL, so the file is overwritten in place rather than grown.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger("posbridge.queue")

CHECKPOINT_AFTER_COMMITS = 500
"""Commits between background checkpoints (about 4,500 WAL pages, 4.5 MB, of captures). Each
checkpoint also costs the next commit one more sync (the rewound WAL's new header), so they are
kept rare: one capture in 500 pays it, well beyond the 99th percentile."""

SAFETY_AUTOCHECKPOINT_PAGES = 8000
"""``wal_autocheckpoint`` of the capture connection: reached only if the background thread lags."""


class BackgroundCheckpointer:
    """A daemon thread that checkpoints the WAL of ``path`` after every ``after_commits`` commits.

    Call :meth:`committed` after each commit (cheap: a counter) and :meth:`close` before closing
    the database. ``count`` and ``busy_s`` (seconds spent checkpointing) report its work.
    """

    def __init__(self, path: Path, after_commits: int = CHECKPOINT_AFTER_COMMITS) -> None:
        self.path = path
        self.after_commits = after_commits
        self.count = 0
        self.busy_s = 0.0
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {path.name}", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Note one commit; wakes the thread when a checkpoint is due."""
        self._commits += 1
        if self._commits >= self.after_commits:
            self._commits = 0
            self._due.set()

    def close(self) -> None:
        """Stop the thread (after a checkpoint in progress finishes)."""
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                started = time.perf_counter()
                try:
                    if db is None:
                        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
                        db.execute("PRAGMA synchronous=FULL")
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as error:
                    log.debug("background checkpoint skipped: %s", error)
                self.busy_s += time.perf_counter() - started
                self.count += 1
        finally:
            if db is not None:
                db.close()

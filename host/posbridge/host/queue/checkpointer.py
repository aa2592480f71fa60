"""WAL checkpoints off the capture path (SQLite "Write-Ahead Logging" §6, "Checkpointing").

With ``synchronous=FULL`` a capture is durable once its frames are in the WAL and the WAL is
synced; folding the WAL back into the database (a checkpoint: write the pages, sync the
database) is upkeep, not durability. :class:`BackgroundCheckpointer` runs a ``PASSIVE``
checkpoint on its own connection and thread once every ``after_commits`` commits, so captures do
not do that work (a passive checkpoint takes no writer lock). A passive checkpoint that runs
while captures go on cannot catch up with the frames they append meanwhile, and a WAL rewinds
(is written again from its start, in place) only after a checkpoint has caught up: so the
capture connection keeps SQLite's automatic checkpoint at :data:`AUTOCHECKPOINT_PAGES`, a little
beyond what ``after_commits`` commits write. The capture whose commit crosses it folds only the
frames appended since the background checkpoint began, and the next commit rewinds the WAL.
Without that the WAL grew to 8 MiB before it ever rewound, and a commit that grows a file
costs more to sync than one that overwrites it (the file system also logs the new size).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

log = logging.getLogger("posbridge.queue")

CHECKPOINT_AFTER_COMMITS = 250
"""Commits between background checkpoints (about 1,900 WAL frames of 1 KiB pages, 2 MiB, of
captures). Each checkpoint also costs the next commit one more sync (the rewound WAL's new
header), so they stay rare: one capture in 250 pays it, beyond the 99th percentile."""

AUTOCHECKPOINT_PAGES = 2048
"""``wal_autocheckpoint`` of the capture connection: just past the WAL frames of
:data:`CHECKPOINT_AFTER_COMMITS` captures, so the WAL rewinds about every 2 MiB (and folds
everything itself if the background thread lags). With 2,048 pages against 8,000 the side-by-side
benchmark gave captures/persist-queue puts of 0.59-0.61 against 0.50-0.56."""


class BackgroundCheckpointer:
    """A daemon thread that checkpoints the WAL of ``path`` after every ``after_commits`` commits.

    Call :meth:`committed` after each commit (cheap: a counter) and :meth:`close` before closing
    the database; hold :meth:`paused` around a ``TRUNCATE`` checkpoint of another connection
    (which fails at once, ``SQLITE_BUSY``, while this one is checkpointing). ``count`` and
    ``busy_s`` (seconds spent checkpointing) report its work.
    """

    def __init__(self, path: Path, after_commits: int = CHECKPOINT_AFTER_COMMITS) -> None:
        self.path = path
        self.after_commits = after_commits
        self.count = 0
        self.busy_s = 0.0
        self._commits = 0
        self._due = threading.Event()
        self._checkpointing = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {path.name}", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Note one commit; wakes the thread when a checkpoint is due."""
        self._commits += 1
        if self._commits >= self.after_commits:
            self._commits = 0
            self._due.set()

    def paused(self) -> AbstractContextManager[object]:
        """A context in which this thread runs no checkpoint (entering waits for one in progress)."""
        return self._checkpointing

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
                    with self._checkpointing:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as error:
                    log.debug("background checkpoint skipped: %s", error)
                self.busy_s += time.perf_counter() - started
                self.count += 1
        finally:
            if db is not None:
                db.close()

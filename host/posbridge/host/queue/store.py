"""The durable transaction queue: a SQLite outbox (issue 7, "posbridge.host.queue").

Durability: WAL journal with ``synchronous=FULL`` (SQLite "Write-Ahead Logging" §3: with FULL
the WAL is synced at every commit, so a committed capture survives power loss), one
``BEGIN IMMEDIATE`` transaction per capture, and the capture returns only after the commit. The
idempotency key is the primary key: capturing a key again returns the first transaction, so a
caller that did not see the answer (a crash, a timeout) simply sends the same key again.

Card data at rest (PCI DSS 3.3.1, 3.3.2, 3.5.1): the clear part of each capture is sealed by
:class:`~posbridge.host.queue.sealing.DeviceKey` under its own data key; when the processor
answers, the sealed data and its wrapped key are overwritten (``secure_delete=ON`` zeroes the
freed pages) and the WAL is checkpointed with ``TRUNCATE``. Only :class:`MaskedCard` fields and
a keyed fingerprint of the PAN are stored in clear. DUKPT payloads from a dongle are stored as
they arrived (ciphertext + KSN).

Every state change goes through :func:`~posbridge.host.queue.lifecycle.check_transition` and
appends a row to the ``audit`` table, which triggers keep append-only.

A capture writes as few pages (WAL frames, each synced at commit) as it can: transaction rows are
never deleted, so their rowids grow without ``AUTOINCREMENT`` (no ``sqlite_sequence`` page); the
offline position and the audit numbering ride on the newest row, whose page the insert writes
anyway (no position table); the audit trail is one rowid b-tree appended to (no key index); the
forwarder's work list indexes pending rows only; generated idempotency keys sort by creation
time (:meth:`TransactionQueue.new_key`), so the key index grows at its right edge; and WAL
checkpoints run on a background connection (:mod:`~posbridge.host.queue.checkpointer`), one
capture in about 250 folding only what that left so the WAL rewinds (overwritten in place, not
grown). A capture writes about 7.7 frames of 1 KiB: the newest leaf of the table, of the audit
trail, of the pending index and of the key index, a random leaf of the card index (the
duplicate and velocity rules look a card up by its fingerprint) with the splits of these five
b-trees, and page 1 when the file grows. Schema version 1 wrote 8 frames of 2 KiB.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbridge.host.queue.capture import AccountHolder, CaptureRequest, json_text
from posbridge.host.queue.checkpointer import (
    AUTOCHECKPOINT_PAGES,
    CHECKPOINT_AFTER_COMMITS,
    BackgroundCheckpointer,
)

if TYPE_CHECKING:
    from posbridge.host.customers import CustomerRegistry
from posbridge.host.queue.events import EventHub, Listener, QueueEvent
from posbridge.host.queue.lifecycle import ANSWERED_STATES, check_transition
from posbridge.host.queue.rules import (
    DAY_S,
    Alert,
    AlertKind,
    ConfirmationRequired,
    OfflineLimits,
    RiskRules,
    bin_block_alert,
    chip_swiped_alert,
    hard_rule_alert,
    offline_limit_refusal,
)
from posbridge.host.queue.sealing import DeviceKey, SealedRecord
from posbridge.protocols.cards import redact_pans
from posbridge.protocols.errors import (
    CaptureRefused,
    IllegalTransition,
    QueueError,
    UnknownTransaction,
    UsageError,
)
from posbridge.protocols.types import (
    Card,
    ChipRead,
    EncryptedCardData,
    MaskedCard,
    PresenceEvent,
    Swipe,
    Transaction,
    TransactionState,
)

log = logging.getLogger("posbridge.queue")

State = TransactionState

PENDING_SQL = "('captured', 'forwarding')"
"""The pending states as an SQL list, written literally in queries so the planner can use the
partial index ``transactions_pending`` (a bound parameter cannot prove a row is in it)."""

SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of the current schema. 0: an empty file or a version 1 database (from
before schema versions: a full state index and an ``offline_position`` table), which
:meth:`TransactionQueue._create_or_migrate` upgrades in one transaction."""

_AUDIT_TABLE = """CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT,
    previous INTEGER
)"""
"""The audit trail in the order it was written (``id``). A capture's entry is appended to the
end of one rowid b-tree (the cheapest write SQLite has) and no key index is kept: each entry
links to the transaction's ``previous`` entry and the transaction row holds its latest one
(``last_audit``), so a transaction's trail is a walk back from its row (a handful of rowid
lookups). Every entry also names its ``key``."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    lane TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    masked TEXT,
    card_id TEXT,
    customer TEXT,
    reason TEXT,
    processor_ref TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    nonce BLOB,
    sealed BLOB,
    wrapped_key BLOB,
    dukpt_ksn BLOB,
    dukpt_ciphertext BLOB,
    dukpt_scheme TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    published_at REAL,
    offline_count INTEGER NOT NULL DEFAULT 0,
    offline_total INTEGER NOT NULL DEFAULT 0,
    last_audit INTEGER
);
CREATE INDEX IF NOT EXISTS transactions_pending ON transactions(seq, next_attempt_at)
    WHERE state IN {PENDING_SQL};
CREATE INDEX IF NOT EXISTS transactions_card ON transactions(card_id, created_at);
CREATE TRIGGER IF NOT EXISTS offline_leave AFTER UPDATE OF state ON transactions
    WHEN OLD.state IN {PENDING_SQL} AND NEW.state NOT IN {PENDING_SQL}
    BEGIN UPDATE transactions SET offline_count=offline_count-1, offline_total=offline_total-OLD.amount
        WHERE seq=(SELECT MAX(seq) FROM transactions); END;
CREATE TRIGGER IF NOT EXISTS offline_enter AFTER UPDATE OF state ON transactions
    WHEN OLD.state NOT IN {PENDING_SQL} AND NEW.state IN {PENDING_SQL}
    BEGIN UPDATE transactions SET offline_count=offline_count+1, offline_total=offline_total+NEW.amount
        WHERE seq=(SELECT MAX(seq) FROM transactions); END;
{_AUDIT_TABLE};
CREATE TRIGGER IF NOT EXISTS audit_on_insert AFTER INSERT ON transactions
    BEGIN INSERT INTO audit(id, key, at, from_state, to_state, detail)
        VALUES (NEW.last_audit, NEW.key, NEW.created_at, NULL, NEW.state,
                COALESCE(NEW.reason, NEW.source || ' capture'));
    END;
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE IF NOT EXISTS presence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lane TEXT NOT NULL,
    beacon TEXT NOT NULL,
    customer TEXT,
    event TEXT NOT NULL,
    zone TEXT,
    at REAL NOT NULL,
    sale_key TEXT
);
CREATE INDEX IF NOT EXISTS presence_at ON presence(at) WHERE sale_key IS NULL;
PRAGMA user_version={SCHEMA_VERSION};
"""
"""Schema version 2. The offline position (count and total of pending payments) rides on the
newest transaction row, whose page every capture writes anyway: a capture stores the position
after itself, and a state change in or out of the pending states moves the newest row's figures
(triggers ``offline_leave``/``offline_enter``). The forwarder's work list is a partial index of
pending rows only, so answered rows stop costing index pages."""

_MIGRATE_FROM_1 = f"""
ALTER TABLE transactions ADD COLUMN offline_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN offline_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN last_audit INTEGER;
ALTER TABLE audit ADD COLUMN previous INTEGER;
UPDATE transactions SET
    offline_count=(SELECT COUNT(*) FROM transactions WHERE state IN {PENDING_SQL}),
    offline_total=(SELECT COALESCE(SUM(amount), 0) FROM transactions WHERE state IN {PENDING_SQL})
    WHERE seq=(SELECT MAX(seq) FROM transactions);
DROP TRIGGER IF EXISTS offline_enter_on_insert;
DROP TRIGGER IF EXISTS offline_leave;
DROP TRIGGER IF EXISTS offline_enter;
DROP TABLE IF EXISTS offline_position;
DROP INDEX IF EXISTS transactions_state;
DROP TRIGGER IF EXISTS audit_on_insert;
DROP TRIGGER IF EXISTS audit_no_update;
DROP TRIGGER IF EXISTS audit_no_delete;
UPDATE audit SET previous=(SELECT MAX(earlier.id) FROM audit AS earlier
    WHERE earlier.key=audit.key AND earlier.id<audit.id);
UPDATE transactions SET last_audit=(SELECT MAX(id) FROM audit WHERE audit.key=transactions.key);
DROP INDEX IF EXISTS audit_key;
"""
"""Version 1 -> 2: the offline position moves from its own table onto the newest row (recounted
from the rows themselves), the full state index gives way to the partial pending index, and the
audit entries are linked to each transaction's previous one (numbers unchanged) in place of the
audit key index."""

_CAPTURE_LOOKUP = (
    "SELECT (SELECT state FROM transactions WHERE key=?1),"
    " COALESCE(SUM(amount=?2 AND created_at>?3), 0), COALESCE(SUM(created_at>?4), 0),"
    " (SELECT offline_count FROM transactions ORDER BY seq DESC LIMIT 1),"
    " (SELECT offline_total FROM transactions ORDER BY seq DESC LIMIT 1),"
    " (SELECT MAX(id) FROM audit)"
    " FROM transactions WHERE card_id=?5 AND created_at>?6 AND state!='refused'"
)
"""One statement per capture: the key's state if it exists, the card's captures within the
duplicate window at the same amount and within the velocity window, the offline position (from
the newest row) and the number of the last audit entry."""

_INSERT_TRANSACTION = (
    "INSERT INTO transactions(key, amount, currency, lane, source, state, masked, card_id, customer,"
    " reason, created_at, updated_at, nonce, sealed, wrapped_key, dukpt_ksn, dukpt_ciphertext,"
    " dukpt_scheme, offline_count, offline_total, last_audit)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

PAGE_SIZE = 1024
"""Page size of a new queue database (an existing one keeps its own). A capture changes six to
nine pages, each a WAL frame written and synced at commit: about 9 KiB per commit with 1 KiB
pages against 16 KiB with 2 KiB and 26 KiB with 4 KiB pages (rows are small; the extra splits
of smaller pages cost less than the bytes saved). 1 KiB pages gave captures/persist-queue puts
of 0.44-0.51 against 0.41-0.46 with 2 KiB pages on a fast disk (benchmarks/transaction_queue.py);
with time-ordered keys, 2 KiB and 4 KiB pages still cost more CPU per commit (more bytes to
write and checksum) than the splits they save."""

FORWARDING_LEASE_S = 30.0
"""How long a claimed transaction is left to one forwarder before another may look it up."""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit trail (``at`` in seconds since the epoch)."""

    key: str
    at: float
    from_state: str | None
    to_state: str
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict."""
        return {
            "key": self.key,
            "at": self.at,
            "from": self.from_state,
            "to": self.to_state,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class OfflineStatus:
    """Payments held before the processor answered, against the merchant's limits."""

    count: int
    total_amount: int
    oldest_age_s: float | None
    limits: OfflineLimits

    def to_json(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        return {
            "offline_count": self.count,
            "offline_total": self.total_amount,
            "oldest_age_s": self.oldest_age_s,
            "max_count": self.limits.max_count,
            "max_total": self.limits.max_total_amount,
            "max_transaction": self.limits.max_transaction_amount,
            "max_age_s": self.limits.max_age_s,
        }


@dataclass(frozen=True)
class QueueStatus:
    """Counts by state, the offline position and how many rows await publishing (fleet)."""

    by_state: dict[str, int]
    offline: OfflineStatus
    unpublished: int

    def to_json(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        return {"by_state": self.by_state, **self.offline.to_json(), "unpublished": self.unpublished}


@dataclass(frozen=True)
class OutboundPayment:
    """A claimed transaction ready to send to the processor; holds clear card data in memory only.

    ``lookup_first`` is true when an earlier attempt may have reached the processor (unknown
    outcome), so the forwarder must ask for the processor's record before creating one.
    """

    key: str
    amount: int
    currency: str
    lane: str
    source: str
    created_at: float
    masked: MaskedCard | None
    secret: dict[str, Any] = field(repr=False)
    encrypted: EncryptedCardData | None
    lookup_first: bool
    attempts: int = 1

    def request_body(self) -> dict[str, Any]:
        """The processor request body (see :mod:`posbridge.host.processor_sim`)."""
        body: dict[str, Any] = {
            "key": self.key,
            "amount": self.amount,
            "currency": self.currency,
            "lane": self.lane,
            "source": self.source,
        }
        if self.encrypted is not None:
            body["dukpt"] = {
                "ksn": self.encrypted.ksn.hex(),
                "ciphertext": self.encrypted.ciphertext.hex(),
                "scheme": self.encrypted.scheme,
            }
        elif "account_token" in self.secret:
            body["account_token"] = self.secret["account_token"]
        else:
            body["card"] = dict(self.secret)
        return body


@dataclass(frozen=True)
class ProcessorAnswer:
    """The processor's answer for one key: ``status`` is approved, declined or failed."""

    key: str
    status: TransactionState
    reason: str | None = None
    processor_ref: str | None = None


_MASKED_FIELDS = ("first6", "last4", "pan_length", "brand", "expiry", "service_code")


def _masked_to_json(masked: MaskedCard | None) -> str | None:
    """The masked card as a compact JSON array in :data:`_MASKED_FIELDS` order (a third of the
    bytes of an object; rows written before schema version 2 hold objects, read as well)."""
    if masked is None:
        return None
    return (
        f"[{json_text(masked.first6)},{json_text(masked.last4)},{json_text(masked.pan_length)},"
        f"{json_text(masked.brand)},{json_text(masked.expiry)},{json_text(masked.service_code)}]"
    )


def _masked_fields(text: str | None) -> dict[str, Any] | None:
    """The stored masked card as a dict of :class:`MaskedCard` fields (array or object form)."""
    if not text:
        return None
    value = json.loads(text)
    return dict(zip(_MASKED_FIELDS, value, strict=True)) if isinstance(value, list) else dict(value)


def _state(name: TransactionState | str) -> TransactionState:
    """The state called ``name``, or a :class:`UsageError` that lists the states."""
    try:
        return State(name)
    except ValueError:
        names = ", ".join(state.value for state in State)
        raise UsageError(f"unknown transaction state {name!r}; one of {names}", state=name) from None


def _statements(script: str) -> builtins.list[str]:
    """The statements of a schema script, split where :func:`sqlite3.complete_statement` says."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [statement for statement in statements if statement]


def _masked_from_json(text: str | None) -> MaskedCard | None:
    fields = _masked_fields(text)
    return None if fields is None else MaskedCard(**fields)


class TransactionQueue:
    """The store-and-forward queue of one lane over a SQLite file (the embedded default).

    Thread-safe; blocking calls are short (one fsync'd commit). ``*_async`` variants run them in
    a worker thread for asyncio callers. Amounts are in minor units; times in seconds since the
    epoch from ``clock`` (injectable for tests).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        lane: str = "lane-1",
        device_key: DeviceKey | None = None,
        key_path: str | Path | None = None,
        limits: OfflineLimits | None = None,
        rules: RiskRules | None = None,
        presence_retention_s: float = DAY_S,
        customers: CustomerRegistry | None = None,
        clock: Callable[[], float] = time.time,
        checkpoint_after_commits: int = CHECKPOINT_AFTER_COMMITS,
    ) -> None:
        self.path = Path(path)
        self.customers = customers
        self.lane = lane
        self.limits = limits or OfflineLimits()
        self.rules = rules or RiskRules()
        self.presence_retention_s = presence_retention_s
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._device_key = device_key or DeviceKey.load_or_create(
            Path(key_path) if key_path else self.path.with_name(self.path.name + ".key")
        )
        self._lock = threading.RLock()
        self._hub = EventHub()
        self._alerts: collections.deque[Alert] = collections.deque(maxlen=200)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            self._create_or_migrate()
            self._capture_cursor = self._db.cursor()
        except sqlite3.Error as error:
            raise QueueError(
                f"cannot open the queue database {self.path}: {error}", path=str(self.path)
            ) from error
        self.checkpointer = BackgroundCheckpointer(self.path, checkpoint_after_commits)

    def _create_or_migrate(self) -> None:
        """Create the schema in a new file or bring an older one to :data:`SCHEMA_VERSION`.

        :class:`QueueError` for a file written by a newer posbridge (upgrade posbridge to open it).
        """
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise QueueError(
                f"the queue database {self.path} has schema version {version}, newer than this posbridge"
                f" understands ({SCHEMA_VERSION}): upgrade posbridge, or drain the queue with the newer one",
                path=str(self.path),
                version=version,
            )
        if version == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            has_rows = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='transactions'"
            ).fetchone()
            if version == 0 and has_rows:
                log.info("upgrading the queue database %s to schema version %d", self.path, SCHEMA_VERSION)
                for statement in _statements(_MIGRATE_FROM_1):
                    self._db.execute(statement)
            if version < SCHEMA_VERSION:
                for statement in _statements(SCHEMA):
                    self._db.execute(statement)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ plumbing

    @property
    def url(self) -> str:
        """The queue's URL (``sqlite:///PATH``)."""
        return f"sqlite:///{self.path}"

    def close(self) -> None:
        """Stop the background checkpoints, checkpoint the WAL (TRUNCATE) and close the database."""
        self.checkpointer.close()
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.debug("final WAL checkpoint skipped (database busy)")
            self._db.close()

    def __enter__(self) -> TransactionQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.checkpointer.committed()

    def _audit(
        self, db: sqlite3.Connection, key: str, old: str | None, new: str, detail: str | None, now: float
    ) -> None:
        """Append an audit entry for ``key`` linked to its previous one, and make it the latest."""
        entry = db.execute(
            "INSERT INTO audit(key, at, from_state, to_state, detail, previous) VALUES"
            " (?1, ?2, ?3, ?4, ?5, (SELECT last_audit FROM transactions WHERE key=?1))",
            (key, now, old, new, redact_pans(detail) if detail else None),
        ).lastrowid
        db.execute("UPDATE transactions SET last_audit=? WHERE key=?", (entry, key))

    def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it (so overwritten card data leaves the WAL).

        The background checkpoint is held off meanwhile: while it runs, a ``TRUNCATE`` checkpoint
        returns busy at once and leaves the WAL as it was. A checkpoint still blocked (by another
        process) is logged as a warning.
        """
        with self._lock, self.checkpointer.paused():
            busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            log.warning("the WAL of %s was not truncated (another connection is using it)", self.path)

    # ------------------------------------------------------------------ events

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(QueueEvent)`` on every change, alert and presence event; returns unsubscribe.

        A listener subscribed inside a running event loop is called on that loop; it may be a
        coroutine function.
        """
        return self._hub.subscribe(listener)

    def events(self) -> Any:
        """An async iterator of every :class:`QueueEvent` from now on."""
        return self._hub.stream()

    def recent_alerts(self) -> builtins.list[Alert]:
        """The last 200 alerts, oldest first."""
        return list(self._alerts)

    def _alert(self, alert: Alert) -> None:
        self._alerts.append(alert)
        self._hub.publish(QueueEvent("alert", alert=alert))

    def _changed(self, keys: Iterable[str]) -> builtins.list[Transaction]:
        """Announce the transactions ``keys`` name as they are now; returns them."""
        transactions = [self.get(key) for key in keys]
        for transaction in transactions:
            self._hub.publish(QueueEvent("transaction", transaction=transaction))
        return transactions

    # ------------------------------------------------------------------ capture

    def new_key(self) -> str:
        """A fresh idempotency key: ``tx_``, the wall-clock millisecond (12 hex digits), 80 random bits.

        Keys made later sort later (as ULIDs and UUIDv7 do), so the key index grows at its right
        edge -- one page written per capture, not a random one plus the splits around it -- and
        80 random bits keep keys made in the same millisecond apart (and unguessable).
        """
        return f"tx_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"

    def capture(
        self,
        amount: int,
        currency: str,
        source: Card | Swipe | ChipRead | EncryptedCardData | AccountHolder,
        *,
        key: str | None = None,
        confirm: Iterable[str] = (),
        keyed: bool = False,
    ) -> Transaction:
        """Capture a payment durably and return it (state ``captured``).

        ``source`` is a :class:`Swipe`, :class:`ChipRead`, keyed :class:`Card` (``keyed=True``),
        dongle :class:`EncryptedCardData` or a checked-in customer (``.id``, ``.account_token``).
        Raises :class:`CaptureRefused` (``.reason`` for the cashier) over an offline limit or a
        hard risk rule, :class:`ConfirmationRequired` when the cashier must confirm (then call
        again with ``confirm=[alert kind]``). The same ``key`` twice yields one transaction.
        """
        return self.capture_request(
            CaptureRequest.build(amount, currency, source, key=key, confirm=confirm, keyed=keyed)
        )

    async def capture_async(self, *args: Any, **kwargs: Any) -> Transaction:
        """:meth:`capture` in a worker thread."""
        return await asyncio.to_thread(self.capture, *args, **kwargs)

    def capture_request(self, request: CaptureRequest) -> Transaction:
        """Capture a prepared :class:`CaptureRequest` (see :meth:`capture`).

        One ``BEGIN IMMEDIATE`` transaction looks up the key, the card's recent history and the
        offline position in a single statement, inserts the row (a trigger appends its audit
        entry and moves the offline position) and commits; events go out after the commit.
        """
        key = request.key or self.new_key()
        now = self.clock()
        masked = request.masked
        card_id = self._card_id(request)
        static_alert = self._static_alert(request, key, now)
        sealed = (
            self._device_key.seal(request.sealed_payload(), key.encode())
            if request.encrypted is None
            else None
        )
        with self._lock:
            try:
                self._capture_cursor.execute("BEGIN IMMEDIATE")
                try:
                    state, alert, refusal = self._store_capture(
                        request, key, card_id, static_alert, sealed, now
                    )
                    if state is None and (alert is None or not alert.needs_confirmation):
                        self._capture_cursor.execute("COMMIT")
                        self.checkpointer.committed()
                    else:
                        self._db.execute("ROLLBACK")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise QueueError(f"capture {key} was not stored: {error}", key=key) from error
        if state is not None:
            return self._already_captured(key)
        if alert is not None:
            self._alert(alert)
            if alert.needs_confirmation:
                raise ConfirmationRequired(
                    alert.message, reason=alert.message, kind=alert.kind.value, key=key
                )
            refusal, kind = alert.message, alert.kind.value
        elif refusal is not None:
            self._alert(Alert(AlertKind.OFFLINE_LIMIT, refusal, key, masked, request.amount, now))
            kind = AlertKind.OFFLINE_LIMIT.value
        transaction = Transaction(
            key=key,
            amount=request.amount,
            currency=request.currency,
            card=masked,
            customer=request.customer,
            lane=self.lane,
            state=State.CAPTURED if refusal is None else State.REFUSED,
            created_at=now,
            updated_at=now,
            source=request.source,
            reason=refusal,
        )
        self._hub.publish(QueueEvent("transaction", transaction=transaction))
        if refusal is not None:
            raise CaptureRefused(refusal, reason=refusal, kind=kind, key=key)
        return transaction

    def _store_capture(
        self,
        request: CaptureRequest,
        key: str,
        card_id: str,
        static_alert: Alert | None,
        sealed: SealedRecord | None,
        now: float,
    ) -> tuple[str | None, Alert | None, str | None]:
        """Inside the capture transaction: ``(state of an existing key, alert, offline refusal)``.

        A new key is inserted as captured, or as refused (hard rule or offline limit); a soft
        alert the cashier has not confirmed inserts nothing.
        """
        duplicate_since = now - self.rules.duplicate_window_s
        velocity_since = now - self.rules.velocity_window_s
        state, duplicate, recent, count, total, last_audit = self._capture_cursor.execute(
            _CAPTURE_LOOKUP,
            (
                key,
                request.amount,
                duplicate_since,
                velocity_since,
                card_id,
                min(duplicate_since, velocity_since),
            ),
        ).fetchone()
        if state is not None:
            return state, None, None
        position = (count or 0, total or 0, last_audit or 0)
        alert = static_alert or self._history_alert(request, key, duplicate, recent, now)
        if alert is not None:
            if not alert.needs_confirmation:
                self._insert(
                    self._capture_cursor, request, key, None, State.REFUSED, alert.message, now, position
                )
            return None, alert, None
        refusal = offline_limit_refusal(self.limits, request.amount, request.currency, count or 0, total or 0)
        if refusal is not None:
            self._insert(self._capture_cursor, request, key, card_id, State.REFUSED, refusal, now, position)
        else:
            self._insert(
                self._capture_cursor, request, key, card_id, State.CAPTURED, None, now, position, sealed
            )
            if request.source == "checkin":
                self._attach_presence(self._capture_cursor, request, key)
        return None, None, refusal

    def _already_captured(self, key: str) -> Transaction:
        """The transaction a repeated key names (:class:`CaptureRefused` again if it was refused)."""
        transaction = self.get(key)
        if transaction.state is State.REFUSED:
            reason = transaction.reason or "refused"
            raise CaptureRefused(reason, reason=reason, kind="refused", key=key)
        return transaction

    def _card_id(self, request: CaptureRequest) -> str:
        if request.card is not None:
            return "pan:" + self._device_key.fingerprint(request.card.pan)
        if request.encrypted is not None:
            masked = request.encrypted.masked
            return f"masked:{masked.masked_pan}:{masked.expiry}"
        return f"customer:{request.customer}"

    def _static_alert(self, request: CaptureRequest, key: str, now: float) -> Alert | None:
        """The first rule the request breaks on its own: hard card rules, not checked in, chip swiped."""
        masked = request.masked
        if request.card is not None and masked is not None:
            hard = hard_rule_alert(self.rules, request.card.pan, masked, request.amount, key, now)
            if hard is not None:
                return hard
        elif masked is not None:
            hard = bin_block_alert(self.rules, masked, request.amount, key, now)
            if hard is not None:
                return hard
        if request.source == "checkin" and not self._checked_in(request.customer):
            return Alert(
                AlertKind.OFFLINE_LIMIT,
                f"customer {request.customer} is not checked in at {self.lane}",
                key,
                None,
                request.amount,
                now,
            )
        if masked is not None:
            chip = chip_swiped_alert(masked, request.source, request.amount, key, now)
            if chip is not None and chip.kind.value not in request.confirm:
                return chip
        return None

    def _history_alert(
        self,
        request: CaptureRequest,
        key: str,
        duplicate: int,
        recent: int,
        now: float,
    ) -> Alert | None:
        """A duplicate or velocity alert from the card's recent captures (unless confirmed)."""
        if not duplicate and recent < self.rules.velocity_max:
            return None
        masked = request.masked
        shown = masked.masked_pan if masked else f"customer {request.customer}"
        if duplicate and AlertKind.DUPLICATE.value not in request.confirm:
            return Alert(
                AlertKind.DUPLICATE,
                f"same card {shown} and amount within {self.rules.duplicate_window_s:g} s: "
                "charge again? (confirm to capture)",
                key,
                masked,
                request.amount,
                now,
            )
        if recent >= self.rules.velocity_max and AlertKind.VELOCITY.value not in request.confirm:
            return Alert(
                AlertKind.VELOCITY,
                f"card {shown} used {recent} times in {self.rules.velocity_window_s:g} s: "
                "check the customer (confirm to capture)",
                key,
                masked,
                request.amount,
                now,
            )
        return None

    def _pending(self, db: sqlite3.Connection) -> tuple[int, int]:
        """Count and total of payments not yet answered (carried by the newest row, so O(1))."""
        row = db.execute(
            "SELECT offline_count, offline_total FROM transactions ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _insert(
        self,
        db: sqlite3.Cursor,
        request: CaptureRequest,
        key: str,
        card_id: str | None,
        state: TransactionState,
        reason: str | None,
        now: float,
        position: tuple[int, int, int],
        sealed: SealedRecord | None = None,
    ) -> None:
        """Insert a new transaction; the ``audit_on_insert`` trigger appends its first audit entry.

        Only a captured row keeps card data (``sealed`` or the DUKPT payload); a refused one none.
        ``position`` is the offline count, total and last audit entry number before this row; the
        row stores the position after it (it is now the newest row, which carries it) and the
        number of its own audit entry.
        """
        count, total, last_audit = position
        if state is State.CAPTURED:
            count, total = count + 1, total + request.amount
        encrypted = request.encrypted if state is State.CAPTURED else None
        db.execute(
            _INSERT_TRANSACTION,
            (
                key,
                request.amount,
                request.currency,
                self.lane,
                request.source,
                state.value,
                _masked_to_json(request.masked),
                card_id,
                request.customer,
                reason,
                now,
                now,
                sealed.nonce if sealed else None,
                sealed.ciphertext if sealed else None,
                sealed.wrapped_key if sealed else None,
                encrypted.ksn if encrypted else None,
                encrypted.ciphertext if encrypted else None,
                encrypted.scheme if encrypted else None,
                count,
                total,
                last_audit + 1,
            ),
        )

    # ------------------------------------------------------------------ reading

    _COLUMNS = (
        "key, amount, currency, masked, customer, lane, state, created_at, updated_at, source, reason,"
        " processor_ref"
    )

    @staticmethod
    def _row(row: Sequence[Any]) -> Transaction:
        return Transaction(
            key=row[0],
            amount=row[1],
            currency=row[2],
            card=_masked_from_json(row[3]),
            customer=row[4],
            lane=row[5],
            state=State(row[6]),
            created_at=row[7],
            updated_at=row[8],
            source=row[9],
            reason=row[10],
            processor_ref=row[11],
        )

    def get(self, key: str) -> Transaction:
        """The transaction with idempotency key ``key``; :class:`UnknownTransaction` if none."""
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM transactions WHERE key=?", (key,)).fetchone()
        if row is None:
            raise UnknownTransaction(f"no transaction with key {key}", key=key)
        return self._row(row)

    def list(
        self, states: Iterable[TransactionState | str] | None = None, limit: int | None = None
    ) -> builtins.list[Transaction]:
        """Transactions in capture order, optionally only those in ``states``, at most ``limit`` (>= 0).

        An unknown state name or a negative limit is a :class:`UsageError`.
        """
        query, params = f"SELECT {self._COLUMNS} FROM transactions", []
        wanted = [_state(state).value for state in states] if states is not None else None
        if limit is not None and limit < 0:
            raise UsageError(f"a limit must not be negative, got {limit}", limit=limit)
        if wanted is not None:
            query += f" WHERE state IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)
        query += " ORDER BY seq"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self._lock:
            return [self._row(row) for row in self._db.execute(query, params)]

    def audit(self, key: str | None = None) -> builtins.list[AuditEntry]:
        """The audit trail, oldest first (of one transaction if ``key``)."""
        query = "SELECT key, at, from_state, to_state, detail FROM audit"
        params: tuple[str, ...] = ()
        if key is not None:
            query = (
                "WITH RECURSIVE trail(id) AS (SELECT last_audit FROM transactions WHERE key=?"
                " UNION ALL SELECT audit.previous FROM audit JOIN trail ON audit.id=trail.id"
                " WHERE audit.previous IS NOT NULL) " + query + " WHERE id IN trail"
            )
            params = (key,)
        with self._lock:
            return [AuditEntry(*row) for row in self._db.execute(query + " ORDER BY id", params)]

    def offline_status(self) -> OfflineStatus:
        """Count, total amount and oldest age of payments not yet answered, with the limits."""
        with self._lock:
            count, total = self._pending(self._db)
            oldest = self._db.execute(
                f"SELECT MIN(created_at) FROM transactions WHERE state IN {PENDING_SQL}"
            ).fetchone()[0]
        return OfflineStatus(count, total, None if oldest is None else self.clock() - oldest, self.limits)

    def status(self) -> QueueStatus:
        """Counts by state, the offline position and the number of rows not yet published."""
        with self._lock:
            by_state = dict(
                self._db.execute("SELECT state, COUNT(*) FROM transactions GROUP BY state").fetchall()
            )
            unpublished = self._db.execute(
                f"SELECT COUNT(*) FROM transactions WHERE published_at IS NULL AND state IN {PENDING_SQL}"
            ).fetchone()[0]
        return QueueStatus(by_state, self.offline_status(), unpublished)

    # ------------------------------------------------------------------ lifecycle

    def transition(self, key: str, target: TransactionState, reason: str | None = None) -> Transaction:
        """Move one transaction to ``target`` (:class:`IllegalTransition` if the lifecycle forbids it)."""
        now = self.clock()
        with self._transaction() as db:
            self._move(db, key, target, reason, now)
        return self._changed([key])[0]

    def _move(
        self,
        db: sqlite3.Connection,
        key: str,
        target: TransactionState,
        reason: str | None,
        now: float,
        processor_ref: str | None = None,
        destroy_secret: bool = False,
    ) -> TransactionState:
        row = db.execute("SELECT state FROM transactions WHERE key=?", (key,)).fetchone()
        if row is None:
            raise UnknownTransaction(f"no transaction with key {key}", key=key)
        current = State(row[0])
        check_transition(key, current, target)
        db.execute(
            "UPDATE transactions SET state=?, reason=COALESCE(?, reason),"
            " processor_ref=COALESCE(?, processor_ref),"
            " updated_at=? WHERE key=?",
            (target.value, reason, processor_ref, now, key),
        )
        if destroy_secret:
            db.execute(
                "UPDATE transactions SET nonce=NULL, sealed=NULL, wrapped_key=NULL WHERE key=?", (key,)
            )
        self._audit(db, key, current.value, target.value, reason, now)
        return current

    def settle(self, keys: Iterable[str] | None = None) -> builtins.list[str]:
        """Mark answered transactions settled (all approved/declined/failed ones if ``keys`` is None)."""
        now = self.clock()
        with self._transaction() as db:
            if keys is None:
                keys = [
                    row[0]
                    for row in db.execute(
                        "SELECT key FROM transactions WHERE state IN (?,?,?)",
                        (State.APPROVED.value, State.DECLINED.value, State.FAILED.value),
                    )
                ]
            keys = list(keys)
            for key in keys:
                self._move(db, key, State.SETTLED, "settled", now, destroy_secret=True)
        self.checkpoint()
        self._changed(keys)
        return keys

    def retry(self, keys: Iterable[str] | None = None) -> builtins.list[str]:
        """Re-queue failed transactions that still hold their card data (same idempotency key)."""
        now = self.clock()
        requeued: builtins.list[str] = []
        with self._transaction() as db:
            if keys is None:
                keys = [
                    row[0]
                    for row in db.execute(
                        "SELECT key FROM transactions"
                        " WHERE state=? AND (sealed IS NOT NULL OR dukpt_ksn IS NOT NULL)",
                        (State.FAILED.value,),
                    )
                ]
            for key in keys:
                row = db.execute(
                    "SELECT sealed IS NOT NULL OR dukpt_ksn IS NOT NULL FROM transactions WHERE key=?", (key,)
                ).fetchone()
                if row is not None and not row[0]:
                    raise IllegalTransition(
                        f"transaction {key} no longer holds card data; take the payment again", key=key
                    )
                self._move(db, key, State.CAPTURED, "retry", now)
                db.execute("UPDATE transactions SET next_attempt_at=0, published_at=NULL WHERE key=?", (key,))
                requeued.append(key)
        self._changed(requeued)
        return requeued

    # ------------------------------------------------------------------ forwarding

    def expire_overdue(self) -> builtins.list[Transaction]:
        """Fail captured payments held longer than ``limits.max_age_s``; returns them (to report)."""
        with self._lock:
            keys = [
                row[0]
                for row in self._db.execute(
                    f"SELECT key FROM transactions WHERE state IN {PENDING_SQL} AND state=? AND created_at<?",
                    (State.CAPTURED.value, self.clock() - self.limits.max_age_s),
                )
            ]
        return self.mark_expired(keys)

    def mark_expired(self, keys: Iterable[str]) -> builtins.list[Transaction]:
        """Fail payments that waited too long and never reached the processor; destroys their card
        data, raises an ``expired_offline`` alert for each, returns them."""
        keys = builtins.list(keys)
        if not keys:
            return []
        now = self.clock()
        reason = f"expired: held offline over {self.limits.max_age_s / 3600:g} h, never reached the processor"
        with self._transaction() as db:
            for key in keys:
                self._move(db, key, State.FAILED, reason, now, destroy_secret=True)
        self.checkpoint()
        expired = [self.get(key) for key in keys]
        for transaction in expired:
            self._alert(
                Alert(
                    AlertKind.EXPIRED_OFFLINE,
                    reason,
                    transaction.key,
                    transaction.card,
                    transaction.amount,
                    now,
                )
            )
        for transaction in expired:
            self._hub.publish(QueueEvent("transaction", transaction=transaction))
        return expired

    def claim_for_forwarding(
        self, limit: int = 64, lease_s: float = FORWARDING_LEASE_S
    ) -> builtins.list[OutboundPayment]:
        """Claim up to ``limit`` due payments: captured ones move to ``forwarding`` durably *before*
        anything is sent; forwarding ones whose lease ran out come back with ``lookup_first``."""
        now = self.clock()
        with self._transaction() as db:
            rows = db.execute(
                "SELECT key, amount, currency, lane, source, created_at, masked, state, attempts, nonce,"
                " sealed,"
                " wrapped_key, dukpt_ksn, dukpt_ciphertext, dukpt_scheme FROM transactions"
                f" WHERE state IN {PENDING_SQL} AND next_attempt_at<=? ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
            for row in rows:
                if row[7] == State.CAPTURED.value:
                    self._move(db, row[0], State.FORWARDING, "forwarding", now)
                db.execute(
                    "UPDATE transactions SET attempts=attempts+1, next_attempt_at=? WHERE key=?",
                    (now + lease_s, row[0]),
                )
        claimed = []
        for row in rows:
            masked = _masked_from_json(row[6])
            secret: dict[str, Any] = {}
            if row[10] is not None:
                secret = self._device_key.open_secret(SealedRecord(row[9], row[10], row[11]), row[0])
            encrypted = (
                EncryptedCardData(row[12], row[13], masked or MaskedCard("", "", 0, "unknown"), row[14])
                if row[12] is not None
                else None
            )
            claimed.append(
                OutboundPayment(
                    key=row[0],
                    amount=row[1],
                    currency=row[2],
                    lane=row[3],
                    source=row[4],
                    created_at=row[5],
                    masked=masked,
                    secret=secret,
                    encrypted=encrypted,
                    lookup_first=row[7] == State.FORWARDING.value or row[8] > 0,
                    attempts=row[8] + 1,
                )
            )
        if rows:
            self._changed(row[0] for row in rows if row[7] == State.CAPTURED.value)
        return claimed

    def defer(self, keys: Iterable[str], delay_s: float) -> None:
        """Leave forwarding payments to be retried (looked up first) after ``delay_s`` seconds."""
        now = self.clock()
        with self._transaction() as db:
            for key in keys:
                db.execute(
                    "UPDATE transactions SET next_attempt_at=?, updated_at=? WHERE key=? AND state=?",
                    (now + delay_s, now, key, State.FORWARDING.value),
                )

    def record_answers(
        self, answers: Iterable[ProcessorAnswer], via_fleet: bool = False
    ) -> builtins.list[str]:
        """Apply processor answers in one commit; approved/declined destroy the card data.

        An answer for a transaction already in that state (delivered twice) is ignored; the
        keys actually changed are returned. ``via_fleet``: the answer came from the store
        forwarder over JetStream, so a ``captured`` row first steps through ``forwarding``.
        """
        now = self.clock()
        changed: builtins.list[str] = []
        destroyed = False
        with self._transaction() as db:
            for answer in answers:
                row = db.execute("SELECT state FROM transactions WHERE key=?", (answer.key,)).fetchone()
                if row is None:
                    log.warning("answer for unknown transaction %s ignored", answer.key)
                    continue
                if row[0] == answer.status.value:
                    log.info("answer for %s delivered twice; applied once", answer.key)
                    continue
                if row[0] == State.CAPTURED.value and via_fleet:
                    self._move(db, answer.key, State.FORWARDING, "forwarded by the fleet forwarder", now)
                try:
                    self._move(
                        db,
                        answer.key,
                        answer.status,
                        answer.reason,
                        now,
                        answer.processor_ref,
                        destroy_secret=answer.status in ANSWERED_STATES,
                    )
                except IllegalTransition as error:
                    log.warning("answer ignored: %s", error)
                    continue
                destroyed = destroyed or answer.status in ANSWERED_STATES
                changed.append(answer.key)
        if destroyed:
            self.checkpoint()
        self._changed(changed)
        return changed

    # ------------------------------------------------------------------ fleet outbox

    def unpublished(
        self, limit: int = 256, republish_after_s: float | None = None
    ) -> builtins.list[tuple[str, bytes]]:
        """Pending rows not yet acknowledged by JetStream, as ``(key, message)`` (card data still sealed).

        With ``republish_after_s``, rows published that long ago and still unanswered come again
        (the server drops them as duplicates unless it lost them, e.g. a crash before its fsync).
        """
        published_before = -1.0 if republish_after_s is None else self.clock() - republish_after_s
        with self._lock:
            rows = self._db.execute(
                "SELECT key, amount, currency, lane, source, created_at, masked, customer, nonce, sealed,"
                " wrapped_key, dukpt_ksn, dukpt_ciphertext, dukpt_scheme FROM transactions"
                f" WHERE (published_at IS NULL OR published_at<?) AND state IN {PENDING_SQL}"
                " ORDER BY seq LIMIT ?",
                (published_before, limit),
            ).fetchall()
        messages = []
        for row in rows:
            message = {
                "key": row[0],
                "amount": row[1],
                "currency": row[2],
                "lane": row[3],
                "source": row[4],
                "created_at": row[5],
                "masked": _masked_fields(row[6]),
                "customer": row[7],
                "sealed": None if row[9] is None else SealedRecord(row[8], row[9], row[10]).to_hex(),
                "dukpt": None
                if row[11] is None
                else {"ksn": row[11].hex(), "ciphertext": row[12].hex(), "scheme": row[13]},
            }
            messages.append((row[0], json.dumps(message, separators=(",", ":")).encode()))
        return messages

    def mark_published(self, keys: Iterable[str]) -> None:
        """Record that JetStream acknowledged these keys (one commit)."""
        now = self.clock()
        with self._transaction() as db:
            db.executemany("UPDATE transactions SET published_at=? WHERE key=?", [(now, key) for key in keys])

    def open_sealed(self, key: str, sealed: dict[str, str]) -> dict[str, Any]:
        """Open a sealed card record carried in a fleet message (needs the shared device key)."""
        return self._device_key.open_secret(SealedRecord.from_hex(sealed), key)

    # ------------------------------------------------------------------ presence

    def record_presence(self, event: PresenceEvent, lane: str | None = None) -> int:
        """Record a check-in or check-out as the customer's presence at the lane; returns the row id.

        A check-out voids nothing already captured. Rows not attached to a sale are deleted after
        ``presence_retention_s``.
        """
        now = self.clock()
        customer = event.customer
        if customer is None and self.customers is not None:
            owner = self.customers.by_beacon(event.beacon)
            customer = owner.id if owner is not None else None
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO presence(lane, beacon, customer, event, zone, at) VALUES (?,?,?,?,?,?)",
                (lane or self.lane, str(event.beacon), customer, event.event, event.zone.value, now),
            )
            db.execute(
                "DELETE FROM presence WHERE sale_key IS NULL AND at<?", (now - self.presence_retention_s,)
            )
        row_id = int(cursor.lastrowid or 0)
        self._hub.publish(
            QueueEvent(
                "presence",
                presence={
                    "event": event.event,
                    "beacon": str(event.beacon),
                    "customer": customer,
                    "lane": lane or self.lane,
                    "zone": event.zone.value,
                    "at": now,
                },
            )
        )
        return row_id

    def checked_in(self, lane: str | None = None) -> builtins.list[str]:
        """Customer ids whose latest presence event at the lane is a check-in."""
        with self._lock:
            rows = self._db.execute(
                "SELECT customer, event FROM presence WHERE lane=? AND customer IS NOT NULL ORDER BY id",
                (lane or self.lane,),
            ).fetchall()
        latest: dict[str, str] = {}
        for customer, event in rows:
            latest[customer] = event
        return [customer for customer, event in latest.items() if event == "check_in"]

    def capture_for_customer(
        self, amount: int, currency: str, customer_id: str, *, key: str | None = None
    ) -> Transaction:
        """Pay by check-in: charge the account token of a customer checked in at this lane.

        The customer comes from the registry given as ``customers``; :class:`CaptureRefused` if
        the customer is unknown, not checked in, or has no account token.
        """
        try:
            if self.customers is None:
                raise KeyError(customer_id)
            customer = self.customers.get(customer_id)
        except KeyError:
            reason = f"customer {customer_id} is not in the customer registry"
            raise CaptureRefused(reason, reason=reason, kind="unknown_customer") from None
        return self.capture(amount, currency, customer, key=key)

    def _checked_in(self, customer: str | None) -> bool:
        """Whether ``customer``'s latest presence event at this lane is a check-in."""
        if customer is None:
            return False
        with self._lock:
            latest = self._db.execute(
                "SELECT event FROM presence WHERE lane=? AND customer=? ORDER BY id DESC LIMIT 1",
                (self.lane, customer),
            ).fetchone()
        return latest is not None and latest[0] == "check_in"

    def _attach_presence(self, db: sqlite3.Cursor, request: CaptureRequest, key: str) -> None:
        db.execute(
            "UPDATE presence SET sale_key=?"
            " WHERE id=(SELECT MAX(id) FROM presence WHERE lane=? AND customer=?"
            " AND event='check_in')",
            (key, self.lane, request.customer),
        )

    def purge_presence(self) -> int:
        """Delete presence rows not attached to a sale and older than the retention; returns how many."""
        now = self.clock()
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM presence WHERE sale_key IS NULL AND at<?", (now - self.presence_retention_s,)
            ).rowcount
        return int(deleted)

    def presence_rows(self) -> builtins.list[dict[str, Any]]:
        """Every presence row kept (for the console and tests)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, lane, beacon, customer, event, zone, at, sale_key FROM presence ORDER BY id"
            ).fetchall()
        names = ("id", "lane", "beacon", "customer", "event", "zone", "at", "sale_key")
        return [dict(zip(names, row, strict=True)) for row in rows]

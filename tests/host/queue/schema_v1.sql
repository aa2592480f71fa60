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
    published_at REAL
);
CREATE INDEX IF NOT EXISTS transactions_state ON transactions(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS transactions_card ON transactions(card_id, created_at);
CREATE TABLE IF NOT EXISTS offline_position (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    total INTEGER NOT NULL
);
INSERT OR IGNORE INTO offline_position(id, count, total)
    SELECT 1, COUNT(*), COALESCE(SUM(amount), 0) FROM transactions WHERE state IN ('captured', 'forwarding');
CREATE TRIGGER IF NOT EXISTS offline_enter_on_insert AFTER INSERT ON transactions
    WHEN NEW.state IN ('captured', 'forwarding')
    BEGIN UPDATE offline_position SET count=count+1, total=total+NEW.amount WHERE id=1; END;
CREATE TRIGGER IF NOT EXISTS offline_leave AFTER UPDATE OF state ON transactions
    WHEN OLD.state IN ('captured', 'forwarding') AND NEW.state NOT IN ('captured', 'forwarding')
    BEGIN UPDATE offline_position SET count=count-1, total=total-OLD.amount WHERE id=1; END;
CREATE TRIGGER IF NOT EXISTS offline_enter AFTER UPDATE OF state ON transactions
    WHEN OLD.state NOT IN ('captured', 'forwarding') AND NEW.state IN ('captured', 'forwarding')
    BEGIN UPDATE offline_position SET count=count+1, total=total+NEW.amount WHERE id=1; END;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_key ON audit(key);
CREATE TRIGGER IF NOT EXISTS audit_on_insert AFTER INSERT ON transactions
    BEGIN INSERT INTO audit(key, at, from_state, to_state, detail)
        VALUES (NEW.key, NEW.created_at, NULL, NEW.state, COALESCE(NEW.reason, NEW.source || ' capture'));
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

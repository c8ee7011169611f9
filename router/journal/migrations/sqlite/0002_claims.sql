-- Claims and nodes: the same columns as the PostgreSQL journal, so one set of queries
-- serves both (with one owner per SQLite journal a claim is only bookkeeping).
ALTER TABLE messages ADD COLUMN claimed_by TEXT;
ALTER TABLE messages ADD COLUMN lease_until REAL;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN lease_until REAL;

-- Exactly one decision per form position of a message.
CREATE UNIQUE INDEX IF NOT EXISTS decisions_one_per_position ON decisions (message_id, position);

CREATE TABLE IF NOT EXISTS nodes (
    name           TEXT PRIMARY KEY,
    pid            INTEGER,
    started_at     REAL NOT NULL,
    last_heartbeat REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS mailbox_watchers (
    mailbox     TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    lease_until REAL NOT NULL
);

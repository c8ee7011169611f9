-- The journal shared by several routers: every message, decision and outgoing mail, with
-- its state, and the bytes of stored messages and spooled mail (so any node can do any work).
-- Times are Unix seconds (double precision), as in the SQLite journal, so queries are shared.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per message that reached an inbox.
-- state: received -> decided -> done, or quarantined (with last_error).
CREATE TABLE messages (
    id                TEXT PRIMARY KEY,
    received_at       DOUBLE PRECISION NOT NULL,
    -- The inbox's identity of the message (imap:<uidvalidity>:<uid>): stored once, by one node.
    source_key        TEXT UNIQUE,
    message_id_header TEXT,
    sha256            TEXT,
    size              BIGINT NOT NULL,
    envelope_rcpts    TEXT NOT NULL DEFAULT '[]',
    oversize          INTEGER NOT NULL DEFAULT 0,
    state             TEXT NOT NULL
        CHECK (state IN ('received', 'decided', 'done', 'quarantined')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    rules_version     TEXT,
    decided_at        DOUBLE PRECISION,
    done_at           DOUBLE PRECISION,
    settled           INTEGER NOT NULL DEFAULT 0,
    purged_at         DOUBLE PRECISION,
    -- Work sharing: the node deciding it, until when (renewed by that node's heartbeat).
    claimed_by        TEXT,
    lease_until       DOUBLE PRECISION
);
CREATE INDEX messages_state ON messages (state, received_at);
CREATE INDEX messages_identity ON messages (message_id_header, sha256);

-- One row per decision (one per form): a message's decisions are recorded once.
CREATE TABLE decisions (
    reference   TEXT PRIMARY KEY,
    message_id  TEXT NOT NULL REFERENCES messages (id),
    position    INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    area        TEXT,
    record      TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    UNIQUE (message_id, position)
);

-- One row per mail the router sends. state: pending -> sent, or failed.
CREATE TABLE outbox (
    id                TEXT PRIMARY KEY,
    message_id        TEXT NOT NULL REFERENCES messages (id),
    reference         TEXT,
    kind              TEXT NOT NULL,
    sender            TEXT NOT NULL,
    recipients        TEXT NOT NULL,
    message_id_header TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   DOUBLE PRECISION NOT NULL,
    last_error        TEXT,
    created_at        DOUBLE PRECISION NOT NULL,
    sent_at           DOUBLE PRECISION,
    bounced_at        DOUBLE PRECISION,
    claimed_by        TEXT,
    lease_until       DOUBLE PRECISION
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_message ON outbox (message_id);
CREATE INDEX outbox_message_id_header ON outbox (message_id_header);

-- Acknowledgments per sender per day, counted by every node (an atomic upsert).
CREATE TABLE ack_counts (
    sender TEXT NOT NULL,
    day    TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (sender, day)
);

-- The bytes of stored messages (kind 'message') and spooled mail (kind 'spool').
CREATE TABLE blobs (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE nodes (
    name           TEXT PRIMARY KEY,
    pid            INTEGER,
    started_at     DOUBLE PRECISION NOT NULL,
    last_heartbeat DOUBLE PRECISION NOT NULL
);

-- One watcher per IMAP mailbox: the holder renews its lease with its heartbeat.
CREATE TABLE mailbox_watchers (
    mailbox     TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL
);

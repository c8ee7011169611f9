-- The journal: every message, every decision and every outgoing mail, with its state.
-- Raw messages and outgoing mail are files beside this database; rows point at them.
-- (Written with IF NOT EXISTS: journals made before versioned migrations already have it.)

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per message that reached the inbox.
-- state: received -> decided -> done, or quarantined (with last_error).
CREATE TABLE IF NOT EXISTS messages (
    id                TEXT PRIMARY KEY,
    received_at       REAL NOT NULL,
    source_key        TEXT UNIQUE,
    message_id_header TEXT,
    sha256            TEXT,
    size              INTEGER NOT NULL,
    envelope_rcpts    TEXT NOT NULL DEFAULT '[]',
    oversize          INTEGER NOT NULL DEFAULT 0,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    rules_version     TEXT,
    decided_at        REAL,
    done_at           REAL,
    settled           INTEGER NOT NULL DEFAULT 0,
    purged_at         REAL
);
CREATE INDEX IF NOT EXISTS messages_state ON messages (state);
CREATE INDEX IF NOT EXISTS messages_identity ON messages (message_id_header, sha256);

-- One row per decision (one per form). No form field values are kept here.
CREATE TABLE IF NOT EXISTS decisions (
    reference   TEXT PRIMARY KEY,
    message_id  TEXT NOT NULL REFERENCES messages (id),
    position    INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    area        TEXT,
    record      TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_message ON decisions (message_id);

-- One row per mail the router sends. state: pending -> sent, or failed.
CREATE TABLE IF NOT EXISTS outbox (
    id                TEXT PRIMARY KEY,
    message_id        TEXT NOT NULL REFERENCES messages (id),
    reference         TEXT,
    kind              TEXT NOT NULL,
    sender            TEXT NOT NULL,
    recipients        TEXT NOT NULL,
    message_id_header TEXT NOT NULL,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   REAL NOT NULL,
    last_error        TEXT,
    created_at        REAL NOT NULL,
    sent_at           REAL,
    bounced_at        REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_message_id_header ON outbox (message_id_header);
-- due_mail holds an acknowledgment back until its forward is sent (looked up by reference);
-- finish_messages looks for pending mail per message: both stay index lookups as history grows.
CREATE INDEX IF NOT EXISTS outbox_reference ON outbox (reference, kind, state);
CREATE INDEX IF NOT EXISTS outbox_message_state ON outbox (message_id, state);

CREATE TABLE IF NOT EXISTS ack_counts (
    sender TEXT NOT NULL,
    day    TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (sender, day)
);

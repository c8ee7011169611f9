-- The first connection to each IMAP mailbox (ROUTER_IMAP_START, router/journal/mailbox_start.py):
-- what was there then must outlive restarts, UIDVALIDITY changes and the purge of old messages.
CREATE TABLE IF NOT EXISTS mailbox_start (
    mailbox     TEXT PRIMARY KEY,   -- user@host/folder
    mode        TEXT NOT NULL,      -- ROUTER_IMAP_START at the first connection
    cutoff      REAL NOT NULL,      -- mail with an INTERNALDATE before it was there first
    started_at  REAL NOT NULL,
    uidvalidity INTEGER NOT NULL    -- the folder's UIDVALIDITY then
);
CREATE TABLE IF NOT EXISTS mailbox_untouched (
    mailbox     TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uids        TEXT NOT NULL,      -- ranges, e.g. 1:4200,4305
    PRIMARY KEY (mailbox, uidvalidity)
);
CREATE TABLE IF NOT EXISTS mailbox_old_ids (
    mailbox TEXT NOT NULL,
    id_hash TEXT NOT NULL,          -- SHA-256 of a Message-ID present at the first connection
    PRIMARY KEY (mailbox, id_hash)
);

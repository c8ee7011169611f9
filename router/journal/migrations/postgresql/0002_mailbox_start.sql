-- The first connection to each IMAP mailbox (ROUTER_IMAP_START, router/journal/mailbox_start.py):
-- what was there then must outlive restarts, UIDVALIDITY changes and the purge of old messages.
CREATE TABLE mailbox_start (
    mailbox     TEXT PRIMARY KEY,   -- user@host/folder
    mode        TEXT NOT NULL,      -- ROUTER_IMAP_START at the first connection
    cutoff      DOUBLE PRECISION NOT NULL,      -- mail with an INTERNALDATE before it was there first
    started_at  DOUBLE PRECISION NOT NULL,
    uidvalidity BIGINT NOT NULL    -- the folder's UIDVALIDITY then
);
CREATE TABLE mailbox_untouched (
    mailbox     TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uids        TEXT NOT NULL,      -- ranges, e.g. 1:4200,4305
    PRIMARY KEY (mailbox, uidvalidity)
);
CREATE TABLE mailbox_old_ids (
    mailbox TEXT NOT NULL,
    id_hash TEXT NOT NULL,          -- SHA-256 of a Message-ID present at the first connection
    PRIMARY KEY (mailbox, id_hash)
);

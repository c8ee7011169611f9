-- Each graph:// inbox's place in its folder (router/journal/graph_sync.py): the delta link
-- Microsoft Graph gave at the end of the last delta round, so a restart asks only for what
-- changed since; and when the inbox last synced and was last throttled, for `status`.
CREATE TABLE IF NOT EXISTS graph_sync (
    mailbox      TEXT PRIMARY KEY,  -- graph:<address>/<folder>
    delta_link   TEXT,              -- NULL: the next round starts a new delta
    synced_at    REAL,              -- the last delta round that reached a delta link
    throttled_at REAL,              -- the last 429/503/504 from Graph for this mailbox
    throttled    INTEGER NOT NULL DEFAULT 0  -- how many such answers so far
);

-- Each graph:// inbox's place in its folder (router/journal/graph_sync.py): the delta link
-- Microsoft Graph gave at the end of the last delta round, so a restart asks only for what
-- changed since; and when the inbox last synced and was last throttled, for `status`.
CREATE TABLE graph_sync (
    mailbox      TEXT PRIMARY KEY,  -- graph:<address>/<folder>
    delta_link   TEXT,              -- NULL: the next round starts a new delta
    synced_at    DOUBLE PRECISION,              -- the last delta round that reached a delta link
    throttled_at DOUBLE PRECISION,              -- the last 429/503/504 from Graph for this mailbox
    throttled    BIGINT NOT NULL DEFAULT 0  -- how many such answers so far
);

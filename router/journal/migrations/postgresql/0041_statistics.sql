-- Figures for `report` (router/journal/stats.py), one row per decision, written with the
-- decision: nothing personal (an age band, the gender as the form gives it, the referring
-- sector), so the retention purge leaves them.
CREATE TABLE IF NOT EXISTS referral_stats (
    reference    TEXT PRIMARY KEY,
    message_id   TEXT NOT NULL,
    received_at  DOUBLE PRECISION NOT NULL,
    decided_at   DOUBLE PRECISION NOT NULL,
    forwarded_at DOUBLE PRECISION,
    outcome      TEXT NOT NULL,
    area         TEXT,
    age_band     TEXT NOT NULL,
    gender       TEXT NOT NULL,
    sector       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS referral_stats_received ON referral_stats (received_at);
-- Decisions made before: what the rows still say (age, gender and sector are not kept).
INSERT INTO referral_stats (reference, message_id, received_at, decided_at, forwarded_at,
        outcome, area, age_band, gender, sector)
    SELECT d.reference, d.message_id, m.received_at, d.created_at,
        (SELECT MIN(o.sent_at) FROM outbox AS o
            WHERE o.reference = d.reference AND o.kind = 'forward' AND o.state = 'sent'),
        d.outcome, d.area, 'unknown', 'unknown', 'unknown'
    FROM decisions AS d JOIN messages AS m ON m.id = d.message_id;
-- The monthly report mailed to ROUTER_REPORT_TO: one row per month, claimed by one node.
CREATE TABLE IF NOT EXISTS report_mailings (
    month       TEXT PRIMARY KEY,
    claimed_by  TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL,
    sent_at     DOUBLE PRECISION,
    reply       TEXT
);

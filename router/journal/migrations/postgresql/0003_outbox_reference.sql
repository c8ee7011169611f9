-- due_mail holds an acknowledgment back until its referral's forward is sent, looked up by
-- reference: without this index PostgreSQL scanned every unsent forward of the whole outbox
-- on each call (the SQLite journal has had it since its first schema).
CREATE INDEX IF NOT EXISTS outbox_reference ON outbox (reference, kind, state);

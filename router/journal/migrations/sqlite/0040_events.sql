-- The audit trail (router/journal/events.py): what happened to each message, one row per
-- event, written in the transaction of the change it describes. Append-only: rows are never
-- deleted, and an update may only scrub `detail` (the retention purge drops the referrer's
-- address from it).
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    reference  TEXT,
    mail_id    TEXT,
    at         REAL NOT NULL,
    event      TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_message ON events (message_id, seq);
CREATE INDEX IF NOT EXISTS events_reference ON events (reference);
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER IF NOT EXISTS events_scrub_only BEFORE UPDATE ON events
WHEN NEW.seq IS NOT OLD.seq OR NEW.message_id IS NOT OLD.message_id
    OR NEW.reference IS NOT OLD.reference OR NEW.mail_id IS NOT OLD.mail_id
    OR NEW.at IS NOT OLD.at OR NEW.event IS NOT OLD.event
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
-- What journals made before the audit trail know: one 'received' and one 'decided' per
-- decision, at the times the rows give (mail, settling and purges before it are not known).
INSERT INTO events (message_id, at, event, detail)
    SELECT id, received_at, 'received', '{"backfilled": true}' FROM messages;
INSERT INTO events (message_id, reference, at, event, detail)
    SELECT message_id, reference, created_at, 'decided',
        '{"backfilled": true, "outcome": "' || outcome || '", "area": '
        || CASE WHEN area IS NULL THEN 'null' ELSE '"' || area || '"' END || '}'
    FROM decisions;

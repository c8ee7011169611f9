-- The audit trail (router/journal/events.py): what happened to each message, one row per
-- event, written in the transaction of the change it describes. Append-only: rows are never
-- deleted, and an update may only scrub `detail` (the retention purge drops the referrer's
-- address from it).
CREATE TABLE events (
    seq        BIGSERIAL PRIMARY KEY,
    message_id TEXT NOT NULL,
    reference  TEXT,
    mail_id    TEXT,
    at         DOUBLE PRECISION NOT NULL,
    event      TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_message ON events (message_id, seq);
CREATE INDEX events_reference ON events (reference);
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq IS DISTINCT FROM OLD.seq
        OR NEW.message_id IS DISTINCT FROM OLD.message_id
        OR NEW.reference IS DISTINCT FROM OLD.reference
        OR NEW.mail_id IS DISTINCT FROM OLD.mail_id OR NEW.at IS DISTINCT FROM OLD.at
        OR NEW.event IS DISTINCT FROM OLD.event THEN
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
-- What journals made before the audit trail know (see the SQLite migration).
INSERT INTO events (message_id, at, event, detail)
    SELECT id, received_at, 'received', '{"backfilled": true}' FROM messages;
INSERT INTO events (message_id, reference, at, event, detail)
    SELECT message_id, reference, created_at, 'decided',
        json_build_object('backfilled', true, 'outcome', outcome, 'area', area)::text
    FROM decisions;

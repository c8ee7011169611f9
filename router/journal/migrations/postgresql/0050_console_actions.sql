-- What people did in the console (router/console): sign-ins are logged, but actions on a
-- referral (reprocess) and dry runs (Try a message) are kept here, with who did them, so the
-- referral's trail shows them. Nothing of the referral's content: ids and references only.
CREATE TABLE console_actions (
    id          TEXT PRIMARY KEY,
    at          DOUBLE PRECISION NOT NULL,
    actor       TEXT NOT NULL,      -- the signed-in person's email address
    action      TEXT NOT NULL,      -- reprocess, dry_run
    message_id  TEXT,               -- the journal's message, when the action was on one
    result      TEXT NOT NULL       -- what came of it (queued, refused, an outcome)
);
CREATE INDEX console_actions_message ON console_actions (message_id, at);
CREATE INDEX console_actions_at ON console_actions (at);

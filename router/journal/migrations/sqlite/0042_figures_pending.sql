-- Decisions whose figures were backfilled by 0041 without age band, gender or sector (the
-- form's values are not kept): the daemon reads their stored message again while it is
-- still there (router/decide/backfill.py) and fills them in, then takes the row out.
CREATE TABLE IF NOT EXISTS figures_pending (
    reference  TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    position   INTEGER NOT NULL
);
INSERT INTO figures_pending (reference, message_id, position)
    SELECT d.reference, d.message_id, d.position
    FROM referral_stats AS s JOIN decisions AS d ON d.reference = s.reference
    JOIN messages AS m ON m.id = d.message_id
    WHERE s.age_band = 'unknown' AND s.gender = 'unknown' AND s.sector = 'unknown'
        AND m.purged_at IS NULL;

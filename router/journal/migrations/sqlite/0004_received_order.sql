-- The next messages to decide, oldest first (`received`), and the oldest undecided one (the
-- gauges and /readyz): in received_at order within the state, so neither sorts every
-- message waiting in a backlog on each call. PostgreSQL has had this index from the start.
CREATE INDEX IF NOT EXISTS messages_state_received ON messages (state, received_at);

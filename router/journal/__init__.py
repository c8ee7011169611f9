"""The journal: the durable record of every message, decision and outgoing mail.

`protocol.Journal` is the contract; `opener.open_journal` opens the one the settings name:
`sqlite.SqliteJournal` (embedded, one owner, see `owner`) or `postgres.PostgresJournal`
(several routers; its URL checked in `conninfo`, its bytes in `pg_blobs`, its calls bounded
by `watchdog`). Both are `sql.SqlJournal`, assembled from `intake`, `decisions`,
`outbox`, `retention` and `nodes` over a `database.Database`; schemas are versioned SQL
files in `migrations/`.
"""

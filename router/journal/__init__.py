"""The journal: the durable record of every message, decision and outgoing mail.

`protocol.Journal` is the contract; `store.open_journal` opens the one the settings name:
`sqlite.SqliteJournal` (embedded, one owner, see `owner`) or `postgres.PostgresJournal`
(several routers). Both are `sql.SqlJournal`, assembled from `intake`, `decisions`,
`outbox`, `retention` and `nodes` over a `database.Database`; schemas are versioned SQL
files in `migrations/`.
"""

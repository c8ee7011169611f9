"""The journal assembled from its parts, over any `Database` (SQLite or PostgreSQL)."""

from __future__ import annotations

from router.journal.intake import Intake
from router.journal.nodes import Nodes
from router.journal.outbox import Outbox
from router.journal.retention import Retention


class SqlJournal(Intake, Outbox, Retention, Nodes):
    """See `Journal`. A backend adds how it connects, probes and keeps bytes."""

    def probe(self) -> None:
        """See `Journal.probe`."""
        with self._db.transaction() as tx:
            tx.run(
                "INSERT INTO meta (key, value) VALUES ('health', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self.node,),
            )

    def oldest_undecided_at(self) -> float | None:
        """See `Journal.oldest_undecided_at`."""
        rows = self.query("SELECT MIN(received_at) AS t FROM messages WHERE state = 'received'")
        received = rows[0]["t"]
        return None if received is None else float(received)

"""Retention: after ROUTER_RETENTION_DAYS, the bytes and traces of personal data go.

What stays of a finished message is what an audit needs: its reference, outcome, area and
timestamps. What goes: the stored raw message and spooled mail, each decision's form file
name (it often names the person) and acknowledgment address, the addresses of its
acknowledgments, and acknowledgment counts of earlier days. Quarantined and unfinished
messages are kept until a person has dealt with them.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from router.journal.core import JournalCore
from router.journal.database import MESSAGE, SPOOL, Transaction
from router.journal.events import Event, record_event, scrub_events

# Decision record keys that may identify someone: dropped when the message is purged.
PURGED_RECORD_KEYS = ("form", "ack_to")


class Retention(JournalCore):
    """Purging what is no longer needed. See `Journal`."""

    def purge(self, older_than: float) -> int:
        """See `Journal.purge`."""
        rows = self.query(
            "SELECT id FROM messages WHERE state = 'done' AND purged_at IS NULL AND done_at < ?",
            (older_than,),
        )
        for row in rows:
            with self._db.transaction() as tx:
                self._blobs.discard(tx, MESSAGE, row["id"])
                for mail in tx.rows("SELECT id FROM outbox WHERE message_id = ?", (row["id"],)):
                    self._blobs.discard(tx, SPOOL, mail["id"])
                now = time.time()
                tx.run("UPDATE messages SET purged_at = ? WHERE id = ?", (now, row["id"]))
                _scrub_rows(tx, row["id"])
                scrub_events(tx, row["id"])
                record_event(tx, row["id"], Event.PURGED, at=now, detail={"by": "retention"})
        with self._db.transaction() as tx:
            cutoff = f"{datetime.fromtimestamp(older_than, UTC):%Y-%m-%d}"
            tx.run("DELETE FROM ack_counts WHERE day < ?", (cutoff,))
        return len(rows)


def _scrub_rows(tx: Transaction, message_id: str) -> None:
    """Drop file names and referrer addresses from one purged message's rows."""
    decisions = tx.rows(
        "SELECT reference, record FROM decisions WHERE message_id = ?", (message_id,)
    )
    for decision in decisions:
        record = json.loads(decision["record"])
        for key in PURGED_RECORD_KEYS:
            record.pop(key, None)
        tx.run(
            "UPDATE decisions SET record = ? WHERE reference = ?",
            (json.dumps(record), decision["reference"]),
        )
    tx.run(
        "UPDATE outbox SET recipients = '[]' WHERE message_id = ? AND kind = 'ack'",
        (message_id,),
    )

"""Retention: after ROUTER_RETENTION_DAYS, the bytes and traces of personal data go.

What stays of a finished message is what an audit needs: its reference, outcome, area and
timestamps. What goes: the stored raw message and spooled mail (files), each decision's
form file name (it often names the person) and acknowledgment address, the addresses of
its acknowledgments, and acknowledgment counts of earlier days. Quarantined and
unfinished messages are kept until a person has dealt with them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.journal.store import Journal

# Decision record keys that may identify someone: dropped when the message is purged.
PURGED_RECORD_KEYS = ("form", "ack_to")


def purge(journal: Journal, older_than: float) -> int:
    """Purge every finished message done before `older_than` (a Unix time).

    Returns:
        How many messages were purged.
    """
    rows = journal.query(
        "SELECT id FROM messages WHERE state = 'done' AND purged_at IS NULL AND done_at < ?",
        (older_than,),
    )
    for row in rows:
        journal.raw_path(row["id"]).unlink(missing_ok=True)
        for mail in journal.query("SELECT id FROM outbox WHERE message_id = ?", (row["id"],)):
            journal.spool_path(mail["id"]).unlink(missing_ok=True)
        with journal.transaction() as db:
            db.execute("UPDATE messages SET purged_at = ? WHERE id = ?", (time.time(), row["id"]))
            _scrub_rows(db, row["id"])
    with journal.transaction() as db:
        cutoff = f"{datetime.fromtimestamp(older_than, UTC):%Y-%m-%d}"
        db.execute("DELETE FROM ack_counts WHERE day < ?", (cutoff,))
    return len(rows)


def _scrub_rows(db: sqlite3.Connection, message_id: str) -> None:
    """Drop file names and referrer addresses from one purged message's rows."""
    decisions = db.execute(
        "SELECT reference, record FROM decisions WHERE message_id = ?", (message_id,)
    ).fetchall()
    for decision in decisions:
        record = json.loads(decision["record"])
        for key in PURGED_RECORD_KEYS:
            record.pop(key, None)
        db.execute(
            "UPDATE decisions SET record = ? WHERE reference = ?",
            (json.dumps(record), decision["reference"]),
        )
    db.execute(
        "UPDATE outbox SET recipients = '[]' WHERE message_id = ? AND kind = 'ack'",
        (message_id,),
    )

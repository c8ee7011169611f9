"""Recognise a message stored a moment ago when a sender sends it again (its client crashed,
or ours, between the store and the 250): same Message-ID and same bytes, within a window."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence

from router.journal.core import JournalCore
from router.journal.records import message_id_header

# Mail servers retry a message they could not hand over for up to five days; a week covers
# that, while the same bytes sent again much later (a person re-sending) are stored again.
DEDUPE_WINDOW_SECONDS = 7 * 86400.0


def recent_copy(
    journal: JournalCore,
    raw: bytes,
    *,
    window: float = DEDUPE_WINDOW_SECONDS,
    envelope_recipients: Sequence[str] = (),
) -> str | None:
    """The journal id of a message with the same Message-ID (or none) and SHA-256 as `raw`,
    received within `window` seconds; None when there is none. The copy's envelope
    recipients are added to that message's (the same bytes sent again for another inbox
    address count for that address too).

    Raises:
        sqlite3.Error, JournalUnavailable: the journal cannot be read.
    """
    header = message_id_header(raw)
    # `IS ?` is SQLite's; both backends take `= ?` and `IS NULL`.
    same_header = "message_id_header IS NULL" if header is None else "message_id_header = ?"
    rows = journal.query(
        f"SELECT id FROM messages WHERE sha256 = ? AND {same_header}"  # noqa: S608
        " AND received_at >= ? ORDER BY received_at DESC LIMIT 1",
        (
            hashlib.sha256(raw).hexdigest(),
            *(() if header is None else (header,)),
            time.time() - window,
        ),
    )
    if not rows:
        return None
    message_id = str(rows[0]["id"])
    if envelope_recipients:
        _merge_recipients(journal, message_id, envelope_recipients)
    return message_id


def _merge_recipients(journal: JournalCore, message_id: str, recipients: Sequence[str]) -> None:
    """Add envelope recipients to a stored message's, in one transaction (the row locked on
    PostgreSQL, so two copies arriving together both count). A message not yet decided is
    decided with them; one decided already keeps them on its record."""
    with journal.transaction() as tx:
        rows = tx.rows(
            f"SELECT envelope_rcpts FROM messages WHERE id = ?{journal.for_update}",  # noqa: S608
            (message_id,),
        )
        if not rows:
            return
        known: list[str] = json.loads(rows[0]["envelope_rcpts"])
        added = [r.lower() for r in recipients if r.lower() not in known]
        if added:
            tx.run(
                "UPDATE messages SET envelope_rcpts = ? WHERE id = ?",
                (json.dumps(known + list(dict.fromkeys(added))), message_id),
            )

"""Recognise a message stored a moment ago when a sender sends it again (its client crashed,
or ours, between the store and the 250): same Message-ID and same bytes, within a window."""

from __future__ import annotations

import hashlib
import time

from router.journal.core import JournalCore
from router.journal.records import message_id_header

# Mail servers retry a message they could not hand over for up to five days; a week covers
# that, while the same bytes sent again much later (a person re-sending) are stored again.
DEDUPE_WINDOW_SECONDS = 7 * 86400.0


def recent_copy(
    journal: JournalCore, raw: bytes, *, window: float = DEDUPE_WINDOW_SECONDS
) -> str | None:
    """The journal id of a message with the same Message-ID (or none) and SHA-256 as `raw`,
    received within `window` seconds; None when there is none.

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
    return str(rows[0]["id"]) if rows else None

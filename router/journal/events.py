"""The audit trail's writing side: one `events` row per change, inside that change's transaction.

Every journal method that changes a message's state (intake, decisions, outbox, retention,
admin reprocess) calls `record_event` with the same `Transaction` as its UPDATE or INSERT,
so a change and its event commit together or not at all: a killed process can leave
neither an event without its change nor a change without its event.

An event holds no form value, subject, body or file name. Its detail may hold addresses the
mail went to; those of the referrer (`PERSONAL_KEYS`, and every address of an
acknowledgment) are scrubbed by the retention purge, like the other rows.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from router.journal.database import Transaction


class Event(StrEnum):
    """What happened to a message (SPEC section 7, `show`)."""

    RECEIVED = "received"
    DECIDED = "decided"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    SETTLED = "settled"
    QUARANTINED = "quarantined"
    REPROCESSED = "reprocessed"
    PURGED = "purged"


# Detail keys that name the referrer: dropped when the message is purged.
PERSONAL_KEYS = ("ack_to",)
# Mail kinds whose recipients are the referrer (dropped at the purge too).
REFERRER_MAIL_KINDS = ("ack",)


def record_event(
    tx: Transaction,
    message_id: str,
    event: Event,
    *,
    reference: str | None = None,
    mail_id: str | None = None,
    at: float | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one event in `tx` (the transaction of the change it describes)."""
    tx.run(
        "INSERT INTO events (message_id, reference, mail_id, at, event, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            message_id,
            reference,
            mail_id,
            time.time() if at is None else at,
            event.value,
            json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True),
        ),
    )


def record_mail_event(
    tx: Transaction,
    mail_id: str,
    event: Event,
    *,
    at: float | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append an event about one outbox mail: its message, reference, kind and recipients
    are read from its row in `tx` (nothing when the row is not there)."""
    rows = tx.rows(
        "SELECT message_id, reference, kind, recipients, attempts FROM outbox WHERE id = ?",
        (mail_id,),
    )
    if not rows:
        return
    row = rows[0]
    full = {
        "kind": row["kind"],
        "recipients": json.loads(row["recipients"]),
        "attempts": row["attempts"],
        **(detail or {}),
    }
    record_event(
        tx,
        row["message_id"],
        event,
        reference=row["reference"],
        mail_id=mail_id,
        at=at,
        detail=full,
    )


def scrub_events(tx: Transaction, message_id: str) -> None:
    """Drop the referrer's address from one purged message's events (the purge's own
    transaction): `PERSONAL_KEYS`, and the recipients of acknowledgments."""
    rows = tx.rows("SELECT seq, detail FROM events WHERE message_id = ?", (message_id,))
    for row in rows:
        detail = json.loads(row["detail"])
        scrubbed = {key: value for key, value in detail.items() if key not in PERSONAL_KEYS}
        if scrubbed.get("kind") in REFERRER_MAIL_KINDS and scrubbed.get("recipients"):
            scrubbed["recipients"] = []
        if scrubbed != detail:
            tx.run(
                "UPDATE events SET detail = ? WHERE seq = ?",
                (json.dumps(scrubbed, ensure_ascii=False, sort_keys=True), row["seq"]),
            )


def os_user() -> str:
    """The operating-system user running this process (for admin actions' events)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


# What a decided event keeps of a decision record: no form value, subject or file name.
DECIDED_KEYS = ("outcome", "area", "to", "cc", "ack_to", "missing", "reason", "signal", "flagged")


def record_decided(
    tx: Transaction, message_id: str, reference: str, record: Mapping[str, Any], at: float
) -> None:
    """The decided event of one decision (its record as `Journal.record_decisions` takes it)."""
    detail = {key: record[key] for key in DECIDED_KEYS if key in record}
    record_event(tx, message_id, Event.DECIDED, reference=reference, at=at, detail=detail)


def quarantine_summary(error: str) -> str:
    """What a quarantined event keeps of the error: its kind, before any text that could
    quote the message (`ValueError: ...` -> `ValueError`; `forward failed: 550 ...` ->
    `forward failed`, the relay's reply being in the failed event)."""
    return error.split(":", 1)[0].strip()[:200]

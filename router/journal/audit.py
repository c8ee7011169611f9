"""The audit trail's reading side: every event of one message, for `show` and the console.

See `router.journal.events` for how each event is written with its change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.core.trail import AuditEvent

if TYPE_CHECKING:
    from router.journal.core import JournalCore


_MESSAGE_ID = re.compile(r"^\s*(\d{8}-[0-9A-Fa-f]{8})\s*$")
_REFERENCE = re.compile(r"^\s*PR-(\d{8}-[0-9A-Fa-f]{8})-(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class AuditTrail:
    """A message's events in time order, and the references of its decisions."""

    message_id: str
    reference: str | None  # the one asked for, else the message's first
    references: list[str]
    state: str
    events: list[AuditEvent]

    def as_json(self) -> dict[str, Any]:
        """`{"reference", "id", "events"}` as `show --json` prints it."""
        return {
            "reference": self.reference,
            "id": self.message_id,
            "state": self.state,
            "events": [event.as_json() for event in self.events],
        }


def parse_wanted(wanted: str) -> tuple[str, str | None] | None:
    """(message id, reference or None) from a journal id or a `PR-...` reference."""
    match = _MESSAGE_ID.match(wanted)
    if match:
        return match.group(1).upper(), None
    match = _REFERENCE.match(wanted)
    if match:
        message_id = match.group(1).upper()
        return message_id, f"PR-{message_id}-{match.group(2)}"
    return None


def audit_trail(journal: JournalCore, wanted: str) -> AuditTrail | None:
    """The trail of the message a journal id or reference names; None when none matches.

    With a reference, the events of that referral and of the message as a whole (another
    form of the same email has its own reference and is left out).
    """
    parsed = parse_wanted(wanted)
    if parsed is None:
        return None
    message_id, reference = parsed
    found = journal.query("SELECT state FROM messages WHERE id = ?", (message_id,))
    if not found:
        return None
    references = [
        str(row["reference"])
        for row in journal.query(
            "SELECT reference FROM decisions WHERE message_id = ? ORDER BY position",
            (message_id,),
        )
    ]
    if reference is not None and reference not in references:
        return None
    rows = journal.query(
        "SELECT at, event, reference, mail_id, detail FROM events WHERE message_id = ?"
        " ORDER BY at, seq",
        (message_id,),
    )
    events = [
        AuditEvent(
            at=float(row["at"]),
            event=str(row["event"]),
            reference=row["reference"],
            mail_id=row["mail_id"],
            detail=json.loads(row["detail"]),
        )
        for row in rows
        if reference is None or row["reference"] in (None, reference)
    ]
    return AuditTrail(
        message_id=message_id,
        reference=reference or (references[0] if references else None),
        references=references,
        state=str(found[0]["state"]),
        events=events,
    )

"""What the operations console reads from the journal, and the actions it records.

Read-only named queries over messages, decisions and the outbox, plus the `console_actions`
table (migration 0050): who made a dry run, and when (a reprocess is in the audit trail).
Rows handed out carry no form value, subject, body or file name; the referrer's address is
masked by the console before it is shown.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router.core.redaction import redact

if TYPE_CHECKING:
    from router.journal.core import JournalCore
    from router.journal.records import Row

QUARANTINED = "quarantined"


@dataclass(frozen=True)
class ReferralFilter:
    """What the referrals list is narrowed to; None or empty means any."""

    received_from: float | None = None  # epoch seconds, inclusive
    received_to: float | None = None  # epoch seconds, exclusive
    outcome: str | None = None
    area: str | None = None
    state: str | None = None
    quarantined: bool = False


@dataclass(frozen=True)
class ReferralRow:
    """One decision (or one message not decided yet), as the console lists it."""

    message_id: str
    reference: str | None
    received_at: float
    decided_at: float | None
    state: str
    outcome: str | None
    area: str | None
    missing: list[str]
    reason: str
    referrer: str | None  # the acknowledged address (unmasked: the console masks it)


@dataclass(frozen=True)
class Overview:
    """Counts for the console's first page."""

    mail_waiting: int
    mail_failed: int
    oldest_undecided_at: float | None
    quarantined: int
    outcomes_today: dict[str, int] = field(default_factory=dict)
    outcomes_week: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    """One console action: who did what to which message, and what came of it."""

    at: float
    actor: str
    action: str
    message_id: str | None
    result: str


class ConsoleQueries:
    """The console's view of the journal (the journal's own connection and locks)."""

    def __init__(self, journal: JournalCore) -> None:
        self._journal = journal

    def overview(self, day_start: float, week_start: float) -> Overview:
        """Mail waiting and failed, the oldest undecided message, the quarantine, and
        decisions by outcome since `day_start` and `week_start`."""
        [row] = self._journal.query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending') AS waiting,"
            " (SELECT COUNT(*) FROM outbox WHERE state = 'failed') AS failed,"
            " (SELECT MIN(received_at) FROM messages WHERE state = 'received') AS undecided,"
            " (SELECT COUNT(*) FROM messages WHERE state = 'quarantined') AS quarantined"
        )
        return Overview(
            mail_waiting=int(row["waiting"]),
            mail_failed=int(row["failed"]),
            oldest_undecided_at=row["undecided"],
            quarantined=int(row["quarantined"]),
            outcomes_today=self._outcomes_since(day_start),
            outcomes_week=self._outcomes_since(week_start),
        )

    def _outcomes_since(self, since: float) -> dict[str, int]:
        rows = self._journal.query(
            "SELECT outcome, COUNT(*) AS n FROM decisions WHERE created_at >= ? GROUP BY outcome",
            (since,),
        )
        return {row["outcome"]: int(row["n"]) for row in rows}

    def referrals(
        self, wanted: ReferralFilter, *, limit: int, offset: int
    ) -> tuple[list[ReferralRow], int]:
        """One page of decisions (and undecided messages), newest first, and how many match."""
        where, params = _where(wanted)
        base = f"FROM messages m LEFT JOIN decisions d ON d.message_id = m.id WHERE {where}"
        [count] = self._journal.query(f"SELECT COUNT(*) AS n {base}", params)
        rows = self._journal.query(
            "SELECT m.id, m.received_at, m.decided_at, m.state, m.last_error,"
            f" d.reference, d.outcome, d.area, d.record {base}"
            " ORDER BY m.received_at DESC, m.id DESC, d.position LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_referral(row) for row in rows], int(count["n"])

    def message_of(self, reference: str) -> str | None:
        """The journal id of the message a reference (`PR-...`) or id names, if any."""
        rows = self._journal.query(
            "SELECT m.id FROM messages m LEFT JOIN decisions d ON d.message_id = m.id"
            " WHERE UPPER(m.id) = UPPER(?) OR UPPER(d.reference) = UPPER(?) LIMIT 1",
            (reference, reference),
        )
        return str(rows[0]["id"]) if rows else None

    def message_rows(self, message_id: str) -> list[ReferralRow]:
        """Every decision of one message (one row when it has none yet)."""
        rows = self._journal.query(
            "SELECT m.id, m.received_at, m.decided_at, m.state, m.last_error, d.reference,"
            " d.outcome, d.area, d.record FROM messages m"
            " LEFT JOIN decisions d ON d.message_id = m.id WHERE m.id = ? ORDER BY d.position",
            (message_id,),
        )
        return [_referral(row) for row in rows]

    def areas_seen(self) -> list[str]:
        """Every area a decision has named (for the filter)."""
        rows = self._journal.query(
            "SELECT DISTINCT area FROM decisions WHERE area IS NOT NULL ORDER BY area"
        )
        return [str(row["area"]) for row in rows]

    def record_action(self, actor: str, action: str, message_id: str | None, result: str) -> None:
        """Keep one console action (durably: it is the record of who did it)."""
        with self._journal.transaction() as tx:
            tx.run(
                "INSERT INTO console_actions (id, at, actor, action, message_id, result)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (secrets.token_hex(8), time.time(), actor, action, message_id, result),
            )

    def recent_actions(self, limit: int = 10) -> list[Action]:
        """The latest console actions (dry runs), oldest of them first."""
        rows = self._journal.query(
            "SELECT at, actor, action, message_id, result FROM console_actions"
            " ORDER BY at DESC LIMIT ?",
            (limit,),
        )
        return [
            Action(row["at"], row["actor"], row["action"], row["message_id"], row["result"])
            for row in reversed(rows)
        ]


def _where(wanted: ReferralFilter) -> tuple[str, Sequence[Any]]:
    clauses: list[str] = ["1 = 1"]
    params: list[Any] = []
    for clause, value in (
        ("m.received_at >= ?", wanted.received_from),
        ("m.received_at < ?", wanted.received_to),
        ("d.outcome = ?", wanted.outcome or None),
        ("d.area = ?", wanted.area or None),
        ("m.state = ?", QUARANTINED if wanted.quarantined else (wanted.state or None)),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return " AND ".join(clauses), params


def _referral(row: Row) -> ReferralRow:
    record: dict[str, Any] = json.loads(row["record"]) if row["record"] else {}
    reason = record.get("reason") or ""
    if row["state"] == QUARANTINED and row["last_error"]:
        reason = f"quarantined: {row['last_error']}"
    return ReferralRow(
        message_id=row["id"],
        reference=row["reference"],
        received_at=row["received_at"],
        decided_at=row["decided_at"],
        state=row["state"],
        outcome=row["outcome"],
        area=row["area"],
        missing=[str(name) for name in record.get("missing", [])],
        reason=redact(reason, 300),
        referrer=record.get("ack_to"),
    )

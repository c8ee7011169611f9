"""Operations: the questions the daemon's gauges, health checks and admin commands ask.

Each is a named, read-mostly method, so no SQL lives outside the journal (see `Journal`).
"""

from __future__ import annotations

from collections.abc import Sequence

from router.core.kinds import ALERT
from router.core.report import CountedDecision
from router.journal.audit import AuditTrail, audit_trail
from router.journal.console import ConsoleQueries
from router.journal.core import JournalCore
from router.journal.dedupe import DEDUPE_WINDOW_SECONDS, recent_copy
from router.journal.graph_sync import GraphSyncStore
from router.journal.mailbox_start import MailboxStarts
from router.journal.records import Gauges, JournalCounts, QuarantinedRow
from router.journal.stats import (
    claim_report_month,
    figures_between,
    figures_to_refine,
    mark_report_sent,
    refine_figures,
    report_sent_at,
)
from router.models import MailState, MessageState


class Operations(JournalCore):
    """See `Journal`: counts, ages and small records for operations."""

    def recent_copy(
        self,
        raw: bytes,
        window: float = DEDUPE_WINDOW_SECONDS,
        envelope_recipients: Sequence[str] = (),
    ) -> str | None:
        """See `Journal.recent_copy`."""
        return recent_copy(self, raw, window=window, envelope_recipients=envelope_recipients)

    def mailbox_starts(self) -> MailboxStarts:
        """See `Journal.mailbox_starts`."""
        return MailboxStarts(self)

    def audit_trail(self, wanted: str) -> AuditTrail | None:
        """See `Journal.audit_trail`."""
        return audit_trail(self, wanted)

    def figures_between(self, start: float, end: float) -> list[CountedDecision]:
        """See `Journal.figures_between`."""
        return figures_between(self, start, end)

    def claim_report_month(self, month: str, lease_seconds: float) -> bool:
        """See `Journal.claim_report_month`."""
        return claim_report_month(self, month, lease_seconds)

    def mark_report_sent(self, month: str, reply: str | None) -> None:
        """See `Journal.mark_report_sent`."""
        mark_report_sent(self, month, reply)

    def report_sent_at(self, month: str) -> float | None:
        """See `Journal.report_sent_at`."""
        return report_sent_at(self, month)

    def figures_to_refine(self, limit: int = 20) -> list[tuple[str, str, int, float]]:
        """See `Journal.figures_to_refine`."""
        return figures_to_refine(self, limit)

    def refine_figures(self, reference: str, figures: dict[str, str] | None) -> None:
        """See `Journal.refine_figures`."""
        refine_figures(self, reference, figures)

    def console_queries(self) -> ConsoleQueries:
        """See `Journal.console_queries`."""
        return ConsoleQueries(self)

    def graph_sync(self) -> GraphSyncStore:
        """See `Journal.graph_sync`."""
        return GraphSyncStore(self)

    def pending_mail_count(self) -> int:
        """See `Journal.pending_mail_count`."""
        [row] = self._db.query(
            "SELECT COUNT(*) AS n FROM outbox WHERE state = ?", (MailState.PENDING.value,)
        )
        return int(row["n"])

    def oldest_undecided(self) -> float | None:
        """See `Journal.oldest_undecided`."""
        [row] = self._db.query(
            "SELECT MIN(received_at) AS t FROM messages WHERE state = ?",
            (MessageState.RECEIVED.value,),
        )
        return None if row["t"] is None else float(row["t"])

    def gauges(self) -> Gauges:
        """See `Journal.gauges`."""
        node = self.node
        [row] = self._db.query(
            "SELECT (SELECT COUNT(*) FROM messages WHERE state = ?) AS q,"
            " (SELECT MIN(created_at) FROM outbox WHERE state = ?) AS oldest,"
            " (SELECT MIN(received_at) FROM messages WHERE state = ?) AS undecided,"
            " (SELECT COUNT(*) FROM messages WHERE claimed_by = ? AND state = ?) AS messages,"
            " (SELECT COUNT(*) FROM outbox WHERE claimed_by = ? AND state = ?) AS mail",
            (
                MessageState.QUARANTINED.value,
                MailState.PENDING.value,
                MessageState.RECEIVED.value,
                node,
                MessageState.RECEIVED.value,
                node,
                MailState.PENDING.value,
            ),
        )
        return Gauges(
            quarantined=int(row["q"]),
            oldest_unsent=row["oldest"],
            oldest_undecided=row["undecided"],
            held_messages=int(row["messages"]),
            held_mail=int(row["mail"]),
        )

    def received_at(self, message_id: str) -> float | None:
        """See `Journal.received_at`."""
        rows = self._db.query("SELECT received_at FROM messages WHERE id = ?", (message_id,))
        return float(rows[0]["received_at"]) if rows else None

    def give_back_attempt(self, message_id: str, attempts: int) -> None:
        """See `Journal.give_back_attempt`."""
        with self._db.transaction() as tx:
            tx.run(
                "UPDATE messages SET attempts = ? WHERE id = ? AND attempts = ?",
                (attempts, message_id, attempts + 1),
            )

    def message_state(self, message_id: str) -> MessageState | None:
        """See `Journal.message_state`."""
        rows = self._db.query("SELECT state FROM messages WHERE id = ?", (message_id,))
        return MessageState(rows[0]["state"]) if rows else None

    def message_for_reference(self, reference: str) -> str | None:
        """See `Journal.message_for_reference`."""
        rows = self._db.query(
            "SELECT message_id FROM decisions WHERE UPPER(reference) = UPPER(?)", (reference,)
        )
        return str(rows[0]["message_id"]) if rows else None

    def schema_version(self) -> int:
        """See `Journal.schema_version`."""
        [row] = self._db.query("SELECT MAX(version) AS version FROM schema_migrations")
        return int(row["version"])

    def meta(self, key: str) -> str | None:
        """See `Journal.meta`."""
        rows = self._db.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """See `Journal.set_meta`."""
        with self._db.transaction() as tx:
            tx.run(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def counts(self) -> JournalCounts:
        """See `Journal.counts`."""
        db = self._db
        messages = {
            str(r["state"]): int(r["n"])
            for r in db.query("SELECT state, COUNT(*) AS n FROM messages GROUP BY state")
        }
        outcomes = {
            str(r["outcome"]): int(r["n"])
            for r in db.query("SELECT outcome, COUNT(*) AS n FROM decisions GROUP BY outcome")
        }
        sent = {
            str(r["kind"]): int(r["n"])
            for r in db.query(
                "SELECT kind, COUNT(*) AS n FROM outbox WHERE state = ? GROUP BY kind",
                (MailState.SENT.value,),
            )
        }
        [twice] = db.query(
            "SELECT COUNT(*) AS n FROM (SELECT reference FROM outbox WHERE state = ?"
            " AND reference IS NOT NULL AND kind != ? GROUP BY reference, kind"
            " HAVING COUNT(*) > 1) AS repeated",
            (MailState.SENT.value, ALERT),
        )
        [outbox] = db.query(
            "SELECT COALESCE(SUM(CASE WHEN state = ? THEN 1 ELSE 0 END), 0) AS pending,"
            " COALESCE(SUM(CASE WHEN state = ? AND attempts > 0 THEN 1 ELSE 0 END), 0)"
            " AS retrying,"
            " COALESCE(SUM(CASE WHEN state = ? THEN 1 ELSE 0 END), 0) AS failed,"
            " MIN(CASE WHEN state = ? THEN created_at END) AS oldest FROM outbox",
            (
                MailState.PENDING.value,
                MailState.PENDING.value,
                MailState.FAILED.value,
                MailState.PENDING.value,
            ),
        )
        rules = db.query(
            "SELECT rules_version FROM messages WHERE rules_version IS NOT NULL"
            " ORDER BY decided_at DESC LIMIT 1"
        )
        return JournalCounts(
            messages=messages,
            outcomes=outcomes,
            sent=sent,
            sent_more_than_once=int(twice["n"]),
            outbox_pending=int(outbox["pending"]),
            outbox_retrying=int(outbox["retrying"]),
            outbox_failed=int(outbox["failed"]),
            oldest_unsent=outbox["oldest"],
            oldest_undecided=self.oldest_undecided(),
            last_rules_version=rules[0]["rules_version"] if rules else None,
            quarantined=self._quarantined(),
        )

    def _quarantined(self) -> list[QuarantinedRow]:
        db = self._db
        rows = db.query(
            "SELECT id, received_at, last_error FROM messages WHERE state = ? ORDER BY received_at",
            (MessageState.QUARANTINED.value,),
        )
        references: dict[str, list[str]] = {}
        for decision in db.query(
            "SELECT d.message_id, d.reference FROM decisions d JOIN messages m"
            " ON d.message_id = m.id WHERE m.state = ?",
            (MessageState.QUARANTINED.value,),
        ):
            references.setdefault(decision["message_id"], []).append(decision["reference"])
        return [
            QuarantinedRow(
                id=row["id"],
                received_at=float(row["received_at"]),
                references=tuple(sorted(references.get(row["id"], []))),
                last_error=row["last_error"],
            )
            for row in rows
        ]

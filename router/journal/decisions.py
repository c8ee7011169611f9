"""Decisions: claiming stored messages, recording each one's outcome once, quarantine."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from router.journal.core import JournalCore
from router.journal.database import MESSAGE, SPOOL, Transaction
from router.journal.events import (
    Event,
    os_user,
    quarantine_summary,
    record_decided,
    record_event,
    record_mail_event,
)
from router.journal.records import NewMail, Row, StoredMessage
from router.journal.stats import record_figures

_NO_LIMIT = 2**31 - 1  # an ack cap of 0 in the rules means none


class Decisions(JournalCore):
    """Deciding stored messages. See `Journal`."""

    def received(self, limit: int = 100) -> list[StoredMessage]:
        """See `Journal.received`."""
        if not self.shared:  # one owner: nothing to claim against
            rows = self.query(
                "SELECT * FROM messages WHERE state = 'received' ORDER BY received_at LIMIT ?",
                (limit,),
            )
            return [_stored(row) for row in rows]
        claimable, params = self._claimable()
        # Claimed and read in one statement. A claim lost to a power cut lapses: the message
        # is taken (and decided) again.
        with self._db.transaction(durable=False) as tx:
            claim = (
                f"UPDATE messages SET claimed_by = ?, lease_until = {self._lease()}"  # noqa: S608
                " WHERE id IN (SELECT id FROM messages WHERE state = 'received'"
                f" AND {claimable} ORDER BY received_at LIMIT ?{self._db.skip_locked})"
                " RETURNING *"
            )
            rows = tx.rows(
                self._blobs.claiming_with_bytes(MESSAGE, claim), (self.node, *params, limit)
            )
        self._blobs.read_ahead(MESSAGE, rows)
        rows.sort(key=lambda row: (row["received_at"], row["id"]))
        return [_stored(row) for row in rows]

    def count_attempt(self, message_id: str) -> int:
        """See `Journal.count_attempt`."""
        # Bookkeeping: a crash of the process keeps the count (so crash loops stay bounded);
        # only a power cut can lose the last increment, which gives one more attempt.
        with self._db.transaction(durable=False) as tx:
            [row] = tx.rows(
                "UPDATE messages SET attempts = attempts + 1, claimed_by = ?,"  # noqa: S608
                f" lease_until = {self._lease()} WHERE id = ? RETURNING attempts",
                (self.node, message_id),
            )
        return int(row["attempts"])

    def record_decisions(
        self,
        message_id: str,
        decisions: Sequence[tuple[str, dict[str, Any]]],
        mails: Sequence[NewMail],
        *,
        rules_version: str,
        quarantine_reason: str | None = None,
        figures: Sequence[dict[str, str]] = (),
    ) -> None:
        """See `Journal.record_decisions`.

        The spooled mails are written together (files: fsynced once each, their folder
        once), then the decision, its mails and the message's new state commit in one
        durable transaction. If that fails, the files written for it are removed.
        """
        if not self._undecided(self._db.query, message_id):
            return  # decided already: leave its spooled mails as they are
        now = time.time()
        spooled = [(f"{message_id}.{number}", mail.data) for number, mail in enumerate(mails)]
        self._blobs.stage_many(SPOOL, spooled)
        try:
            with self._db.transaction() as tx:
                if not self._undecided(tx.rows, message_id, self._db.for_update):
                    return  # another node decided it meanwhile
                self._insert_decisions(tx, message_id, decisions, now)
                for (reference, record), counted in zip(decisions, figures, strict=False):
                    record_figures(tx, message_id, reference, record, counted, now)
                for (mail_id, _), mail in zip(spooled, mails, strict=True):
                    self._insert_mail(tx, mail_id, message_id, mail, now)
                self._blobs.attach_many(tx, SPOOL, spooled)
                tx.run(
                    "UPDATE messages SET state = ?, rules_version = ?, decided_at = ?,"
                    " last_error = ?, claimed_by = NULL, lease_until = NULL WHERE id = ?",
                    (
                        "quarantined" if quarantine_reason else "decided",
                        rules_version,
                        now,
                        quarantine_reason,
                        message_id,
                    ),
                )
                if quarantine_reason:
                    detail = {"error": quarantine_summary(quarantine_reason)}
                    record_event(tx, message_id, Event.QUARANTINED, at=now, detail=detail)
                finished = self._finish(tx, [message_id], now)  # nothing to send: done
        except BaseException:
            for mail_id, _ in spooled:
                self._blobs.unstage(SPOOL, mail_id)
            raise
        self._report_finished(finished)

    @staticmethod
    def _undecided(
        rows: Callable[[str, Sequence[Any]], list[Row]], message_id: str, lock: str = ""
    ) -> bool:
        found = rows(f"SELECT state FROM messages WHERE id = ?{lock}", (message_id,))  # noqa: S608
        return bool(found) and found[0]["state"] == "received"

    @staticmethod
    def _insert_decisions(
        tx: Transaction,
        message_id: str,
        decisions: Sequence[tuple[str, dict[str, Any]]],
        now: float,
    ) -> None:
        for position, (reference, record) in enumerate(decisions):
            tx.run(
                "INSERT INTO decisions (reference, message_id, position, outcome, area,"
                " record, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    reference,
                    message_id,
                    position,
                    record["outcome"],
                    record.get("area"),
                    json.dumps(record),
                    now,
                ),
            )
            record_decided(tx, message_id, reference, record, now)

    def _insert_mail(
        self, tx: Transaction, mail_id: str, message_id: str, mail: NewMail, now: float
    ) -> None:
        """The outbox row of a mail (its bytes are attached by the caller)."""
        tx.run(
            "INSERT INTO outbox (id, message_id, reference, kind, sender, recipients,"
            " message_id_header, state, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (
                mail_id,
                message_id,
                mail.reference,
                mail.kind,
                mail.sender,
                json.dumps(list(mail.recipients)),
                mail.message_id_header,
                now,
                now,
            ),
        )
        record_mail_event(tx, mail_id, Event.QUEUED, at=now)

    def quarantine(self, message_id: str, error: str, *, alert: NewMail | None = None) -> None:
        """See `Journal.quarantine`."""
        with self._added_mail(message_id, alert) as add, self._db.transaction() as tx:
            self._set_aside(tx, message_id, error)
            add(tx)

    @staticmethod
    def _set_aside(tx: Transaction, message_id: str, error: str) -> None:
        """Quarantine a message with its error, and record that it was (same transaction)."""
        changed = tx.run(
            "UPDATE messages SET state = 'quarantined', last_error = ?, claimed_by = NULL,"
            " lease_until = NULL WHERE id = ?",
            (error[:2000], message_id),
        )
        if changed:
            detail = {"error": quarantine_summary(error)}
            record_event(tx, message_id, Event.QUARANTINED, detail=detail)

    @contextmanager
    def _added_mail(
        self, message_id: str, mail: NewMail | None
    ) -> Iterator[Callable[[Transaction], str | None]]:
        """Stage the bytes of one more mail for a message (an alert), and give the step
        that queues it inside the caller's transaction; the bytes are removed again when
        that transaction fails (no file left that no row names)."""
        if mail is None:
            yield lambda tx: None
            return
        mail_id = f"{message_id}.a{secrets.token_hex(3)}"
        self._blobs.stage(SPOOL, mail_id, mail.data)

        def add(tx: Transaction) -> str:
            self._insert_mail(tx, mail_id, message_id, mail, time.time())
            self._blobs.attach(tx, SPOOL, mail_id, mail.data)
            return mail_id

        try:
            yield add
        except BaseException:
            self._blobs.unstage(SPOOL, mail_id)
            raise

    def reprocess(self, message_id: str, *, by: str | None = None) -> bool:
        """See `Journal.reprocess`."""
        audit = {"by": by or os_user()}
        with self._db.transaction() as tx:
            changed = tx.run(
                "UPDATE messages SET state = 'received', attempts = 0, last_error = NULL,"
                " settled = 0 WHERE id = ? AND state = 'quarantined'"
                " AND NOT EXISTS"
                " (SELECT 1 FROM decisions WHERE decisions.message_id = messages.id)",
                (message_id,),
            )
            if changed:
                record_event(tx, message_id, Event.REPROCESSED, detail={**audit, "what": "decide"})
                return True
            # Decided, but a mail to it failed for good: retry those mails instead.
            changed = tx.run(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?"
                " WHERE message_id = ? AND state = 'failed'",
                (time.time(), message_id),
            )
            if changed:
                tx.run(
                    "UPDATE messages SET state = 'decided', last_error = NULL WHERE id = ?",
                    (message_id,),
                )
                detail = {**audit, "what": "send", "mails": changed}
                record_event(tx, message_id, Event.REPROCESSED, detail=detail)
            return changed > 0

    def count_ack(self, sender: str, limit: int) -> bool:
        """See `Journal.count_ack`. One atomic upsert, so the cap holds across nodes."""
        day = f"{datetime.now(UTC):%Y-%m-%d}"
        with self._db.transaction() as tx:
            rows = tx.rows(
                "INSERT INTO ack_counts (sender, day, count) VALUES (?, ?, 1)"
                " ON CONFLICT (sender, day) DO UPDATE SET count = ack_counts.count + 1"
                " WHERE ack_counts.count < ? RETURNING count",
                (sender, day, limit or _NO_LIMIT),
            )
        return bool(rows)


def _stored(row: Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        state=row["state"],
        attempts=row["attempts"],
        envelope_rcpts=tuple(json.loads(row["envelope_rcpts"])),
        oversize=bool(row["oversize"]),
        size=row["size"],
        message_id_header=row["message_id_header"],
        source_key=row["source_key"],
        received_at=float(row["received_at"]),
    )

"""The outbox: mail waiting to be sent, claimed by one node at a time, and its fate."""

from __future__ import annotations

import json
import time

from router.journal.core import FINISH, HEARTBEAT_SECONDS
from router.journal.database import SPOOL
from router.journal.decisions import Decisions
from router.journal.events import Event, record_mail_event
from router.journal.records import NewMail, OutboxItem, Row
from router.journal.stats import record_forwarded

# Pending mail that may go now. An acknowledgment waits for its referral's forward: the
# referrer is never told "forwarded" about a referral the relay has not accepted.
# (A scalar subquery, not NOT EXISTS: PostgreSQL would hash every unsent forward of the
# outbox on each call; this way each pending ack looks up its own reference in an index.)
_SENDABLE = (
    "state = 'pending' AND (kind != 'ack' OR (SELECT 1 FROM outbox AS f"
    " WHERE f.reference = outbox.reference"
    " AND f.kind IN ('forward', 'incomplete_notice', 'review')"
    " AND f.state != 'sent' LIMIT 1) IS NULL)"
)
# finish_messages looks at every decided message this often (its first call included),
# for what no mark finished: a journal written by an older version, or a message whose last
# two mails two nodes marked at the same moment (neither saw the other's commit). Otherwise
# a message is finished in the transaction that takes its last mail out of the queue.
FULL_FINISH_SECONDS = 60.0


class Outbox(Decisions):
    """Sending what the decisions caused. See `Journal`."""

    def outgoing_data(self, mail_id: str) -> bytes | None:
        """See `Journal.outgoing_data`."""
        return self._blobs.load(SPOOL, mail_id)

    def add_mail(self, message_id: str, mail: NewMail) -> str:
        """See `Journal.add_mail`."""
        with self._added_mail(message_id, mail) as add, self._db.transaction() as tx:
            mail_id = add(tx)
        assert mail_id is not None  # a mail was given
        return mail_id

    def due_mail(self, now: float, limit: int = 50) -> list[OutboxItem]:
        """See `Journal.due_mail`."""
        if not self.shared:  # one owner: nothing to claim against
            rows = self.query(
                f"SELECT * FROM outbox WHERE {_SENDABLE} AND next_attempt_at <= ?"  # noqa: S608
                " ORDER BY next_attempt_at LIMIT ?",
                (now, limit),
            )
            return [_item(row) for row in rows]
        claimable, params = self._claimable()
        # Claimed and read in one statement. Only claims are written here: one lost to a
        # power cut lapses and is taken again.
        with self._db.transaction(durable=False) as tx:
            claim = (
                f"UPDATE outbox SET claimed_by = ?, lease_until = {self._lease()}"  # noqa: S608
                f" WHERE id IN (SELECT id FROM outbox WHERE {_SENDABLE}"
                f" AND next_attempt_at <= ? AND {claimable}"
                f" ORDER BY next_attempt_at LIMIT ?{self._db.skip_locked}) RETURNING *"
            )
            rows = tx.rows(
                self._blobs.claiming_with_bytes(SPOOL, claim), (self.node, now, *params, limit)
            )
        self._blobs.read_ahead(SPOOL, rows)
        rows.sort(key=lambda row: (row["next_attempt_at"], row["id"]))
        return [_item(row) for row in rows]

    def next_due(self) -> float | None:
        """See `Journal.next_due`."""
        rows = self.query(f"SELECT MIN(next_attempt_at) AS t FROM outbox WHERE {_SENDABLE}")  # noqa: S608
        value = rows[0]["t"]
        due = float(value) if value is not None else None
        if self.shared:
            # Other nodes store and claim work too: look again soon, whatever is due here.
            soon = time.time() + HEARTBEAT_SECONDS
            due = soon if due is None else min(due, soon)
        return due

    def mark_sent(self, mail_id: str, reply: str | None = None) -> None:
        """See `Journal.mark_sent`."""
        # Not fsynced: a crash of the process keeps it, but a power cut just after may lose
        # it, and the mail (accepted by the relay already) is sent once more. A duplicate to
        # the same recipients is the promise (at least once); a lost mail never is.
        now = time.time()
        with self._db.transaction(durable=False) as tx:
            rows = tx.rows(
                "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1,"
                " last_error = NULL, claimed_by = NULL, lease_until = NULL WHERE id = ?"
                " RETURNING message_id",
                (now, mail_id),
            )
            if rows:
                record_mail_event(tx, mail_id, Event.SENT, at=now, detail={"reply": reply})
                record_forwarded(tx, mail_id, now)
            finished = self._finish(tx, (row["message_id"] for row in rows), now)
        self._report_finished(finished)

    def mark_retry(self, mail_id: str, error: str, next_attempt_at: float) -> None:
        """See `Journal.mark_retry`."""
        # Not fsynced: losing it (a power cut) leaves the mail pending with its previous
        # attempt count and due at once, so it is only tried again sooner, never lost.
        with self._db.transaction(durable=False) as tx:
            tx.run(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
                " claimed_by = NULL, lease_until = NULL WHERE id = ?",
                (error[:500], next_attempt_at, mail_id),
            )
            detail = {"reply": error[:500], "final": False, "retry_at": next_attempt_at}
            record_mail_event(tx, mail_id, Event.FAILED, detail=detail)

    def mark_failed(
        self,
        mail_id: str,
        error: str,
        *,
        quarantine: str | None = None,
        alert: NewMail | None = None,
    ) -> None:
        """See `Journal.mark_failed`."""
        # Durable: an outcome a person acts on (`status` lists it), and it holds the acks back.
        # One transaction with the quarantine and the alert: a crash or a journal error
        # leaves the mail pending (sent again, refused again), never failed and untold.
        owner = self.query("SELECT message_id FROM outbox WHERE id = ?", (mail_id,))
        if not owner:
            return  # purged meanwhile: nothing left to mark
        message_id = owner[0]["message_id"]
        with self._added_mail(message_id, alert) as add, self._db.transaction() as tx:
            tx.run(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?,"
                " claimed_by = NULL, lease_until = NULL WHERE id = ?",
                (error[:500], mail_id),
            )
            record_mail_event(
                tx, mail_id, Event.FAILED, detail={"reply": error[:500], "final": True}
            )
            held = tx.rows(
                "UPDATE outbox SET state = 'failed', last_error = 'held: the forward failed'"
                " WHERE state = 'pending' AND kind = 'ack' AND reference = ("
                " SELECT reference FROM outbox WHERE id = ?"
                " AND kind IN ('forward', 'incomplete_notice', 'review')) RETURNING id",
                (mail_id,),
            )
            for ack in held:
                detail = {"held": "the forward failed", "final": True}
                record_mail_event(tx, ack["id"], Event.FAILED, detail=detail)
            if quarantine is not None:
                self._set_aside(tx, message_id, quarantine)
            add(tx)
            finished = self._finish(tx, [message_id], time.time())
        self._report_finished(finished)

    def finish_messages(self) -> list[str]:
        """See `Journal.finish_messages`.

        Costs what it finishes, not the whole queue: a message is marked done in the
        transaction that takes its last mail out of the queue (`mark_sent`, `mark_failed`,
        or its decision with nothing to send), and this returns those. Every
        `FULL_FINISH_SECONDS` (and at the first call) it also looks at every decided message.
        """
        now = time.time()
        with self._finish_lock:
            finished, self._finished = self._finished, []
            full = now >= self._full_finish_at
            if full:
                self._full_finish_at = now + FULL_FINISH_SECONDS
        if full:
            try:
                # Not fsynced: 'done' follows from the outbox alone; a lost one is found again.
                with self._db.transaction(durable=False) as tx:
                    finished += [row["id"] for row in tx.rows(f"{FINISH} RETURNING id", (now,))]
            except BaseException:
                with self._finish_lock:  # report them next time, and look again then
                    self._finished[:0] = finished
                    self._full_finish_at = 0.0
                raise
        return finished

    def mail_by_message_id_header(self, header: str) -> Row | None:
        """See `Journal.mail_by_message_id_header`."""
        rows = self.query(
            "SELECT * FROM outbox WHERE message_id_header = ? LIMIT 1", (header.strip(),)
        )
        return rows[0] if rows else None

    def mark_bounced(self, mail_id: str) -> None:
        """See `Journal.mark_bounced`."""
        with self._db.transaction() as tx:
            now = time.time()
            if tx.run("UPDATE outbox SET bounced_at = ? WHERE id = ?", (now, mail_id)):
                record_mail_event(tx, mail_id, Event.BOUNCED, at=now)


def _item(row: Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        message_id=row["message_id"],
        reference=row["reference"],
        kind=row["kind"],
        sender=row["sender"],
        recipients=tuple(json.loads(row["recipients"])),
        message_id_header=row["message_id_header"],
        attempts=row["attempts"],
    )

"""The journal: SQLite (WAL) rows plus fsynced files, so that no accepted message is ever lost.

A message is stored (file fsynced, row committed) before any inbox acknowledges it. Every
later step reads its state from here and writes its result back in one transaction, so a
crash at any point resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from router.inbox.base import Settlement
from router.journal.files import FILE_MODE, ensure_dir, write_durably

SCHEMA_VERSION = "1"

# Pending mail that may go now. An acknowledgment waits for its referral's forward: the
# referrer is never told "forwarded" about a referral the relay has not accepted.
_SENDABLE = (
    "state = 'pending' AND NOT (kind = 'ack' AND EXISTS (SELECT 1 FROM outbox AS f"
    " WHERE f.reference = outbox.reference AND f.kind IN ('forward', 'review')"
    " AND f.state != 'sent'))"
)


@dataclass(frozen=True)
class StoredMessage:
    """A message row as the pipeline needs it."""

    id: str
    state: str
    attempts: int
    envelope_rcpts: tuple[str, ...]
    oversize: bool
    size: int
    message_id_header: str | None
    source_key: str | None


@dataclass(frozen=True)
class OutboxItem:
    """One outgoing mail waiting to be sent (its bytes live in a spool file)."""

    id: str
    message_id: str
    reference: str | None
    kind: str
    sender: str
    recipients: tuple[str, ...]
    message_id_header: str
    attempts: int


@dataclass(frozen=True)
class NewMail:
    """An outgoing mail to record with a decision (see `Journal.record_decisions`)."""

    kind: str  # forward | ack | review | alert
    reference: str | None
    sender: str
    recipients: tuple[str, ...]
    message_id_header: str
    data: bytes


def new_message_id() -> str:
    """A journal id such as `20261121-9F2C3A1B`: sortable by day, readable on the phone."""
    return f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4).upper()}"


class Journal:
    """The durable store. Thread-safe: one connection behind a lock.

    See `InboxSink` for the contract its `accept*`, `find_source`, `rekey`, `settlements`
    and `settled` methods fulfil.
    """

    def __init__(
        self, state_dir: Path, *, processed_folder: str = "Processed", failed_folder: str = "Failed"
    ) -> None:
        self.folders = {"processed": processed_folder, "failed": failed_folder}
        self.state_dir = ensure_dir(state_dir)
        self.messages_dir = ensure_dir(state_dir / "messages")
        self.spool_dir = ensure_dir(state_dir / "spool")
        self.tmp_dir = ensure_dir(state_dir / "tmp")
        self.path = state_dir / "journal.sqlite3"
        self._lock = threading.RLock()
        # Create the file private before SQLite opens it (its -wal and -shm files copy the
        # database file's mode); chmod fixes a file made by an older version.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        self.path.chmod(FILE_MODE)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        schema = resources.files("router.journal").joinpath("schema.sql").read_text("utf-8")
        with self._lock:
            self._db.executescript(schema)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable unit of work."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (a full disk): a transaction left open would
                # make every later BEGIN fail. SQLite may have rolled back already.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params))

    # --- intake (InboxSink) -------------------------------------------------------------

    def raw_path(self, message_id: str) -> Path:
        return self.messages_dir / f"{message_id}.eml"

    def accept_sync(
        self,
        raw: bytes,
        *,
        source_key: str | None = None,
        envelope_recipients: Sequence[str] = (),
    ) -> str:
        """Store a message durably and queue it. Idempotent per `source_key`."""
        if source_key is not None:
            existing = self.find_source_sync(source_key=source_key)
            if existing:
                return existing
        message_id = new_message_id()
        write_durably(self.raw_path(message_id), raw, tmp_dir=self.tmp_dir)
        header = message_id_header(raw)
        try:
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO messages (id, received_at, source_key, message_id_header,"
                    " sha256, size, envelope_rcpts, state)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'received')",
                    (
                        message_id,
                        time.time(),
                        source_key,
                        header,
                        hashlib.sha256(raw).hexdigest(),
                        len(raw),
                        json.dumps([r.lower() for r in envelope_recipients]),
                    ),
                )
        except BaseException:
            self.raw_path(message_id).unlink(missing_ok=True)  # no row: keep no copy either
            raise
        return message_id

    async def accept(
        self,
        raw: bytes,
        *,
        source_key: str | None = None,
        envelope_recipients: Sequence[str] = (),
    ) -> str:
        """See `InboxSink.accept`."""
        return await asyncio.to_thread(
            self.accept_sync, raw, source_key=source_key, envelope_recipients=envelope_recipients
        )

    async def accept_oversize(
        self, *, source_key: str, size: int, message_id_header: str | None, sender: str | None
    ) -> str:
        """See `InboxSink.accept_oversize`. Only the headers we were given are kept."""

        def store() -> str:
            existing = self.find_source_sync(source_key=source_key)
            if existing:
                return existing
            message_id = new_message_id()
            stub = _oversize_stub(message_id_header, sender, size)
            write_durably(self.raw_path(message_id), stub, tmp_dir=self.tmp_dir)
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO messages (id, received_at, source_key, message_id_header,"
                    " size, oversize, state) VALUES (?, ?, ?, ?, ?, 1, 'received')",
                    (message_id, time.time(), source_key, message_id_header, size),
                )
            return message_id

        return await asyncio.to_thread(store)

    def find_source_sync(
        self,
        *,
        source_key: str | None = None,
        message_id_header: str | None = None,
        sha256: str | None = None,
    ) -> str | None:
        if source_key is not None:
            rows = self.query("SELECT id FROM messages WHERE source_key = ?", (source_key,))
            if rows:
                return str(rows[0]["id"])
        if message_id_header is None and sha256 is None:
            return None
        clauses, params = [], []
        if message_id_header is not None:
            clauses.append("message_id_header = ?")
            params.append(message_id_header)
        if sha256 is not None:
            clauses.append("sha256 = ?")
            params.append(sha256)
        rows = self.query(
            f"SELECT id FROM messages WHERE {' AND '.join(clauses)} ORDER BY received_at",  # noqa: S608
            params,
        )
        return str(rows[0]["id"]) if rows else None

    async def find_source(
        self,
        *,
        source_key: str | None = None,
        message_id_header: str | None = None,
        sha256: str | None = None,
    ) -> str | None:
        """See `InboxSink.find_source`."""
        return self.find_source_sync(
            source_key=source_key, message_id_header=message_id_header, sha256=sha256
        )

    async def rekey(self, message_id: str, source_key: str) -> None:
        """See `InboxSink.rekey`. The server copy under its new key still has to be moved."""
        with self.transaction() as db:
            db.execute(
                "UPDATE messages SET source_key = ?, settled = 0 WHERE id = ?",
                (source_key, message_id),
            )

    async def settlements(self, source_prefix: str) -> list[Settlement]:
        """See `InboxSink.settlements`."""
        rows = self.query(
            "SELECT id, source_key, state FROM messages WHERE settled = 0"
            " AND state IN ('decided', 'done', 'quarantined') AND source_key LIKE ?"
            " ORDER BY received_at",
            (source_prefix.replace("%", "") + "%",),
        )
        return [
            Settlement(
                message_id=row["id"],
                source_key=row["source_key"],
                folder=self.folders["failed" if row["state"] == "quarantined" else "processed"],
            )
            for row in rows
        ]

    async def settled(self, message_id: str) -> None:
        """See `InboxSink.settled`."""
        with self.transaction() as db:
            db.execute("UPDATE messages SET settled = 1 WHERE id = ?", (message_id,))

    # --- processing ---------------------------------------------------------------------

    def _stored(self, row: sqlite3.Row) -> StoredMessage:
        return StoredMessage(
            id=row["id"],
            state=row["state"],
            attempts=row["attempts"],
            envelope_rcpts=tuple(json.loads(row["envelope_rcpts"])),
            oversize=bool(row["oversize"]),
            size=row["size"],
            message_id_header=row["message_id_header"],
            source_key=row["source_key"],
        )

    def received(self, limit: int = 100) -> list[StoredMessage]:
        """Messages stored but not yet decided, oldest first."""
        rows = self.query(
            "SELECT * FROM messages WHERE state = 'received' ORDER BY received_at LIMIT ?",
            (limit,),
        )
        return [self._stored(row) for row in rows]

    def claim(self, message_id: str) -> int:
        """Count one more processing attempt *before* it starts, so crash loops are bounded."""
        with self.transaction() as db:
            db.execute("UPDATE messages SET attempts = attempts + 1 WHERE id = ?", (message_id,))
            row = db.execute("SELECT attempts FROM messages WHERE id = ?", (message_id,)).fetchone()
        return int(row["attempts"])

    def record_decisions(
        self,
        message_id: str,
        decisions: Sequence[tuple[str, dict[str, Any]]],
        mails: Sequence[NewMail],
        *,
        rules_version: str,
        quarantine_reason: str | None = None,
    ) -> None:
        """Record a message's decisions and every mail they cause, atomically.

        Spool files are written (fsynced) first; if the process dies before the commit,
        the message is still `received` and the next attempt writes the same file names.
        """
        now = time.time()
        for number, mail in enumerate(mails):
            write_durably(
                self.spool_path(f"{message_id}.{number}"), mail.data, tmp_dir=self.tmp_dir
            )
        state = "quarantined" if quarantine_reason else "decided"
        with self.transaction() as db:
            row = db.execute("SELECT state FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None or row["state"] != "received":
                return  # decided already (a duplicate call after a crash): nothing to do
            for position, (reference, record) in enumerate(decisions):
                db.execute(
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
            for number, mail in enumerate(mails):
                self._insert_mail(db, f"{message_id}.{number}", message_id, mail, now)
            db.execute(
                "UPDATE messages SET state = ?, rules_version = ?, decided_at = ?,"
                " last_error = ? WHERE id = ?",
                (state, rules_version, now, quarantine_reason, message_id),
            )

    def _insert_mail(
        self, db: sqlite3.Connection, mail_id: str, message_id: str, mail: NewMail, now: float
    ) -> None:
        db.execute(
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

    def add_mail(self, message_id: str, mail: NewMail) -> str:
        """Queue one more mail for a message after its decision (alerts about failures)."""
        mail_id = f"{message_id}.a{secrets.token_hex(3)}"
        write_durably(self.spool_path(mail_id), mail.data, tmp_dir=self.tmp_dir)
        with self.transaction() as db:
            self._insert_mail(db, mail_id, message_id, mail, time.time())
        return mail_id

    def quarantine(self, message_id: str, error: str) -> None:
        """Set one message aside with its error; it is never dropped (see `reprocess`)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE messages SET state = 'quarantined', last_error = ? WHERE id = ?",
                (error[:2000], message_id),
            )

    def reprocess(self, message_id: str) -> bool:
        """Put a quarantined message back in the queue with a fresh attempt count."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE messages SET state = 'received', attempts = 0, last_error = NULL,"
                " settled = 0 WHERE id = ? AND state = 'quarantined'"
                " AND NOT EXISTS"
                " (SELECT 1 FROM decisions WHERE decisions.message_id = messages.id)",
                (message_id,),
            )
            if cursor.rowcount:
                return True
            # Decided, but a mail to it failed for good: retry those mails instead.
            cursor = db.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?"
                " WHERE message_id = ? AND state = 'failed'",
                (time.time(), message_id),
            )
            if cursor.rowcount:
                db.execute(
                    "UPDATE messages SET state = 'decided', last_error = NULL WHERE id = ?",
                    (message_id,),
                )
            return cursor.rowcount > 0

    # --- delivery -----------------------------------------------------------------------

    def spool_path(self, mail_id: str) -> Path:
        return self.spool_dir / f"{mail_id}.eml"

    def due_mail(self, now: float, limit: int = 50) -> list[OutboxItem]:
        rows = self.query(
            f"SELECT * FROM outbox WHERE {_SENDABLE} AND next_attempt_at <= ?"  # noqa: S608
            " ORDER BY next_attempt_at LIMIT ?",
            (now, limit),
        )
        return [
            OutboxItem(
                id=row["id"],
                message_id=row["message_id"],
                reference=row["reference"],
                kind=row["kind"],
                sender=row["sender"],
                recipients=tuple(json.loads(row["recipients"])),
                message_id_header=row["message_id_header"],
                attempts=row["attempts"],
            )
            for row in rows
        ]

    def next_due(self) -> float | None:
        rows = self.query(f"SELECT MIN(next_attempt_at) AS t FROM outbox WHERE {_SENDABLE}")  # noqa: S608
        value = rows[0]["t"]
        return float(value) if value is not None else None

    def mark_sent(self, mail_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1,"
                " last_error = NULL WHERE id = ?",
                (time.time(), mail_id),
            )

    def mark_retry(self, mail_id: str, error: str, next_attempt_at: float) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE id = ?",
                (error[:500], next_attempt_at, mail_id),
            )

    def mark_failed(self, mail_id: str, error: str) -> None:
        """A mail refused for good. Its referral's waiting acknowledgment is held back too
        (failed, so `reprocess` sends both once the cause is fixed)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?"
                " WHERE id = ?",
                (error[:500], mail_id),
            )
            db.execute(
                "UPDATE outbox SET state = 'failed', last_error = 'held: the forward failed'"
                " WHERE state = 'pending' AND kind = 'ack' AND reference = ("
                " SELECT reference FROM outbox WHERE id = ? AND kind IN ('forward', 'review'))",
                (mail_id,),
            )

    def finish_messages(self) -> list[str]:
        """Mark decided messages with no mail left to send as done; returns their ids.

        A failed forward or review quarantines its message, so a failed mail still here is
        an acknowledgment or an alert: nothing more will happen to it, and the message must
        not wait for ever (its stored copy would never be purged).
        """
        with self.transaction() as db:
            rows = db.execute(
                "SELECT id FROM messages WHERE state = 'decided' AND NOT EXISTS ("
                " SELECT 1 FROM outbox WHERE outbox.message_id = messages.id"
                " AND outbox.state = 'pending')"
            ).fetchall()
            now = time.time()
            for row in rows:
                db.execute(
                    "UPDATE messages SET state = 'done', done_at = ? WHERE id = ?",
                    (now, row["id"]),
                )
        return [row["id"] for row in rows]

    def mail_by_message_id_header(self, header: str) -> sqlite3.Row | None:
        rows = self.query(
            "SELECT * FROM outbox WHERE message_id_header = ? LIMIT 1", (header.strip(),)
        )
        return rows[0] if rows else None

    def mark_bounced(self, mail_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE outbox SET bounced_at = ? WHERE id = ?", (time.time(), mail_id))

    def count_ack(self, sender: str, limit: int) -> bool:
        """Count one acknowledgment to `sender` today; False when the daily cap is reached.

        A `limit` of 0 means no limit (the rules say so): the acknowledgment is counted and
        always allowed.
        """
        day = f"{datetime.now(UTC):%Y-%m-%d}"
        with self.transaction() as db:
            row = db.execute(
                "SELECT count FROM ack_counts WHERE sender = ? AND day = ?", (sender, day)
            ).fetchone()
            count = row["count"] if row else 0
            if limit and count >= limit:
                return False
            db.execute(
                "INSERT INTO ack_counts (sender, day, count) VALUES (?, ?, 1)"
                " ON CONFLICT (sender, day) DO UPDATE SET count = count + 1",
                (sender, day),
            )
        return True

    # --- retention ----------------------------------------------------------------------

    def purge(self, older_than: float) -> int:
        """Delete stored messages, spooled mail and personal traces of finished messages
        done before a time; rows keep reference, outcome, area and timestamps.

        See `router.journal.retention`. Returns how many messages were purged.
        """
        from router.journal.retention import purge

        return purge(self, older_than)


def message_id_header(raw: bytes) -> str | None:
    """The Message-ID from the header block, without a full parse (cheap, never raises)."""
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line[:11].lower() == b"message-id:":
            value = line[11:].strip().decode("ascii", "replace")
            return value or None
    return None


def _oversize_stub(message_id_header: str | None, sender: str | None, size: int) -> bytes:
    lines: list[str | None] = [
        f"From: {sender}" if sender else "From: <>",
        f"Message-ID: {message_id_header}" if message_id_header else None,
        "Subject: (oversize message not downloaded)",
        f"X-Router-Oversize: {size}",
        "",
        "The message was too large to download; it is still in the inbox.",
    ]
    return "\r\n".join(line for line in lines if line is not None).encode() + b"\r\n"

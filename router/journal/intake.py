"""Intake: storing what the inboxes hand over, once per message, and settling inbox copies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from typing import cast

from router.journal.core import JournalCore
from router.journal.database import MESSAGE
from router.journal.events import Event, record_event
from router.journal.records import Row, message_id_header, new_message_id, oversize_stub
from router.journal.sink import Settlement

# A source key that starts with a given prefix, exactly (LIKE would take `_` and `%` in a
# folder's name for wildcards, and SQLite's ignores case): params (its length, the prefix).
_STARTS_WITH = "substr(source_key, 1, ?) = ?"
# A message to store: its id, its bytes, and its row's other values.
_Stored = tuple[str, bytes, tuple[object, ...]]


class Intake(JournalCore):
    """The `InboxSink` half of the journal. See `Journal`."""

    def raw_message(self, message_id: str) -> bytes | None:
        """See `Journal.raw_message`."""
        return self._blobs.load(MESSAGE, message_id)

    def accept_sync(
        self,
        raw: bytes,
        *,
        source_key: str | None = None,
        envelope_recipients: Sequence[str] = (),
    ) -> str:
        """See `Journal.accept_sync`."""
        if source_key is not None:
            existing = self.find_source_sync(source_key=source_key)
            if existing:
                return existing
        row = (
            time.time(),
            source_key,
            message_id_header(raw),
            hashlib.sha256(raw).hexdigest(),
            len(raw),
            json.dumps([r.lower() for r in envelope_recipients]),
            0,
        )
        return self._store(raw, row, source_key)

    def _store(self, raw: bytes, row: tuple[object, ...], source_key: str | None) -> str:
        """Insert one message and its bytes; a key another node stored first wins.

        The file is written and fsynced here, in the caller's thread; the row is committed
        with those of the other messages being stored at the same moment (`GroupCommit`),
        after one fsync of the folder for all their files' names, so a burst of sessions
        costs one commit and one folder fsync, not one each.
        """
        message_id = new_message_id()
        self._blobs.stage_unnamed(MESSAGE, message_id, raw)
        try:
            inserted = self.intake_commits.submit((message_id, raw, row), self._insert_messages)
        except BaseException:
            # Write, then record: a row that could not be recorded leaves no file behind
            # (the inbox answers 451 and the sender tries again).
            self._blobs.unstage(MESSAGE, message_id)
            raise
        if inserted:
            return message_id
        with self._db.transaction() as tx:
            self._blobs.discard(tx, MESSAGE, message_id)
        existing = self.find_source_sync(source_key=source_key)
        assert existing is not None  # the unique key that refused the row names it
        return existing

    def _insert_messages(self, batch: Sequence[_Stored]) -> list[bool]:
        """One durable transaction for the rows of a batch; whether each was inserted (not
        refused by a source key stored before, by another node or earlier in the batch)."""
        # Every file of the batch was renamed into place before it was queued: one fsync
        # of the folder makes all the names durable, before any row names them.
        self._blobs.sync_names(MESSAGE)
        inserted = []
        with self._db.transaction() as tx:
            for message_id, _, row in batch:
                inserted.append(
                    tx.run(
                        "INSERT INTO messages (id, received_at, source_key, message_id_header,"
                        " sha256, size, envelope_rcpts, oversize, state)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'received')"
                        " ON CONFLICT (source_key) DO NOTHING",
                        (message_id, *row),
                    )
                    > 0
                )
                if inserted[-1]:
                    at, detail = _received_detail(row, self.node)
                    record_event(tx, message_id, Event.RECEIVED, at=at, detail=detail)
            self._blobs.attach_many(
                tx,
                MESSAGE,
                [(key, raw) for (key, raw, _), new in zip(batch, inserted, strict=True) if new],
            )
        return inserted

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
            stub = oversize_stub(message_id_header, sender, size)
            row = (time.time(), source_key, message_id_header, None, size, "[]", 1)
            return self._store(stub, row, source_key)

        return await asyncio.to_thread(store)

    def find_source_sync(
        self,
        *,
        source_key: str | None = None,
        message_id_header: str | None = None,
        sha256: str | None = None,
        source_prefix: str | None = None,
    ) -> str | None:
        """See `InboxSink.find_source`."""
        if source_key is not None:
            rows = self.query("SELECT id FROM messages WHERE source_key = ?", (source_key,))
            if rows:
                return str(rows[0]["id"])
        if message_id_header is None and sha256 is None:
            return None
        clauses: list[str] = []
        params: list[object] = []
        if message_id_header is not None:
            clauses.append("message_id_header = ?")
            params.append(message_id_header)
        if sha256 is not None:
            clauses.append("sha256 = ?")
            params.append(sha256)
        if source_prefix is not None:
            # This inbox's own messages, and IMAP ones whose key does not name a mailbox yet.
            clauses.append(
                f"({_STARTS_WITH} OR (source_key LIKE 'imap:%' AND source_key NOT LIKE 'imap://%'))"
            )
            params += [len(source_prefix), source_prefix]
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
        source_prefix: str | None = None,
    ) -> str | None:
        """See `InboxSink.find_source`."""
        return await asyncio.to_thread(
            self.find_source_sync,
            source_key=source_key,
            message_id_header=message_id_header,
            sha256=sha256,
            source_prefix=source_prefix,
        )

    async def adopt_sources(self, old_prefix: str, new_prefix: str) -> int:
        """See `InboxSink.adopt_sources`."""

        def update() -> int:
            with self._db.transaction() as tx:
                return tx.run(
                    f"UPDATE messages SET source_key = ? || substr(source_key, ?)"  # noqa: S608
                    f" WHERE {_STARTS_WITH}",
                    (new_prefix, len(old_prefix) + 1, len(old_prefix), old_prefix),
                )

        return await asyncio.to_thread(update)

    async def rekey(self, message_id: str, source_key: str) -> None:
        """See `InboxSink.rekey`. The server copy under its new key still has to be moved."""

        def update() -> None:
            with self._db.transaction() as tx:
                tx.run(
                    "UPDATE messages SET source_key = ?, settled = 0 WHERE id = ?",
                    (source_key, message_id),
                )

        await asyncio.to_thread(update)

    async def settlements(self, source_prefix: str) -> list[Settlement]:
        """See `InboxSink.settlements`."""
        rows = await asyncio.to_thread(
            self.query,
            "SELECT id, source_key, state FROM messages WHERE settled = 0"  # noqa: S608
            f" AND state IN ('decided', 'done', 'quarantined') AND {_STARTS_WITH}"
            " ORDER BY received_at",
            (len(source_prefix), source_prefix),
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

        def update() -> None:
            # Not fsynced: a settle lost to a power cut is done again, and moving a copy that
            # already left the folder moves nothing.
            with self._db.transaction(durable=False) as tx:
                rows = tx.rows(
                    "UPDATE messages SET settled = 1 WHERE id = ? AND settled = 0"
                    " RETURNING state, source_key",
                    (message_id,),
                )
                for row in rows:
                    record_event(tx, message_id, Event.SETTLED, detail=self._settled_detail(row))

        await asyncio.to_thread(update)

    def _settled_detail(self, row: Row) -> dict[str, object]:
        """Where a settled inbox copy went: its folder (IMAP, Graph) or nowhere (SMTP)."""
        source = str(row["source_key"] or "").partition(":")[0]
        if source in ("", "smtp"):
            return {"source": source or "smtp"}
        folder = self.folders["failed" if row["state"] == "quarantined" else "processed"]
        return {"source": source, "folder": folder}


def _received_detail(row: tuple[object, ...], node: str) -> tuple[float, dict[str, object]]:
    """When a message was received, and its event's detail: the inbox, never the content."""
    received_at, source_key, _, _, size, envelope, oversize = row
    return cast(float, received_at), {
        "source": str(source_key or "smtp").partition(":")[0],
        "inbox": json.loads(str(envelope)),
        "size": size,
        "oversize": bool(oversize),
        "node": node,
    }

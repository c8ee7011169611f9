"""The state every part of the journal shares: the database, the bytes, this node's name."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from router.journal.database import Blobs, Database, Transaction
from router.journal.group import GroupCommit
from router.journal.records import Row

# How long a claim on a message or a mail lasts without a heartbeat. A killed node's work
# is taken over after this; the spec allows 30 s, and a poll interval comes on top.
LEASE_SECONDS = 20.0
# A live node renews its claims this often.
HEARTBEAT_SECONDS = 5.0


# Decided messages with no mail left to send become done (more conditions are appended).
FINISH = (
    "UPDATE messages SET state = 'done', done_at = ? WHERE state = 'decided'"
    " AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.message_id = messages.id"
    " AND outbox.state = 'pending')"
)


class JournalCore:
    """Holds what the journal's parts (intake, decisions, outbox, retention) work on."""

    def __init__(
        self,
        db: Database,
        blobs: Blobs,
        *,
        node: str,
        shared: bool,
        where: str,
        processed_folder: str = "Processed",
        failed_folder: str = "Failed",
    ) -> None:
        self._db = db
        self._blobs = blobs
        self.node = node
        # Several nodes on one database: claims carry a lease. With one owner (SQLite) a
        # claim is only bookkeeping, and work left by a crash is taken up at once.
        self.shared = shared
        self.where = where
        self.folders = {"processed": processed_folder, "failed": failed_folder}
        self.lease_seconds = LEASE_SECONDS  # tests shorten it
        # Messages this object marked done, for the next `finish_messages` to report, and
        # when that looks at every decided message again (see `Outbox.finish_messages`).
        self._finish_lock = threading.Lock()
        self._finished: list[str] = []
        self._full_finish_at = 0.0
        # Stored messages whose rows commit together (see `Intake._store`).
        self.intake_commits: GroupCommit[Any, bool] = GroupCommit()

    @property
    def for_update(self) -> str:
        """What locks the rows a SELECT reads until the transaction ends (PostgreSQL)."""
        return self._db.for_update

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """See `Journal.query`."""
        return self._db.query(sql, params)

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Transaction]:
        """See `Journal.transaction`."""
        return self._db.transaction(durable=durable)

    def close(self) -> None:
        """See `Journal.close`."""
        self._db.close()

    def _finish(self, tx: Transaction, message_ids: Iterable[str], now: float) -> list[str]:
        """Mark done, in `tx`, those of these messages that are decided and have no mail
        left to send (one index look-up each); returns their ids.

        On PostgreSQL the message's row is locked first: two senders marking the last two
        mails of one message at once would otherwise each see the other's mail still
        pending (READ COMMITTED), and neither would finish it."""
        finished = []
        for message_id in message_ids:
            lock = f"SELECT id FROM messages WHERE id = ?{self._db.for_update}"  # noqa: S608
            rows = tx.rows_of_last(
                [
                    *([(lock, (message_id,))] if self._db.for_update else []),
                    (f"{FINISH} AND id = ? RETURNING id", (now, message_id)),
                ]
            )
            finished += [row["id"] for row in rows]
        return finished

    def _report_finished(self, message_ids: list[str]) -> None:
        """Have the next `finish_messages` return these (committed done just now)."""
        if message_ids:
            with self._finish_lock:
                self._finished += message_ids

    def _lease(self) -> str:
        """An SQL expression: when a claim taken now lapses, on the database's clock."""
        return f"({self._db.clock} + {float(self.lease_seconds)!r})"

    def _claimable(self) -> tuple[str, list[Any]]:
        """A WHERE fragment: rows nobody holds, this node holds, or whose lease ran out (on
        the database's clock)."""
        if not self.shared:
            return "1 = 1", []
        return (
            f"(claimed_by IS NULL OR claimed_by = ? OR lease_until < {self._db.clock})",
            [self.node],
        )

"""The bytes of stored messages and spooled mail as PostgreSQL `bytea` rows (table `blobs`),
written in their row's transaction, read ahead with their claims."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from router.journal.database import Database, Transaction
from router.journal.records import Row

# Claimed items' bytes kept until loaded (see `TableBlobs.read_ahead`): two claims' worth.
READ_AHEAD_ITEMS = 256


class TableBlobs:
    """Messages and spooled mail as bytea rows, written in the row's transaction. See `Blobs`."""

    def __init__(self, database: Database) -> None:
        self._db = database
        # Bytes read with their rows' claim, until loaded (bounded: a claim whose item is
        # never loaded, say its node stops, must not hold memory for ever).
        self._read: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._read_lock = threading.Lock()

    def stage(self, kind: str, key: str, data: bytes) -> None:
        """Nothing to do before the transaction: the bytes go in with the row."""

    def stage_many(self, kind: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Nothing to do before the transaction: the bytes go in with the rows."""

    def stage_unnamed(self, kind: str, key: str, data: bytes) -> None:
        """Nothing to do before the transaction: the bytes go in with the row."""

    def sync_names(self, kind: str) -> None:
        """Nothing to do: no files."""

    def attach(self, tx: Transaction, kind: str, key: str, data: bytes) -> None:
        self.attach_many(tx, kind, [(key, data)])

    def attach_many(self, tx: Transaction, kind: str, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        values = ", ".join(["(?, ?, ?)"] * len(items))
        tx.run(
            f"INSERT INTO blobs (kind, id, data) VALUES {values}"  # noqa: S608 - placeholders only
            " ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
            [value for key, data in items for value in (kind, key, data)],
        )

    def unstage(self, kind: str, key: str) -> None:
        """Nothing to undo: the bytes went (or did not go) with the row."""

    def claiming_with_bytes(self, kind: str, statement: str) -> str:
        """See `Blobs.claiming_with_bytes`."""
        assert kind.isidentifier()  # a constant of ours (MESSAGE, SPOOL), put in the SQL
        return (
            f"WITH claimed AS ({statement}) SELECT claimed.*, blobs.data AS read_ahead"  # noqa: S608
            f" FROM claimed LEFT JOIN blobs ON blobs.kind = '{kind}' AND blobs.id = claimed.id"
        )

    def read_ahead(self, kind: str, rows: Sequence[Row]) -> None:
        """See `Blobs.read_ahead`."""
        with self._read_lock:
            for row in rows:
                data = row.pop("read_ahead", None)
                if data is not None:
                    self._read[(kind, row["id"])] = bytes(data)
            while len(self._read) > READ_AHEAD_ITEMS:
                self._read.popitem(last=False)

    def load(self, kind: str, key: str) -> bytes | None:
        with self._read_lock:
            data = self._read.pop((kind, key), None)
        if data is not None:
            return data
        rows = self._db.query("SELECT data FROM blobs WHERE kind = ? AND id = ?", (kind, key))
        return bytes(rows[0]["data"]) if rows else None

    def discard(self, tx: Transaction, kind: str, key: str) -> None:
        tx.run("DELETE FROM blobs WHERE kind = ? AND id = ?", (kind, key))

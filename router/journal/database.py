"""What the journal's modules need of a SQL database, so one set of queries serves both backends.

Queries are written once, with `?` placeholders and SQL that SQLite and PostgreSQL both
accept; a backend differs only in how it connects, locks, and keeps the bytes of messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from router.journal.records import Row

# The two kinds of bytes the journal keeps: stored raw messages and spooled outgoing mail.
MESSAGE = "message"
SPOOL = "spool"


class Transaction(Protocol):
    """One open transaction: statements run in it commit together or not at all."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a statement and return every row it gives."""
        ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return how many rows it changed."""
        ...

    def rows_of_last(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Row]:
        """Run statements in order (each one seeing what the previous ones waited for) and
        return the rows of the last: in one round trip where the database is remote."""
        ...


class Database(Protocol):
    """A connection (or a pool) to the journal's database."""

    # Appended to a SELECT that picks rows to claim: rows another node holds are skipped
    # (PostgreSQL `FOR UPDATE SKIP LOCKED`; empty where one process owns the database).
    skip_locked: str
    # Appended to a SELECT of one row that is then changed (`FOR UPDATE`, or empty).
    for_update: str
    # An SQL expression for the database's own clock, in seconds since the epoch. Leases and
    # heartbeats are written and compared with it, never with a node's clock: a node whose
    # clock runs ahead would otherwise take live nodes' claims.
    clock: str

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Transaction]:
        """One atomic unit of work.

        Args:
            durable: True (the default): committed means on disk, through a power cut.
                False, for bookkeeping whose loss can only make work be repeated (claims,
                leases, sent marks): the commit survives a crash of the process at once, but
                a power cut (or kernel crash) may lose it until the next durable commit
                (SQLite `synchronous=NORMAL` in WAL mode; PostgreSQL commits durably all
                the same, since there the database server's own crash would lose it).
                Never for what creates work or records an outcome.

        Raises:
            JournalUnavailable: the database cannot be reached.
        """
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read outside any transaction of ours."""
        ...

    def close(self) -> None: ...


class Blobs(Protocol):
    """Where the bytes of stored messages and spooled mail live, beside their rows.

    Writing is in two steps so that each backend can be durable its own way: `stage` runs
    before the row's transaction (files are written and fsynced there), `attach` inside it
    (a database keeps the bytes in the same transaction as the row).
    """

    def stage(self, kind: str, key: str, data: bytes) -> None: ...

    def stage_many(self, kind: str, items: Sequence[tuple[str, bytes]]) -> None:
        """`stage` for several (key, bytes) at once, durable together when it returns (files:
        one fsync per file and one for their folder, not one per file)."""
        ...

    def stage_unnamed(self, kind: str, key: str, data: bytes) -> None:
        """`stage`, except that the file's name is durable only after `sync_names(kind)`
        (so that several files staged by concurrent callers share one folder fsync)."""
        ...

    def sync_names(self, kind: str) -> None:
        """Make the names of every file staged with `stage_unnamed` durable."""
        ...

    def attach(self, tx: Transaction, kind: str, key: str, data: bytes) -> None: ...

    def attach_many(self, tx: Transaction, kind: str, items: Sequence[tuple[str, bytes]]) -> None:
        """`attach` for several (key, bytes) at once (one statement)."""
        ...

    def unstage(self, kind: str, key: str) -> None:
        """Undo `stage` when the row's transaction failed, so no bytes are left that no row
        names (a copy of a referral retention would never delete)."""
        ...

    def load(self, kind: str, key: str) -> bytes | None:
        """The bytes, or None once purged (or never stored)."""
        ...

    def discard(self, tx: Transaction, kind: str, key: str) -> None:
        """Forget the bytes (retention); the row stays."""
        ...

    def claiming_with_bytes(self, kind: str, statement: str) -> str:
        """`statement` (an UPDATE ... RETURNING * of rows whose id names their bytes) made to
        return each row's bytes too, as `read_ahead`, where they live in the database (one
        round trip fewer per item); unchanged where they are files."""
        ...

    def read_ahead(self, kind: str, rows: Sequence[Row]) -> None:
        """Keep the `read_ahead` bytes of these rows for the next `load` of each (and take
        the column out of the rows)."""
        ...

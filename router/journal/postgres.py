"""The shared journal: every row and byte in PostgreSQL, for several routers at once.

psycopg 3 with its connection pool, used synchronously: the journal has one interface for
both backends, the pipeline calls it between awaits (each call is one short transaction),
and the inboxes' async methods run it in a worker thread. Every wait on the database is
bounded, so a database that is down gives `JournalUnavailable`, never a hung daemon.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from router.journal.database import Transaction
from router.journal.migrations import VERSION_TABLE, migrations
from router.journal.records import JournalUnavailable, Row
from router.journal.sql import SqlJournal

log = structlog.get_logger(__name__)

# pg_advisory_lock key for schema migrations ("referral" in ASCII, as a number).
MIGRATION_LOCK = 0x726566657272616C
CONNECT_TIMEOUT_SECONDS = 5
POOL_TIMEOUT_SECONDS = 5.0
DOWN_POOL_TIMEOUT_SECONDS = 0.5
_UNREACHABLE = (psycopg.Error, PoolTimeout)
_DOWN = (psycopg.OperationalError, PoolTimeout)


def redacted_url(url: str) -> str:
    """The URL without any password (safe to print)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, ""))


def _sql(statement: str) -> str:
    """`?` placeholders (the journal's queries are shared with SQLite) to psycopg's `%s`."""
    return statement.replace("%", "%%").replace("?", "%s")


class _PostgresTransaction:
    """See `Transaction`."""

    def __init__(self, connection: psycopg.Connection[Row]) -> None:
        self._connection = connection

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._connection.execute(_sql(sql), tuple(params))
        return cursor.fetchall() if cursor.description else []

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._connection.execute(_sql(sql), tuple(params)).rowcount


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database. See `Database`."""

    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, password: str | None = None, max_size: int = 4) -> None:
        self.url = url
        self._down = False
        self._connect_args: dict[str, Any] = {
            "row_factory": dict_row,
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "referral-router",
        }
        if password:
            self._connect_args["password"] = password
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url,
            kwargs=self._connect_args,
            min_size=1,
            max_size=max_size,
            timeout=POOL_TIMEOUT_SECONDS,
            check=ConnectionPool.check_connection,  # a restarted server: reconnect, not fail
            open=False,
        )

    def open(self) -> None:
        """Start the pool's connections (after `migrate`, so a database that cannot be
        reached at start is one clear error, not a pool retrying in the background)."""
        self._pool.open(wait=False)

    def _wait_seconds(self) -> float:
        """How long to wait for a connection: briefly while the server is known to be down,
        so a caller on the event loop (the pipeline) is never held for long."""
        return DOWN_POOL_TIMEOUT_SECONDS if self._down else POOL_TIMEOUT_SECONDS

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Transaction]:
        """See `Database.transaction`. Every commit waits for its WAL flush, `durable` or
        not: with `synchronous_commit = off` a crash of the database server itself (a
        restart, a failover, an out-of-memory kill: ordinary events for a shared journal,
        not only a power cut) would lose the last commits, and lost sent marks are mail
        sent twice."""
        del durable
        try:
            with (
                self._pool.connection(timeout=self._wait_seconds()) as connection,
                connection.transaction(),
            ):
                yield _PostgresTransaction(connection)
        except _UNREACHABLE as exc:
            self._down = isinstance(exc, _DOWN)
            raise JournalUnavailable(type(exc).__name__) from exc
        self._down = False

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            with self._pool.connection(timeout=self._wait_seconds()) as connection:
                rows = _PostgresTransaction(connection).rows(sql, params)
        except _UNREACHABLE as exc:
            self._down = isinstance(exc, _DOWN)
            raise JournalUnavailable(type(exc).__name__) from exc
        self._down = False
        return rows

    def migrate(self) -> int:
        """Apply missing migrations under an advisory lock (two nodes starting together
        wait for each other); returns how many this call applied."""
        applied = 0
        try:
            with psycopg.connect(self.url, **self._connect_args) as connection:
                connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                done = {
                    row["version"]
                    for row in connection.execute(f"SELECT version FROM {VERSION_TABLE}")  # noqa: S608
                }
                for migration in migrations("postgresql"):
                    if migration.version in done:
                        continue
                    with connection.transaction():
                        connection.execute(migration.sql.encode())
                        connection.execute(
                            f"INSERT INTO {VERSION_TABLE} VALUES (%s, %s, %s)",  # noqa: S608
                            (migration.version, migration.name, time.time()),
                        )
                    applied += 1
                connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        except psycopg.Error as exc:
            raise JournalUnavailable(
                f"cannot reach the journal database {redacted_url(self.url)} ({type(exc).__name__})"
            ) from exc
        return applied

    def close(self) -> None:
        self._pool.close()


class TableBlobs:
    """Messages and spooled mail as bytea rows, written in the row's transaction. See `Blobs`."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

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

    def load(self, kind: str, key: str) -> bytes | None:
        rows = self._db.query("SELECT data FROM blobs WHERE kind = ? AND id = ?", (kind, key))
        return bytes(rows[0]["data"]) if rows else None

    def discard(self, tx: Transaction, kind: str, key: str) -> None:
        tx.run("DELETE FROM blobs WHERE kind = ? AND id = ?", (kind, key))


class PostgresJournal(SqlJournal):
    """The journal several routers share. See `Journal`."""

    def __init__(
        self,
        url: str,
        *,
        node: str,
        password: str | None = None,
        processed_folder: str = "Processed",
        failed_folder: str = "Failed",
    ) -> None:
        self.url = url
        database = PostgresDatabase(url, password=password)
        database.migrate()
        database.open()
        super().__init__(
            database,
            TableBlobs(database),
            node=node,
            shared=True,
            where=redacted_url(url),
            processed_folder=processed_folder,
            failed_folder=failed_folder,
        )

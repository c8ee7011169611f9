"""The shared journal: every row and byte in PostgreSQL, for several routers at once.

psycopg 3 with its connection pool, used synchronously: the journal has one interface for
both backends, the pipeline calls it between awaits (each call is one short transaction),
and the inboxes' async methods run it in a worker thread. Every wait on the database is
bounded, so a database that is down gives `JournalUnavailable`, never a hung daemon.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import structlog
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from router.journal.conninfo import JournalUrl, parse_journal_url, redact_url
from router.journal.database import Transaction
from router.journal.migrations import VERSION_TABLE, migrations
from router.journal.pg_blobs import TableBlobs
from router.journal.records import JournalUnavailable, JournalUnreachable, Row
from router.journal.sql import SqlJournal
from router.journal.watchdog import Watchdog

log = structlog.get_logger(__name__)

# pg_advisory_xact_lock key for schema migrations ("referral" in ASCII, as a number).
MIGRATION_LOCK = 0x726566657272616C
# A node starting while another migrates waits this long for it, then says so.
MIGRATION_LOCK_TIMEOUT = "60s"
MIGRATION_STATEMENT_TIMEOUT = "10min"
POOL_TIMEOUT_SECONDS = 5.0
# A call with no answer this long after its statement_timeout (which the server enforces,
# when it hears the statement) has lost its server: its connection is cut (see `Watchdog`).
CLIENT_GRACE_SECONDS = 2.0
DOWN_POOL_TIMEOUT_SECONDS = 0.5
_UNREACHABLE = (psycopg.Error, PoolTimeout)
_DOWN = (psycopg.OperationalError, PoolTimeout)
# Answers after which a connection is not used again: a server that is (still, or again)
# read-only after a failover, or one shutting down. The pool makes a new connection, which
# libpq points at a writable host (`target_session_attrs=read-write`).
_DISCARD = (
    psycopg.OperationalError,
    errors.ReadOnlySqlTransaction,  # 25006
    errors.AdminShutdown,  # 57P01
    errors.CrashShutdown,  # 57P02
    errors.CannotConnectNow,  # 57P03
)


def _sql(statement: str) -> str:
    """`?` placeholders (the journal's queries are shared with SQLite) to psycopg's `%s`."""
    return statement.replace("%", "%%").replace("?", "%s")


class _PostgresTransaction:
    """See `Transaction`. BEGIN and the transaction's time limits go in the same message as
    its first statement (one round trip fewer per transaction); that statement's parameters
    are bound by psycopg on this side (a multi-statement message cannot carry them)."""

    def __init__(
        self, connection: psycopg.Connection[Row], watchdog: Watchdog, begin_sql: str
    ) -> None:
        self._connection = connection
        self._watchdog = watchdog
        self._begin: str | None = begin_sql
        self.begun = False

    def _execute(
        self, sql: str, params: Sequence[Any], *, several: bool = False
    ) -> psycopg.Cursor[Row]:
        """Run `sql` (`several` statements: one message, bound on this side); the cursor
        is left on the last statement's result."""
        with self._watchdog.watch(self._connection.fileno()):
            if self._begin is None and not several:
                return self._connection.execute(_sql(sql), tuple(params))
            cursor = psycopg.ClientCursor(self._connection)
            begin, self._begin = self._begin, None
            self.begun = True
            cursor.execute(f"{begin}; {_sql(sql)}" if begin else _sql(sql), tuple(params))
            while cursor.nextset():  # past BEGIN and the SETs: the last statement's result
                pass
            return cursor

    def rows_of_last(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Row]:
        """See `Transaction.rows_of_last`: one message, each statement with a snapshot of
        its own (READ COMMITTED), so a row lock waited for shows the holder's commit."""
        sql = "; ".join(statement for statement, _ in statements)
        params = [value for _, values in statements for value in values]
        cursor = self._execute(sql, params, several=True)
        return cursor.fetchall() if cursor.description else []

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._execute(sql, params).rowcount

    def commit(self) -> None:
        if self.begun:
            with self._watchdog.watch(self._connection.fileno()):
                self._connection.execute("COMMIT")


def _check_idle(connection: psycopg.Connection[Row]) -> None:
    """The pool's check before lending a connection, without a round trip: an idle
    connection whose socket has something to read was closed by its server (a restart, a
    failover, an idle timeout) or told something unasked; either way it is not used.

    Raises:
        psycopg.OperationalError: the connection is not fit to use (the pool drops it).
    """
    if connection.broken or connection.closed:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    if readable:
        connection.close()  # else the pool would take it back as it is, and lend it again
        raise psycopg.OperationalError("connection closed by the server while idle")


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database (or a pooler in front of it). See
    `Database`.

    Nothing is kept between transactions on a server connection, so that a transaction
    pooler (PgBouncer `pool_mode = transaction`) may hand each one to another: no server-side
    prepared statements (`prepare_threshold=None`), time limits set with `SET LOCAL` in each
    transaction, the migration lock taken inside the migration's transaction.
    """

    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"
    clock = "EXTRACT(EPOCH FROM clock_timestamp())::float8"

    def __init__(self, url: str, *, password: str | None = None, max_size: int = 4) -> None:
        self.target: JournalUrl = parse_journal_url(url)
        self.url = self.target.conninfo  # what libpq (and a test's own connection) takes
        self._down = False
        self._connect_args: dict[str, Any] = {
            "row_factory": dict_row,
            "autocommit": True,  # transactions are opened by `_begin`, with their limits
            "prepare_threshold": None,  # never server-side prepared: poolers mix sessions
            **self.target.libpq_defaults,
        }
        if password:
            self._connect_args["password"] = password
        self._max_size = max_size
        limit = self.target.seconds("statement_timeout") or 60.0
        self._watchdog = Watchdog(limit + CLIENT_GRACE_SECONDS)
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            self.url,
            kwargs=self._connect_args,
            min_size=1,
            max_size=max_size,
            timeout=POOL_TIMEOUT_SECONDS,
            check=self._check,  # a restarted or failed-over server: a new connection
            open=False,
        )

    def open(self) -> None:
        """Start the pool's connections (after `migrate`, so a database that cannot be
        reached at start is one clear error, not a pool retrying in the background)."""
        self._pool.open(wait=False)

    def _check(self, connection: psycopg.Connection[Row]) -> None:
        """`_check_idle`; a connection found closed means the server restarted or failed
        over: the others may be stale too, so waits are short until one works again."""
        try:
            _check_idle(connection)
        except psycopg.OperationalError:
            self._down = True
            raise

    def _wait_seconds(self) -> float:
        """How long to wait for a connection: briefly while the server is known to be down,
        so a caller on the event loop (the pipeline) is never held for long."""
        return DOWN_POOL_TIMEOUT_SECONDS if self._down else POOL_TIMEOUT_SECONDS

    def _unavailable(self, exc: BaseException) -> JournalUnavailable:
        """The error a caller gets, remembering whether the server is down."""
        self._down = isinstance(exc, _DOWN)
        if isinstance(exc, (*_DISCARD, PoolTimeout)):
            return JournalUnreachable(type(exc).__name__)
        return JournalUnavailable(type(exc).__name__)

    def _give_back(self, connection: psycopg.Connection[Row], exc: BaseException | None) -> None:
        """Return a connection to the pool, rolled back; closed after an answer in `_DISCARD`
        (the pool then replaces it)."""
        if isinstance(exc, _DISCARD):
            connection.close()
        elif connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with suppress(psycopg.Error), self._watchdog.watch(connection.fileno()):
                connection.execute("ROLLBACK")
        self._pool.putconn(connection)

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Transaction]:
        """See `Database.transaction`. Every commit waits for its WAL flush, `durable` or
        not: with `synchronous_commit = off` a crash of the database server itself (a
        restart, a failover, an out-of-memory kill: ordinary events for a shared journal,
        not only a power cut) would lose the last commits, and lost sent marks are mail
        sent twice."""
        del durable
        try:
            connection = self._pool.getconn(timeout=self._wait_seconds())
            failure: BaseException | None = None
            try:
                transaction = _PostgresTransaction(
                    connection, self._watchdog, self.target.begin_sql()
                )
                yield transaction
                transaction.commit()
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._give_back(connection, failure)
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from exc
        self._down = False

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """See `Database.query`: one round trip, with the statement's time limit (the
        parameters are bound by psycopg on this side, so BEGIN, the limit, the query and
        COMMIT go as one message)."""
        limit = self.target.session["statement_timeout"]
        statement = f"BEGIN READ ONLY; SET LOCAL statement_timeout = '{limit}'; {_sql(sql)}; COMMIT"
        try:
            rows = self._read(statement, tuple(params))
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from exc
        self._down = False
        return rows

    def _read(self, statement: str, params: tuple[Any, ...]) -> list[Row]:
        for attempt in range(self._max_size + 1):
            connection = self._pool.getconn(timeout=self._wait_seconds())
            failure: BaseException | None = None
            try:
                with self._watchdog.watch(connection.fileno()):
                    cursor = psycopg.ClientCursor(connection)
                    cursor.execute(statement, params)
                    rows: list[Row] = []
                    while True:  # the results of BEGIN, SET, the query, COMMIT
                        if cursor.description is not None:
                            rows = cursor.fetchall()
                        if not cursor.nextset():
                            return rows
            except _DISCARD as exc:
                failure = exc
                if attempt == self._max_size or not connection.broken:
                    raise
                self._down = True  # the others may be stale too: do not wait long for one
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._give_back(connection, failure)
        raise AssertionError("unreachable")  # pragma: no cover

    def migrate(self) -> int:
        """Apply missing migrations in one transaction holding a transaction-level advisory
        lock (two nodes starting together wait for each other, up to
        `MIGRATION_LOCK_TIMEOUT`; nothing outlives the transaction, so it works through a
        transaction pooler); returns how many this call applied."""
        try:
            with psycopg.connect(self.url, **self._connect_args) as connection:
                return self._migrate(connection)
        except errors.LockNotAvailable as exc:
            raise JournalUnavailable(
                f"the journal database {redact_url(self.url)} is being migrated by another"
                f" node for over {MIGRATION_LOCK_TIMEOUT}"
            ) from exc
        except psycopg.Error as exc:
            raise JournalUnavailable(
                f"cannot reach the journal database {redact_url(self.url)} ({type(exc).__name__})"
            ) from exc

    @staticmethod
    def _migrate(connection: psycopg.Connection[Row]) -> int:
        applied = 0
        with connection.transaction():
            connection.execute(
                f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}';"
                f" SET LOCAL statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'"
            )
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
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
                connection.execute(migration.sql.encode())
                connection.execute(
                    f"INSERT INTO {VERSION_TABLE} VALUES (%s, %s, %s)",  # noqa: S608
                    (migration.version, migration.name, time.time()),
                )
                applied += 1
        return applied

    def close(self) -> None:
        self._pool.close()
        self._watchdog.close()


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
        database = PostgresDatabase(url, password=password)
        self.url = database.url
        database.migrate()
        database.open()
        super().__init__(
            database,
            TableBlobs(database),
            node=node,
            shared=True,
            where=database.target.redacted,
            processed_folder=processed_folder,
            failed_folder=failed_folder,
        )

"""The embedded journal: SQLite (WAL) rows plus fsynced files in ROUTER_STATE_DIR.

A message is stored (file fsynced, row committed) before any inbox acknowledges it. Every
later step reads its state from here and writes its result back in one transaction, so a
crash at any point resumes where it stopped. One process owns it (see `owner`).
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from router.journal.database import MESSAGE, Transaction
from router.journal.files import (
    FILE_MODE,
    ensure_dir,
    fsync_dir,
    write_all_durably,
    write_durably,
)
from router.journal.migrations import VERSION_TABLE, migrations
from router.journal.records import Row
from router.journal.sql import SqlJournal

JOURNAL_FILE = "journal.sqlite3"
# /healthz's probe writes nothing when the journal made a file and a commit durable this
# recently: that proves as much, without queueing behind a busy disk.
PROBE_FRESH_SECONDS = 1.0


class _SqliteTransaction:
    """See `Transaction`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [dict(row) for row in self._connection.execute(sql, params)]

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._connection.execute(sql, params).rowcount

    def rows_of_last(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Row]:
        rows: list[Row] = []
        for sql, params in statements:
            rows = self.rows(sql, params)
        return rows


class SqliteDatabase:
    """One SQLite connection behind a lock (thread-safe). See `Database`."""

    skip_locked = ""
    for_update = ""
    clock = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        # Create the file private before SQLite opens it (its -wal and -shm files copy the
        # database file's mode); chmod fixes a file made by an older version.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        path.chmod(FILE_MODE)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._synchronous = "FULL"
        # Commits per synchronous mode, so tests (and a curious operator) see which is which.
        self.commits = {"FULL": 0, "NORMAL": 0}
        # time.monotonic() of the last FULL commit; never yet. Not 0.0: the monotonic clock
        # starts at boot, so on a machine up for less than the probe's window, 0.0 is "recent".
        self.last_durable = -math.inf
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")  # a lock held longer is an error

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Transaction]:
        """See `Database.transaction`. In WAL mode `synchronous=NORMAL` skips the fsync of
        the WAL at commit: the commit is in the OS's page cache (a killed process loses
        nothing) and reaches the disk with the next FULL commit or checkpoint."""
        mode = "FULL" if durable else "NORMAL"
        with self._lock:
            if mode != self._synchronous:  # per connection, and not inside a transaction
                self._db.execute(f"PRAGMA synchronous={mode}")
                self._synchronous = mode
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self._db)
                self._db.execute("COMMIT")
                self.commits[mode] += 1
                if durable:
                    self.last_durable = time.monotonic()
            except BaseException:
                # A COMMIT that failed (a full disk) may leave the transaction open or not:
                # roll back only what is still open, so the next BEGIN works.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, params)]

    def migrate(self) -> int:
        """Apply the migrations this file lacks, each in one transaction; returns how many.

        `BEGIN IMMEDIATE` takes SQLite's write lock, so two processes opening one journal
        together apply each migration once.
        """
        applied = 0
        with self._lock:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            for migration in migrations("sqlite"):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    done = self._db.execute(
                        f"SELECT 1 FROM {VERSION_TABLE} WHERE version = ?",  # noqa: S608
                        (migration.version,),
                    ).fetchone()
                    if done is None:
                        _run_script(self._db, migration.sql)
                        self._db.execute(
                            f"INSERT INTO {VERSION_TABLE} VALUES (?, ?, ?)",  # noqa: S608
                            (migration.version, migration.name, time.time()),
                        )
                        applied += 1
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        return applied

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run each statement of a migration inside the open transaction (executescript would
    commit it first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


class FileBlobs:
    """Messages and spooled mail as fsynced files in the state directory. See `Blobs`."""

    def __init__(self, messages_dir: Path, spool_dir: Path, tmp_dir: Path) -> None:
        self.dirs = {MESSAGE: messages_dir, "spool": spool_dir}
        self.tmp_dir = tmp_dir
        self.last_durable = -math.inf  # time.monotonic() when a file was last made durable

    def path(self, kind: str, key: str) -> Path:
        return self.dirs[kind] / f"{key}.eml"

    def stage(self, kind: str, key: str, data: bytes) -> None:
        write_durably(self.path(kind, key), data, tmp_dir=self.tmp_dir)
        self.last_durable = time.monotonic()

    def stage_many(self, kind: str, items: Sequence[tuple[str, bytes]]) -> None:
        files = [(self.path(kind, key), data) for key, data in items]
        write_all_durably(files, tmp_dir=self.tmp_dir)
        self.last_durable = time.monotonic()

    def stage_unnamed(self, kind: str, key: str, data: bytes) -> None:
        files = [(self.path(kind, key), data)]
        write_all_durably(files, tmp_dir=self.tmp_dir, sync_folders=False)

    def sync_names(self, kind: str) -> None:
        """One fsync of the folder makes every rename into it so far durable."""
        fsync_dir(self.dirs[kind])
        self.last_durable = time.monotonic()

    def attach(self, tx: Transaction, kind: str, key: str, data: bytes) -> None:
        """The file was written and fsynced by `stage`."""

    def attach_many(self, tx: Transaction, kind: str, items: Sequence[tuple[str, bytes]]) -> None:
        """The files were written and fsynced by `stage_many`."""

    def load(self, kind: str, key: str) -> bytes | None:
        try:
            return self.path(kind, key).read_bytes()
        except FileNotFoundError:
            return None

    def unstage(self, kind: str, key: str) -> None:
        """See `Blobs.unstage`: the file written for a row that was never committed."""
        self.path(kind, key).unlink(missing_ok=True)

    def discard(self, tx: Transaction, kind: str, key: str) -> None:
        self.path(kind, key).unlink(missing_ok=True)

    def claiming_with_bytes(self, kind: str, statement: str) -> str:
        """See `Blobs.claiming_with_bytes`: the bytes are files, read when loaded."""
        return statement

    def read_ahead(self, kind: str, rows: Sequence[Row]) -> None:
        """See `Blobs.read_ahead`: nothing was read ahead."""


class SqliteJournal(SqlJournal):
    """The journal in one state directory. See `Journal`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        node: str = "local",
        processed_folder: str = "Processed",
        failed_folder: str = "Failed",
    ) -> None:
        self.state_dir = ensure_dir(state_dir)
        self.messages_dir = ensure_dir(state_dir / "messages")
        self.spool_dir = ensure_dir(state_dir / "spool")
        self.tmp_dir = ensure_dir(state_dir / "tmp")
        self.path = state_dir / JOURNAL_FILE
        database = SqliteDatabase(self.path)
        database.migrate()
        self.database = database
        self.files = FileBlobs(self.messages_dir, self.spool_dir, self.tmp_dir)
        self.probe_fresh_seconds = PROBE_FRESH_SECONDS
        super().__init__(
            database,
            self.files,
            node=node,
            shared=False,
            where=str(self.path),
            processed_folder=processed_folder,
            failed_folder=failed_folder,
        )

    def raw_path(self, message_id: str) -> Path:
        """Where a stored message's file is (SQLite only; tests and tools look at files)."""
        return self.files.path(MESSAGE, message_id)

    def spool_path(self, mail_id: str) -> Path:
        """Where a spooled mail's file is (SQLite only)."""
        return self.files.path("spool", mail_id)

    def probe(self) -> None:
        """See `Journal.probe`: a file in the state directory and a row, both durable; or
        nothing, when the journal itself made a file and a commit durable within the last
        `probe_fresh_seconds` (a busy journal shows it takes writes, and /healthz does not
        wait behind the disk it asks about)."""
        now = time.monotonic()
        fresh = now - self.probe_fresh_seconds
        if self.files.last_durable > fresh and self.database.last_durable > fresh:
            return
        probe = self.tmp_dir / f".health-{os.getpid()}"
        write_durably(probe, b"ok", tmp_dir=self.tmp_dir)
        probe.unlink(missing_ok=True)
        super().probe()

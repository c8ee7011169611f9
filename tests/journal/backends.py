"""What a test needs to poke at either journal backend directly (break it, count its bytes)."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from router.journal.protocol import Journal
from router.journal.sqlite import SqliteJournal


def break_message_storage(journal: Journal) -> None:
    """Make the next stored message fail: SQLite's messages folder becomes a file; the
    PostgreSQL journal gets a constraint that refuses every new stored message."""
    if isinstance(journal, SqliteJournal):
        folder: Path = journal.messages_dir
        folder.rename(folder.with_name("moved"))
        folder.write_text("not a directory")
        return
    with psycopg.connect(journal.url, autocommit=True) as connection:
        connection.execute("ALTER TABLE blobs ADD CONSTRAINT refuse CHECK (false) NOT VALID")


def stored_bytes(journal: Journal) -> int:
    """How many stored messages and spooled mails the journal still keeps the bytes of."""
    if isinstance(journal, SqliteJournal):
        return len([*journal.messages_dir.glob("*.eml"), *journal.spool_dir.glob("*.eml")])
    [row] = journal.query("SELECT COUNT(*) AS n FROM blobs")
    return int(row["n"])


def break_health_probe(journal: Journal) -> str:
    """Make the journal's health probe fail; returns the error name /healthz then reports.
    SQLite: its temporary folder becomes a file; PostgreSQL: the probe's row is refused."""
    if isinstance(journal, SqliteJournal):
        folder = journal.tmp_dir
        folder.rename(folder.with_name("moved"))
        folder.write_text("not a directory")
        return "NotADirectoryError"
    with psycopg.connect(journal.url, autocommit=True) as connection:
        connection.execute("ALTER TABLE meta ADD CONSTRAINT refuse CHECK (false) NOT VALID")
    return "JournalUnavailable"


@contextmanager
def journal_locked(journal: Journal) -> Iterator[None]:
    """Hold the journal's write lock from another connection while the block runs (reads go
    on): SQLite `BEGIN IMMEDIATE`; PostgreSQL a lock on the messages table that INSERT waits
    for."""
    if isinstance(journal, SqliteJournal):
        holder = sqlite3.connect(journal.path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        return
    with psycopg.connect(journal.url) as connection:
        connection.execute("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
        yield
        connection.rollback()


def count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every fsync and fdatasync the router's Python code makes from now on, as "dir"
    or "file", in the list returned (SQLite's own syncs of its files are not seen)."""
    synced: list[str] = []
    lock = threading.Lock()
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def fsync(fd: int) -> None:
        with lock:
            synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        with lock:
            synced.append("file")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return synced

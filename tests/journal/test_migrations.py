"""Versioned migrations: a journal made before them is brought up to date, rows kept."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

from router.journal.migrations import migrations
from router.journal.sqlite import JOURNAL_FILE, SqliteJournal


def test_a_journal_from_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    """An SQLite journal made by the previous release (its schema, no version table) opens
    with every migration applied once, and the message waiting in it is still queued."""
    old_schema = (
        resources.files("router.journal.migrations").joinpath("sqlite/0001_initial.sql").read_text()
    )
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / JOURNAL_FILE) as db:
        db.executescript(old_schema)
        db.execute(
            "INSERT INTO messages (id, received_at, size, state) VALUES"
            " ('20261121-9F2C3A1B', 1.0, 10, 'received')"
        )
    journal = SqliteJournal(state)
    try:
        versions = [
            row["version"] for row in journal.query("SELECT version FROM schema_migrations")
        ]
        # Numbers are allotted in blocks per change, so there are gaps: every file, once.
        assert versions == [migration.version for migration in migrations("sqlite")]
        assert [stored.id for stored in journal.received()] == ["20261121-9F2C3A1B"]
    finally:
        journal.close()
    reopened = SqliteJournal(state)  # nothing left to apply, nothing applied twice
    try:
        assert len(reopened.query("SELECT version FROM schema_migrations")) == len(versions)
    finally:
        reopened.close()


def test_imap_keys_from_before_name_their_mailbox(tmp_path: Path) -> None:
    """Keys `imap:<uidvalidity>:<uid>` stored before IMAP keys named their mailbox are given
    the one mailbox whose first-connection record has that UIDVALIDITY; a key whose
    UIDVALIDITY no record has, or two have, is left for the watched mailbox to adopt."""
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / JOURNAL_FILE) as db:
        db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at REAL NOT NULL)"
        )
        for migration in migrations("sqlite"):
            if migration.version < 10:
                db.executescript(migration.sql)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, 1.0)",
                    (migration.version, migration.name),
                )
        untouched = [("a@h/INBOX", 7), ("b@h/INBOX", 8), ("c@h/INBOX", 8)]
        db.executemany(
            "INSERT INTO mailbox_untouched (mailbox, uidvalidity, uids) VALUES (?, ?, '')",
            untouched,
        )
        for number, key in enumerate(["imap:7:41", "imap:8:5", "imap:9:1", "imap:77:2"]):
            db.execute(
                "INSERT INTO messages (id, received_at, size, state, source_key)"
                " VALUES (?, 1.0, 10, 'done', ?)",
                (f"m{number}", key),
            )
    journal = SqliteJournal(state)
    try:
        keys = [row["source_key"] for row in journal.query("SELECT source_key FROM messages")]
    finally:
        journal.close()
    assert sorted(keys) == sorted(
        ["imap://a@h/INBOX;UIDVALIDITY=7/;UID=41", "imap:8:5", "imap:9:1", "imap:77:2"]
    )

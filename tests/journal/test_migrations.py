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
        assert versions == [migration.version for migration in migrations("sqlite")]
        assert [stored.id for stored in journal.received()] == ["20261121-9F2C3A1B"]
    finally:
        journal.close()
    reopened = SqliteJournal(state)  # nothing left to apply, nothing applied twice
    try:
        assert len(reopened.query("SELECT version FROM schema_migrations")) == len(versions)
    finally:
        reopened.close()

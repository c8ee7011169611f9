"""Versioned schema migrations: plain SQL files `NNNN_name.sql`, one folder per backend."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

# Where each journal records which migrations it has: version, name, when applied.
VERSION_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version number (from the file name), name and statements."""

    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """Every migration for `dialect` ("sqlite" or "postgresql"), in version order."""
    folder = resources.files("router.journal.migrations").joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(number), name, entry.read_text("utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def latest_version(dialect: str) -> int:
    """The version a journal of this backend has once migrated."""
    return max(migration.version for migration in migrations(dialect))

"""Retention in the running daemon: the journal's purge once an hour, and stored files that
no journal row names (left by a crash or a failed store) removed."""

from __future__ import annotations

import sqlite3
import time

import structlog

from router.journal.orphans import ORPHAN_GRACE_SECONDS, remove_orphans
from router.journal.protocol import Journal
from router.journal.sqlite import SqliteJournal

log = structlog.get_logger(__name__)

PURGE_EVERY_SECONDS = 3600.0


class RetentionKeeper:
    """Purges what `retention_days` allows, at most every `PURGE_EVERY_SECONDS`."""

    def __init__(self, journal: Journal, retention_days: int) -> None:
        self.journal = journal
        self.retention_days = retention_days
        self._last_purge = 0.0

    def maybe_purge(self) -> None:
        """Purge messages done before the retention window, then orphans (once an hour)."""
        now = time.time()
        if now - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        purged = self.journal.purge(now - self.retention_days * 86400)
        if purged:
            log.info("purged", messages=purged, retention_days=self.retention_days)
        self.remove_orphans(now - ORPHAN_GRACE_SECONDS)

    def remove_orphans(self, older_than: float) -> None:
        """Delete stored files that no journal row names, older than `older_than`."""
        if not isinstance(self.journal, SqliteJournal):
            return  # PostgreSQL keeps the bytes in the row's transaction: no orphans
        try:
            removed = remove_orphans(self.journal, older_than=older_than)
        except (OSError, sqlite3.Error) as exc:  # housekeeping: try again at the next purge
            log.warning("orphans_not_removed", error=type(exc).__name__)
            return
        if removed:
            log.info("orphans_removed", files=removed)

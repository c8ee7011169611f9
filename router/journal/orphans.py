"""Orphans: stored files that no journal row names, left by a crash or a failed store, removed.

A message file is written (fsynced) before its row is committed, so a crash between the two,
or a journal that refused the row, leaves a copy of a referral that nothing points at and
retention would never delete. The same holds for spool files of a decision that was never
committed, and for temporary files of an interrupted write. (A PostgreSQL journal keeps the
bytes in the row's own transaction: it has no orphans.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.journal.sqlite import SqliteJournal

# While the daemon runs, a file younger than this may belong to a store in progress.
ORPHAN_GRACE_SECONDS = 3600.0
_BATCH = 500


def remove_orphans(journal: SqliteJournal, *, older_than: float) -> int:
    """Delete message, spool and temporary files last changed before `older_than` (a Unix
    time) that no journal row names.

    Returns:
        How many files were deleted.

    Raises:
        OSError, sqlite3.Error: the state directory or the journal cannot be read.
    """
    removed = _remove_unnamed(journal, journal.messages_dir, "messages", older_than)
    removed += _remove_unnamed(journal, journal.spool_dir, "outbox", older_than)
    for path in journal.tmp_dir.iterdir():
        if path.is_file() and _older(path, older_than):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _remove_unnamed(journal: SqliteJournal, folder: Path, table: str, older_than: float) -> int:
    candidates = {
        path.stem: path
        for path in folder.glob("*.eml")
        if not path.name.startswith(".") and _older(path, older_than)
    }
    removed = 0
    for batch in _batches(sorted(candidates), _BATCH):
        marks = ", ".join("?" * len(batch))
        rows = journal.query(f"SELECT id FROM {table} WHERE id IN ({marks})", batch)  # noqa: S608
        named = {row["id"] for row in rows}
        for file_id in batch:
            if file_id not in named:
                candidates[file_id].unlink(missing_ok=True)
                removed += 1
    return removed


def _older(path: Path, moment: float) -> bool:
    with contextlib.suppress(FileNotFoundError):
        return path.stat().st_mtime < moment
    return False


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

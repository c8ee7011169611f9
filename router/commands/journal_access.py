"""Opening the journal for a command, and finding a message by its id or reference.

Commands open the journal the settings name with their own connection, safe beside a running
daemon (SQLite's WAL lets a reader and a writer work side by side; PostgreSQL is shared).
"""

from __future__ import annotations

import re

from router.errors import EXIT_FAILED, CommandError
from router.journal.opener import open_journal as open_configured_journal
from router.journal.protocol import Journal
from router.journal.records import JournalUnavailable
from router.journal.sqlite import JOURNAL_FILE, SqliteJournal
from router.settings import Settings

_MESSAGE_ID = re.compile(r"^(\d{8}-[0-9A-F]{8})$", re.IGNORECASE)
_REFERENCE = re.compile(r"^PR-(\d{8}-[0-9A-F]{8})-\d+$", re.IGNORECASE)


def local_journal(settings: Settings) -> SqliteJournal:
    """The existing SQLite journal in `settings.state_dir`.

    Raises:
        CommandError: there is none (a wrong ROUTER_STATE_DIR, most likely).
    """
    path = settings.state_dir / JOURNAL_FILE
    if not path.is_file():
        raise CommandError(
            f"no journal at {path} (is ROUTER_STATE_DIR the daemon's state directory?)",
            EXIT_FAILED,
        )
    return SqliteJournal(
        settings.state_dir,
        processed_folder=settings.processed_folder,
        failed_folder=settings.failed_folder,
    )


def open_journal(settings: Settings) -> Journal:
    """Open the existing journal the settings name (SQLite in `settings.state_dir`, or the
    PostgreSQL database of ROUTER_JOURNAL).

    Raises:
        CommandError: there is no journal there (a wrong ROUTER_STATE_DIR, most likely), or
            PostgreSQL cannot be reached.
    """
    if not settings.journal:
        return local_journal(settings)
    try:
        return open_configured_journal(settings)
    except JournalUnavailable as exc:
        raise CommandError(f"cannot reach the journal database ({exc})", EXIT_FAILED) from None


def message_id_for(journal: Journal, wanted: str) -> str:
    match = _MESSAGE_ID.match(wanted)
    if match:
        return match.group(1).upper()
    match = _REFERENCE.match(wanted)
    if not match:
        raise CommandError(
            f"{wanted!r} is neither a message id (20261121-9F2C3A1B) nor a reference"
            " (PR-20261121-9F2C3A1B-1)"
        )
    message_id = journal.message_for_reference(wanted)
    if message_id is None:
        raise CommandError(f"no referral {wanted} in the journal", EXIT_FAILED)
    return message_id

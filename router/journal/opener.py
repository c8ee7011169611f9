"""Opening the journal the settings ask for: SQLite in ROUTER_STATE_DIR, or PostgreSQL."""

from __future__ import annotations

import os
import socket

from router.journal.conninfo import parse_journal_url
from router.journal.files import ensure_dir
from router.journal.protocol import Journal
from router.journal.records import message_id_header
from router.settings import Settings

__all__ = ["Journal", "message_id_header", "node_name", "open_journal"]


def node_name(settings: Settings) -> str:
    """This router's name among those sharing a journal (ROUTER_NODE_NAME, else host-PID)."""
    return settings.node_name or f"{socket.gethostname()}-{os.getpid()}"


def journal_password(settings: Settings) -> str | None:
    """ROUTER_JOURNAL_PASSWORD, or the first line of ROUTER_JOURNAL_PASSWORD_FILE."""
    if settings.journal_password is not None:
        return settings.journal_password.get_secret_value()
    if settings.journal_password_file is not None:
        return settings.journal_password_file.read_text("utf-8").strip()
    return None


def check_journal_url(url: str) -> None:
    """Refuse a ROUTER_JOURNAL that is not a libpq URL, or that carries a password (in the
    user part or as `password=`/`sslpassword=` in the query).

    Raises:
        ValueError: saying what is wrong, without echoing the value.
    """
    try:
        parse_journal_url(url)
    except ValueError as exc:
        raise ValueError(f"ROUTER_JOURNAL {exc}") from None


def open_journal(settings: Settings) -> Journal:
    """The journal of these settings, migrated to the current schema.

    Raises:
        JournalUnavailable: PostgreSQL cannot be reached.
        OSError: the state directory cannot be written.
        ValueError: ROUTER_JOURNAL is not a PostgreSQL URL (see `check_journal_url`).
    """
    if settings.journal:
        from router.journal.postgres import PostgresJournal

        check_journal_url(settings.journal)
        ensure_dir(settings.state_dir)  # local files (a Maildir relay, locks) stay private
        return PostgresJournal(
            settings.journal,
            node=node_name(settings),
            password=journal_password(settings),
            processed_folder=settings.processed_folder,
            failed_folder=settings.failed_folder,
        )
    from router.journal.sqlite import SqliteJournal

    return SqliteJournal(
        settings.state_dir,
        node=node_name(settings),
        processed_folder=settings.processed_folder,
        failed_folder=settings.failed_folder,
    )

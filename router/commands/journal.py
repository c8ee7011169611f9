"""`referral-router journal migrate` and `journal copy`: the journal's schema and its move
from SQLite to PostgreSQL."""

from __future__ import annotations

from typing import TextIO

from router.commands.journal_access import local_journal
from router.errors import EXIT_FAILED, EXIT_OK, CommandError
from router.journal.opener import open_journal as open_configured_journal
from router.journal.records import JournalUnavailable
from router.settings import Settings


def migrate(settings: Settings, out: TextIO) -> int:
    """`referral-router journal migrate`: bring the journal's schema up to date (the daemon
    also does it at start; two nodes migrating at once wait for each other)."""
    try:
        journal = open_configured_journal(settings)
    except JournalUnavailable as exc:
        raise CommandError(f"cannot reach the journal database ({exc})", EXIT_FAILED) from None
    try:
        version = journal.schema_version()
    finally:
        journal.close()
    out.write(f"journal {journal.where} is at schema version {version}\n")
    return EXIT_OK


def copy(settings: Settings, target_url: str, out: TextIO) -> int:
    """`referral-router journal copy --to postgresql://...`: copy the SQLite journal of
    ROUTER_STATE_DIR (its router stopped) into a new PostgreSQL journal, checked by counts.

    Raises:
        CommandError: no SQLite journal, its router still running, a target that is not a
            new PostgreSQL journal, or counts that differ.
    """
    from router.journal.copy import CopyRefused, copy_journal
    from router.journal.opener import journal_password
    from router.journal.owner import OwnerLock, StateDirInUse
    from router.journal.postgres import PostgresDatabase

    if not target_url.startswith(("postgresql://", "postgres://")):
        raise CommandError("--to must be a postgresql:// URL")
    owner = OwnerLock(settings.state_dir)
    try:
        owner.acquire()  # the router must be stopped: a copy of a moving journal is wrong
    except StateDirInUse as exc:
        raise CommandError(f"{exc}", EXIT_FAILED) from None
    try:
        source = local_journal(settings)
        try:
            target = PostgresDatabase(target_url, password=journal_password(settings))
            try:
                report = copy_journal(source, target)
            finally:
                target.close()
        finally:
            source.close()
    except (CopyRefused, JournalUnavailable) as exc:
        raise CommandError(f"journal not copied: {exc}", EXIT_FAILED) from None
    finally:
        owner.release()
    counts = ", ".join(f"{table} {count}" for table, count in report.rows.items())
    out.write(
        f"copied {counts}; stored messages {report.messages_with_bytes}, spooled mail"
        f" {report.mails_with_bytes} (counts checked)\n"
        "now set ROUTER_JOURNAL to the new database and start the routers\n"
    )
    return EXIT_OK

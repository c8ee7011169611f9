"""Admin commands on the journal (`status`, `reprocess`), safe to run beside the daemon.

They open the journal the settings name with their own connection (SQLite's WAL lets a
reader and a writer work side by side; PostgreSQL is shared anyway). What they print
carries no personal data: no subjects, no form values, no sender addresses; addresses in
error texts lose their local part.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from router.core.kinds import ALERT, MAIL_KINDS
from router.core.redaction import redact
from router.errors import EXIT_FAILED, EXIT_OK, CommandError
from router.journal.opener import open_journal as open_configured_journal
from router.journal.protocol import Journal
from router.journal.records import JournalUnavailable, NodeSeen
from router.journal.sqlite import JOURNAL_FILE, SqliteJournal
from router.oauth.sources import format_health, recorded_health
from router.send.health import age
from router.settings import Settings

MESSAGE_STATES = ("received", "decided", "done", "quarantined")
OUTCOMES = ("forward", "incomplete", "needs_review", "ignored")
_MESSAGE_ID = re.compile(r"^(\d{8}-[0-9A-F]{8})$", re.IGNORECASE)
_REFERENCE = re.compile(r"^PR-(\d{8}-[0-9A-F]{8})-\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class Quarantined:
    """One message set aside: its id, when it came, its references and why."""

    id: str
    received_at: str
    references: list[str]
    reason: str


@dataclass(frozen=True)
class Status:
    """Counts from the journal, nothing personal."""

    journal: str
    messages: dict[str, int]
    outcomes: dict[str, int]
    # Mail the relay accepted, by kind, and referrals with one kind of mail sent more than
    # once (a duplicate send shows here).
    sent: dict[str, int]
    sent_more_than_once: int
    outbox_pending: int
    outbox_retrying: int
    outbox_failed: int
    oldest_undecided_seconds: float | None
    oldest_unsent_seconds: float | None
    last_rules_version: str | None
    quarantine: list[Quarantined]
    nodes: list[NodeSeen]
    oauth: dict[str, Any] | None = None  # the daemon's last OAuth 2.0 health (router/oauth)


def _local_journal(settings: Settings) -> SqliteJournal:
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
        return _local_journal(settings)
    try:
        return open_configured_journal(settings)
    except JournalUnavailable as exc:
        raise CommandError(f"cannot reach the journal database ({exc})", EXIT_FAILED) from None


def read_status(journal: Journal, now: float | None = None) -> Status:
    """Gather the counts `status` prints."""
    now = time.time() if now is None else now
    messages = dict.fromkeys(MESSAGE_STATES, 0)
    for row in journal.query("SELECT state, COUNT(*) AS n FROM messages GROUP BY state"):
        messages[row["state"]] = row["n"]
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for row in journal.query("SELECT outcome, COUNT(*) AS n FROM decisions GROUP BY outcome"):
        outcomes[row["outcome"]] = row["n"]
    sent, sent_more_than_once = _sent(journal)
    [outbox] = journal.query(
        "SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS pending,"
        " COALESCE(SUM(CASE WHEN state = 'pending' AND attempts > 0 THEN 1 ELSE 0 END), 0)"
        " AS retrying,"
        " COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS failed,"
        " MIN(CASE WHEN state = 'pending' THEN created_at END) AS oldest FROM outbox"
    )
    [undecided] = journal.query(
        "SELECT MIN(received_at) AS oldest FROM messages WHERE state = 'received'"
    )
    rules = journal.query(
        "SELECT rules_version FROM messages WHERE rules_version IS NOT NULL"
        " ORDER BY decided_at DESC LIMIT 1"
    )
    return Status(
        journal=journal.where,
        messages=messages,
        outcomes=outcomes,
        sent=sent,
        sent_more_than_once=sent_more_than_once,
        outbox_pending=int(outbox["pending"]),
        outbox_retrying=int(outbox["retrying"]),
        outbox_failed=int(outbox["failed"]),
        oldest_undecided_seconds=age(undecided["oldest"], now),
        oldest_unsent_seconds=age(outbox["oldest"], now),
        last_rules_version=rules[0]["rules_version"] if rules else None,
        quarantine=_quarantine(journal),
        nodes=journal.nodes_seen(),
        oauth=recorded_health(journal),
    )


def _sent(journal: Journal) -> tuple[dict[str, int], int]:
    """Mail sent by kind, and how many (referral, kind) pairs were sent more than once."""
    sent = dict.fromkeys(MAIL_KINDS, 0)
    for row in journal.query(
        "SELECT kind, COUNT(*) AS n FROM outbox WHERE state = 'sent' GROUP BY kind"
    ):
        sent[row["kind"]] = row["n"]
    [twice] = journal.query(
        "SELECT COUNT(*) AS n FROM (SELECT reference FROM outbox WHERE state = 'sent'"
        " AND reference IS NOT NULL AND kind != ? GROUP BY reference, kind"
        " HAVING COUNT(*) > 1) AS repeated",
        (ALERT,),
    )
    return sent, int(twice["n"])


def _quarantine(journal: Journal) -> list[Quarantined]:
    rows = journal.query(
        "SELECT id, received_at, last_error FROM messages WHERE state = 'quarantined'"
        " ORDER BY received_at"
    )
    references: dict[str, list[str]] = {}
    for decision in journal.query(
        "SELECT d.message_id, d.reference FROM decisions d JOIN messages m"
        " ON d.message_id = m.id WHERE m.state = 'quarantined'"
    ):
        references.setdefault(decision["message_id"], []).append(decision["reference"])
    return [
        Quarantined(
            id=row["id"],
            received_at=f"{datetime.fromtimestamp(row['received_at'], UTC):%Y-%m-%d %H:%M:%S}Z",
            references=sorted(references.get(row["id"], [])),
            reason=redact(row["last_error"] or "(no reason recorded)"),
        )
        for row in rows
    ]


def status(settings: Settings, out: TextIO, *, as_json: bool = False) -> int:
    """`referral-router status [--json]`: counts by state and outcome, outbox, quarantine.

    Raises:
        CommandError: no journal in the state directory.
    """
    journal = open_journal(settings)
    try:
        report = read_status(journal)
    finally:
        journal.close()
    if as_json:
        out.write(json.dumps(asdict(report), indent=2) + "\n")
    else:
        out.write(format_status(report))
    return EXIT_OK


def format_status(report: Status) -> str:
    """The readable form of `status`."""
    lines = [
        f"journal     {report.journal}",
        "messages    " + _counts(report.messages),
        "decisions   " + _counts(report.outcomes),
        "sent        "
        + _counts(report.sent)
        + (
            f" ({report.sent_more_than_once} referral(s) with one kind sent more than once)"
            if report.sent_more_than_once
            else ""
        ),
        f"outbox      pending {report.outbox_pending} ({report.outbox_retrying} retrying),"
        f" failed {report.outbox_failed}",
        f"oldest      undecided message {_duration(report.oldest_undecided_seconds)},"
        f" unsent mail {_duration(report.oldest_unsent_seconds)}",
        f"rules       {(report.last_rules_version or 'none yet')[:12]} (last decision)",
        f"quarantine  {len(report.quarantine)}",
    ]
    for item in report.quarantine:
        references = ", ".join(item.references) or "no decision"
        lines.append(f"  {item.id}  received {item.received_at}  {references}")
        lines.append(f"    {item.reason}")
    if report.quarantine:
        lines.append("  (fix the cause, then: referral-router reprocess ID)")
    lines.append(f"nodes       {len(report.nodes)} seen in the last 10 minutes")
    now = time.time()
    for node in report.nodes:
        watching = ", ".join(node.watching) or "no mailbox"
        lines.append(
            f"  {node.name}  heartbeat {_duration(age(node.last_heartbeat, now))}"
            f"  holds {node.claimed_messages} message(s), {node.claimed_mail} mail(s),"
            f" watches {watching}"
        )
    if report.oauth is not None:
        lines.extend(format_health(report.oauth))
    return "\n".join(lines) + "\n"


def reprocess(settings: Settings, reference: str, out: TextIO) -> int:
    """`referral-router reprocess REF`: put a quarantined message back in the queue.

    Args:
        settings: where the journal is.
        reference: a journal message id (`20261121-9F2C3A1B`) or a decision reference
            (`PR-20261121-9F2C3A1B-1`).
        out: where the confirmation goes.

    Returns:
        0 when the message was queued again.

    Raises:
        CommandError: not an id or reference (status 2); unknown, or not quarantined (1).
    """
    wanted = reference.strip()
    journal = open_journal(settings)
    try:
        message_id = _message_id(journal, wanted)
        rows = journal.query("SELECT state FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise CommandError(f"no message {message_id} in the journal", EXIT_FAILED)
        state = rows[0]["state"]
        if state != "quarantined":
            raise CommandError(
                f"message {message_id} is {state}, not quarantined: nothing to reprocess",
                EXIT_FAILED,
            )
        if not journal.reprocess(message_id):
            raise CommandError(
                f"message {message_id} is quarantined after its decision and has no failed mail"
                " to send again; handle it by hand",
                EXIT_FAILED,
            )
    finally:
        journal.close()
    out.write(f"{message_id} is queued again; the running daemon takes it up within 30 seconds\n")
    return EXIT_OK


def _message_id(journal: Journal, wanted: str) -> str:
    match = _MESSAGE_ID.match(wanted)
    if match:
        return match.group(1).upper()
    match = _REFERENCE.match(wanted)
    if not match:
        raise CommandError(
            f"{wanted!r} is neither a message id (20261121-9F2C3A1B) nor a reference"
            " (PR-20261121-9F2C3A1B-1)"
        )
    rows = journal.query(
        "SELECT message_id FROM decisions WHERE UPPER(reference) = UPPER(?)", (wanted,)
    )
    if not rows:
        raise CommandError(f"no referral {wanted} in the journal", EXIT_FAILED)
    return str(rows[0]["message_id"])


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h ago"
    if hours:
        return f"{hours}h {minutes}m ago"
    return f"{minutes}m {secs}s ago" if minutes else f"{secs}s ago"


def migrate(settings: Settings, out: TextIO) -> int:
    """`referral-router journal migrate`: bring the journal's schema up to date (the daemon
    also does it at start; two nodes migrating at once wait for each other)."""
    try:
        journal = open_configured_journal(settings)
    except JournalUnavailable as exc:
        raise CommandError(f"cannot reach the journal database ({exc})", EXIT_FAILED) from None
    try:
        [row] = journal.query("SELECT MAX(version) AS version FROM schema_migrations")
    finally:
        journal.close()
    out.write(f"journal {journal.where} is at schema version {row['version']}\n")
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
        source = _local_journal(settings)
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

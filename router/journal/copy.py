"""Moving an SQLite journal into PostgreSQL (`referral-router journal copy --to URL`), checked
by counts."""

from __future__ import annotations

from dataclasses import dataclass

from router.journal.database import MESSAGE, SPOOL, Transaction
from router.journal.pg_blobs import TableBlobs
from router.journal.postgres import PostgresDatabase
from router.journal.sqlite import SqliteJournal

# Copied in this order (rows refer to messages). Claims are not copied: nobody holds them.
TABLES = (
    "messages",
    "decisions",
    "outbox",
    "ack_counts",
    "console_actions",
    "events",
    "referral_stats",
    "figures_pending",
    "report_mailings",
)
_NOT_COPIED = {"claimed_by", "lease_until"}
# Per table: columns left for the target to make, and the order rows are copied in. The
# audit trail's sequence is PostgreSQL's own (copied in order, it keeps the order); a
# month's report claim is a record of who sent it, kept whole.
_LEFT_OUT = {"events": {"seq"}, "report_mailings": set()}
_ORDER = {"events": " ORDER BY seq"}


class CopyRefused(Exception):
    """The copy cannot be made (a target that is not empty, counts that differ)."""


@dataclass(frozen=True)
class CopyReport:
    """How many rows of each table and how many stored bytes were copied."""

    rows: dict[str, int]
    messages_with_bytes: int
    mails_with_bytes: int


def copy_journal(source: SqliteJournal, target: PostgresDatabase) -> CopyReport:
    """Copy every row and stored byte of `source` into the (migrated, empty) `target` in one
    transaction, then compare the counts on both sides.

    Raises:
        CopyRefused: the target already holds messages, or a count differs after the copy.
        JournalUnavailable: PostgreSQL cannot be reached (nothing is copied).
    """
    target.migrate()
    target.open()
    if target.query("SELECT 1 FROM messages LIMIT 1"):
        raise CopyRefused("the target journal is not empty; copy only into a new database")
    blobs = TableBlobs(target)
    copied: dict[str, int] = {}
    with target.transaction() as tx:
        for table in TABLES:
            copied[table] = _copy_table(source, tx, table)
        with_bytes = _copy_bytes(source, blobs, tx)
    report = CopyReport(copied, *with_bytes)
    _check_counts(source, target, report)
    return report


def _copy_table(source: SqliteJournal, tx: Transaction, table: str) -> int:
    rows = source.query(f"SELECT * FROM {table}{_ORDER.get(table, '')}")  # noqa: S608 - fixed names
    left_out = _LEFT_OUT.get(table, _NOT_COPIED)
    for row in rows:
        columns = [name for name in row if name not in left_out]
        tx.run(
            f"INSERT INTO {table} ({', '.join(columns)})"  # noqa: S608 - names from the schema
            f" VALUES ({', '.join('?' for _ in columns)})",
            [row[name] for name in columns],
        )
    return len(rows)


def _copy_bytes(source: SqliteJournal, blobs: TableBlobs, tx: Transaction) -> tuple[int, int]:
    """Copy stored messages and spooled mail that still have bytes (purged ones have none)."""
    counts = []
    for kind, table, load in (
        (MESSAGE, "messages", source.raw_message),
        (SPOOL, "outbox", source.outgoing_data),
    ):
        count = 0
        for row in source.query(f"SELECT id FROM {table}"):  # noqa: S608 - fixed table names
            data = load(row["id"])
            if data is not None:
                blobs.attach(tx, kind, row["id"], data)
                count += 1
        counts.append(count)
    return counts[0], counts[1]


def _check_counts(source: SqliteJournal, target: PostgresDatabase, report: CopyReport) -> None:
    for table in TABLES:
        [row] = target.query(f"SELECT COUNT(*) AS n FROM {table}")  # noqa: S608
        if row["n"] != report.rows[table] or report.rows[table] != _count(source, table):
            raise CopyRefused(f"{table}: {report.rows[table]} copied, {row['n']} in the target")
    [stored] = target.query("SELECT COUNT(*) AS n FROM blobs")
    if stored["n"] != report.messages_with_bytes + report.mails_with_bytes:
        raise CopyRefused("the stored messages and spooled mail in the target do not add up")


def _count(source: SqliteJournal, table: str) -> int:
    [row] = source.query(f"SELECT COUNT(*) AS n FROM {table}")  # noqa: S608
    return int(row["n"])

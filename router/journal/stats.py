"""The figures `report` counts: one `referral_stats` row per decision, kept through the purge.

Written in the decision's own transaction (`record_figures`), and given the time its forward
was accepted by the relay in the transaction that marks that mail sent (`record_forwarded`).
Read back by `figures_between` for `router.core.report`. Also the record of the monthly
report mail (`report_mailings`): one node claims a month, sends, and marks it sent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from router.core.report import CountedDecision
from router.journal.database import Transaction

if TYPE_CHECKING:
    from router.journal.core import JournalCore


def record_figures(
    tx: Transaction,
    message_id: str,
    reference: str,
    record: dict[str, object],
    figures: dict[str, str],
    at: float,
) -> None:
    """One decision's row, in the transaction that records the decision."""
    tx.run(
        "INSERT INTO referral_stats (reference, message_id, received_at, decided_at, outcome,"
        " area, age_band, gender, sector)"
        " SELECT ?, ?, received_at, ?, ?, ?, ?, ?, ? FROM messages WHERE id = ?"
        " ON CONFLICT (reference) DO NOTHING",
        (
            reference,
            message_id,
            at,
            record["outcome"],
            record.get("area"),
            figures.get("age_band", "unknown"),
            figures.get("gender", "unknown"),
            figures.get("sector", "unknown"),
            message_id,
        ),
    )


def record_forwarded(tx: Transaction, mail_id: str, at: float) -> None:
    """A referral's forward was accepted by the relay (the first time counts)."""
    tx.run(
        "UPDATE referral_stats SET forwarded_at = ? WHERE forwarded_at IS NULL AND reference ="
        " (SELECT reference FROM outbox WHERE id = ? AND kind = 'forward')",
        (at, mail_id),
    )


def figures_between(journal: JournalCore, start: float, end: float) -> list[CountedDecision]:
    """Every decision of the referrals received in [start, end) (Unix seconds)."""
    rows = journal.query(
        "SELECT received_at, forwarded_at, outcome, area, age_band, gender, sector"
        " FROM referral_stats WHERE received_at >= ? AND received_at < ?"
        " ORDER BY received_at, reference",
        (start, end),
    )
    return [CountedDecision(**row) for row in rows]


def claim_report_month(journal: JournalCore, month: str, lease_seconds: float) -> bool:
    """Claim the mailing of one month's report for this node: True when it is this node's
    to send (nobody sent it, and no live node holds it)."""
    clock = journal._db.clock  # the lease on the database's clock, never a node's
    with journal.transaction() as tx:
        rows: Sequence[dict[str, object]] = tx.rows(
            "INSERT INTO report_mailings (month, claimed_by, lease_until)"  # noqa: S608
            f" VALUES (?, ?, {clock} + ?)"
            " ON CONFLICT (month) DO UPDATE SET claimed_by = excluded.claimed_by,"
            " lease_until = excluded.lease_until WHERE report_mailings.sent_at IS NULL"
            " AND (report_mailings.claimed_by = excluded.claimed_by"
            f" OR report_mailings.lease_until < {clock}) RETURNING month",
            (month, journal.node, lease_seconds),
        )
    return bool(rows)


def mark_report_sent(journal: JournalCore, month: str, reply: str | None) -> None:
    """Record that this month's report was accepted by the relay."""
    with journal.transaction() as tx:
        tx.run(
            "UPDATE report_mailings SET sent_at = ?, reply = ? WHERE month = ?",
            (time.time(), reply, month),
        )


def report_sent_at(journal: JournalCore, month: str) -> float | None:
    """When the report of `month` (YYYY-MM) was mailed; None when it was not."""
    rows = journal.query("SELECT sent_at FROM report_mailings WHERE month = ?", (month,))
    return float(rows[0]["sent_at"]) if rows and rows[0]["sent_at"] is not None else None


def figures_to_refine(journal: JournalCore, limit: int) -> list[tuple[str, str, int, float]]:
    """(reference, message id, form position, received at) of backfilled figures that still
    lack what only the stored message can tell (see migration 0042)."""
    rows = journal.query(
        "SELECT p.reference, p.message_id, p.position, m.received_at FROM figures_pending AS p"
        " JOIN messages AS m ON m.id = p.message_id ORDER BY p.reference LIMIT ?",
        (limit,),
    )
    return [
        (row["reference"], row["message_id"], int(row["position"]), float(row["received_at"]))
        for row in rows
    ]


def refine_figures(journal: JournalCore, reference: str, figures: dict[str, str] | None) -> None:
    """Fill in one backfilled decision's figures (None: nothing more can be known, as when its
    message was purged), and take it off the list, in one transaction."""
    with journal.transaction() as tx:
        if figures is not None:
            tx.run(
                "UPDATE referral_stats SET age_band = ?, gender = ?, sector = ?"
                " WHERE reference = ?",
                (figures["age_band"], figures["gender"], figures["sector"], reference),
            )
        tx.run("DELETE FROM figures_pending WHERE reference = ?", (reference,))

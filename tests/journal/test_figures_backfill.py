"""A journal from before the figures of `report` existed: on upgrade every decision gets its
row (area, outcome, times), and the daemon completes age band, gender and sector from the
stored messages that retention still keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from router.core.rules.model import Rules
from router.service.daemon import Daemon
from tests.commands.served import referral_email
from tests.conftest import make_settings, submit

_FIGURES = "SELECT reference, outcome, area, age_band, gender, sector FROM referral_stats"


def _forget_figures(daemon: Daemon) -> None:
    """Put the journal back as an older version left it: no figures, migrations 41-42 not run."""
    with daemon.journal.transaction() as tx:
        for table in ("figures_pending", "report_mailings", "referral_stats"):
            tx.run(f"DROP TABLE {table}")
        tx.run("DELETE FROM schema_migrations WHERE version IN (41, 42)")


async def test_figures_are_backfilled_on_upgrade_and_completed_from_stored_mail(
    tmp_path: Path, journal: str, bundled_rules: Rules
) -> None:
    """After the upgrade the rows say area and outcome with unknown figures; one round of
    housekeeping reads the stored messages again and fills in what the forms say."""
    settings = make_settings(tmp_path, journal=journal)
    old = Daemon(settings, bundled_rules)
    await old.start()
    try:
        await submit(old, referral_email(1, referrer_email="head@stmarys.lewisham.sch.uk"))
        await submit(old, referral_email(2, person_gender="Male", person_dob="2001-01-01"))
        await old.run_once()
        expected = sorted(old.journal.query(_FIGURES), key=lambda row: row["reference"])
        _forget_figures(old)
    finally:
        await old.close()

    upgraded = Daemon(settings, bundled_rules)
    await upgraded.start()
    try:
        rows = sorted(upgraded.journal.query(_FIGURES), key=lambda row: row["reference"])
        assert [(r["outcome"], r["area"]) for r in rows] == [("forward", "lewisham")] * 2
        assert {(r["age_band"], r["gender"], r["sector"]) for r in rows} == {
            ("unknown", "unknown", "unknown")
        }
        assert await upgraded.backfill.run_once() == 2
        rows = sorted(upgraded.journal.query(_FIGURES), key=lambda row: row["reference"])
        assert rows == expected
        assert {(r["sector"], r["gender"]) for r in rows} == {
            ("education", "female"),
            ("other", "male"),
        }
        assert await upgraded.backfill.run_once() == 0  # nothing left
        today = datetime.now(UTC).date()
        from router.commands.report import load_report

        report = load_report(upgraded.journal, today, today, exact=True)
        assert report.by_sector["education"] == 1 and report.by_gender["male"] == 1
    finally:
        await upgraded.close()

"""The console's reads of the journal (router/journal/console.py), on both journals."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from router.console.data import AuditTrailSource, ReportStatistics, mask_address
from router.journal.console import ReferralFilter
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email


def _referral(**fields: str | None) -> bytes:
    pdf = fillable_pdf(labelled(complete_referral(**fields)))
    return build_email(
        sender="teacher@school.example",
        subject="Prevent referral about a pupil",
        attachments=[("jane-testperson.pdf", pdf, "application/pdf")],
    )


async def test_referrals_are_listed_filtered_and_paged_without_personal_data(
    daemon_factory: Any,
) -> None:
    """A forward, an incomplete referral and a message with no form are listed newest first
    with outcome, area, missing field names and the referrer's address; filters and pages
    narrow them; nothing of the forms' values is in any row."""
    daemon = await daemon_factory()
    for raw in (
        _referral(),
        _referral(person_dob=None, concern=None),
        build_email(sender="teacher@school.example"),
    ):
        await submit(daemon, raw)
        await daemon.run_once()
    queries = daemon.journal.console_queries()
    rows, total = queries.referrals(ReferralFilter(), limit=10, offset=0)
    assert total == 3
    assert [row.outcome for row in rows] == ["needs_review", "incomplete", "forward"]
    assert rows[1].missing == ["person_dob", "concern"] and rows[1].area == "lewisham"
    assert {row.referrer for row in rows} == {"teacher@school.example"}
    shown = repr(rows)
    for value in complete_referral().values():
        assert len(value) <= 3 or value not in shown
    assert "jane-testperson" not in shown

    only, total = queries.referrals(ReferralFilter(outcome="incomplete"), limit=10, offset=0)
    assert total == 1 and only[0].reference == rows[1].reference
    second, total = queries.referrals(ReferralFilter(), limit=2, offset=2)
    assert total == 3 and [row.outcome for row in second] == ["forward"]
    tomorrow = time.time() + 86400
    assert queries.referrals(ReferralFilter(received_from=tomorrow), limit=5, offset=0)[1] == 0
    assert queries.referrals(ReferralFilter(quarantined=True), limit=5, offset=0)[1] == 0
    assert queries.areas_seen() == ["lewisham"]


async def test_overview_trail_and_statistics_count_what_happened(daemon_factory: Any) -> None:
    """The overview counts today's decisions by outcome, the trail tells a forward's events
    in order in words with the acknowledgment's address masked, the statistics count it by
    area and month (as <5 unless exact) with the same csv as `report`, and a dry run is
    kept with who made it."""
    daemon = await daemon_factory()
    await submit(daemon, _referral())
    await daemon.run_once()
    queries = daemon.journal.console_queries()
    overview = queries.overview(time.time() - 3600, time.time() - 7200)
    assert overview.outcomes_today == {"forward": 1} and overview.quarantined == 0
    [message_id] = [
        row.message_id for row in queries.referrals(ReferralFilter(), limit=5, offset=0)[0]
    ]
    events = AuditTrailSource(daemon.journal).trail(message_id)
    names = [event.event for event in events]
    assert names[:2] == ["received", "decided"] and names.count("sent") == 2
    text = " ".join(event.detail for event in events)
    assert "t•••@school.example" in text and "teacher@school.example" not in text
    assert "forwarded to preventreferrals@met.pnn.police.uk, cc" in text
    day = datetime.now(UTC).date()
    stats = ReportStatistics(daemon.journal, lambda: ("lewisham", "kingston"))
    assert stats.report(day, day).report["by_area"]["lewisham"]["forward"] == "<5"
    assert stats.report(day, day, exact=True).report["by_area"]["lewisham"]["forward"] == 1
    assert "by_area,kingston,forward,0" in stats.report(day, day).csv
    assert "by_area,lewisham,forward,<5" in stats.report(day, day).csv
    queries.record_action("it-admin@council.example", "dry_run", None, "forward")
    [action] = queries.recent_actions()
    assert (action.actor, action.action, action.result) == (
        "it-admin@council.example",
        "dry_run",
        "forward",
    )


def test_addresses_are_masked_to_their_first_letter_and_domain() -> None:
    """`teacher@school.example` is shown as `t•••@school.example`; none stays none."""
    assert mask_address("teacher@school.example") == "t•••@school.example"
    assert mask_address(None) == "" and mask_address("not-an-address") == ""

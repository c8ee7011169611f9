"""`referral-router report`: the figures of a window, for `router.core.report_render` to
format (the data function the web console uses too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from router.core.report import Report, build_report, window
from router.journal.protocol import Journal


def load_report(
    journal: Journal, start: date, end: date, *, exact: bool = False, areas: Sequence[str] = ()
) -> Report:
    """The report of the referrals received from `start` to `end` (both included, UTC)."""
    decisions = journal.figures_between(*window(start, end))
    return build_report(decisions, start, end, exact=exact, areas=areas)

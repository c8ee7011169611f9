"""The console's view of a referral's trail and of the statistics, for its pages.

`TrailSource` and `StatisticsSource` are what the pages need; `AuditTrailSource` reads the
audit trail (`Journal.audit_trail`, the events of `show`, in `show`'s words from
`router.core.trail`, the referrer's address masked) and `ReportStatistics` the figures kept
at decision time (`Journal.figures_between`, counted and written as csv as `report` does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from router.core.report import build_report, window
from router.core.report_render import render_csv
from router.core.trail import describe, masked

if TYPE_CHECKING:
    from router.journal.protocol import Journal

OUTCOMES = ("forward", "incomplete", "needs_review", "ignored")
BREAKDOWNS = ("by_month", "by_age", "by_gender", "by_sector")
SMALL = "<5"  # how `report` shows counts from 1 to 4


@dataclass(frozen=True)
class TrailEvent:
    """One thing that happened to a message, in words without personal data."""

    at: float
    event: str  # received, decided, queued, sent, failed, bounced, settled, quarantined, ...
    detail: str


class TrailSource(Protocol):
    """A message's audit trail, oldest event first (the events of `show`)."""

    def trail(self, message_id: str) -> list[TrailEvent]: ...


@dataclass(frozen=True)
class Statistics:
    """The `report` of a window, in the shape of `report --format json` (SPEC section 7)."""

    report: dict[str, Any]
    csv: str
    notes: list[str] = field(default_factory=list)


class StatisticsSource(Protocol):
    """Statistics over referrals received from `start` to `end`, both days included (UTC)."""

    def report(self, start: date, end: date, *, exact: bool = False) -> Statistics: ...


def mask_address(address: str | None) -> str:
    """`t•••@school.example` for `teacher@school.example`; empty for none."""
    if not address or "@" not in address:
        return ""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


class AuditTrailSource:
    """The journal's audit trail in `show`'s words, the referrer's address masked. A
    reprocess from the console is in it with who did it (`Journal.reprocess(by=...)`).
    See `TrailSource`."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def trail(self, message_id: str) -> list[TrailEvent]:
        """See `TrailSource.trail`."""
        found = self._journal.audit_trail(message_id)
        if found is None:
            return []
        shown = [masked(event, mask_address) for event in found.events]
        decided = {event.reference: event.detail for event in shown if event.event == "decided"}
        return [TrailEvent(e.at, e.event, describe(e, decided)) for e in shown]


class ReportStatistics:
    """The statistics of `report` (figures kept at decision time, `Journal.figures_between`).
    See `StatisticsSource`."""

    def __init__(self, journal: Journal, areas: Callable[[], Sequence[str]]) -> None:
        self._journal = journal
        self._areas = areas  # the areas of the rules in force, listed even without referrals

    def report(self, start: date, end: date, *, exact: bool = False) -> Statistics:
        """See `StatisticsSource.report`."""
        decisions = self._journal.figures_between(*window(start, end))
        built = build_report(decisions, start, end, exact=exact, areas=tuple(self._areas()))
        return Statistics(built.as_json(), render_csv(built))

"""The statistics report for a Prevent board, built from figures kept at decision time.

Pure: it takes the decisions' figures (`CountedDecision`, nothing personal) and a window,
and returns a `Report` whose `as_json` is the SPEC section 7 object. Formatting (text, csv,
html) is in `router.core.report_render`; the figures come from `router.journal.stats`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from router.core.statistics import AGE_BANDS, GENDERS, SECTORS
from router.models import Outcome

OUTCOMES = tuple(outcome.value for outcome in Outcome)
NO_AREA = "none"  # the by_area key of decisions made for no area (as in /metrics)
SUPPRESSED = "<5"  # what a count from 1 to 4 is shown as, unless exact
_SMALLEST_SHOWN = 5

Count = int | str  # a number, or SUPPRESSED


@dataclass(frozen=True)
class CountedDecision:
    """One decision's figures (see `router.journal.stats`)."""

    received_at: float
    forwarded_at: float | None
    outcome: str
    area: str | None
    age_band: str
    gender: str
    sector: str


@dataclass(frozen=True)
class Report:
    """Counts of decisions of referrals received from `start` to `end` (both included)."""

    start: date
    end: date
    exact: bool
    total: int
    by_area: dict[str, dict[str, int]]
    by_month: dict[str, int]
    by_age: dict[str, int]
    by_gender: dict[str, int]
    by_sector: dict[str, int]
    median_seconds: float | None
    p90_seconds: float | None
    forwards_timed: int

    def shown(self, count: int) -> Count:
        """A count as published: 1 to 4 become `<5` unless the report is exact."""
        if self.exact or count == 0 or count >= _SMALLEST_SHOWN:
            return count
        return SUPPRESSED

    def as_json(self) -> dict[str, Any]:
        """The SPEC section 7 object of `report --format json`."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "total": self.shown(self.total),
            "by_area": {
                area: {outcome: self.shown(n) for outcome, n in counts.items()}
                for area, counts in self.by_area.items()
            },
            "by_month": self._shown_all(self.by_month),
            "by_age": self._shown_all(self.by_age),
            "by_gender": self._shown_all(self.by_gender),
            "by_sector": self._shown_all(self.by_sector),
            "time_to_forward": {
                "median_seconds": self.median_seconds,
                "p90_seconds": self.p90_seconds,
            },
        }

    def _shown_all(self, counts: dict[str, int]) -> dict[str, Count]:
        return {key: self.shown(n) for key, n in counts.items()}


def window(start: date, end: date) -> tuple[float, float]:
    """The Unix seconds [from, to) of the days `start` to `end`, both included, in UTC."""
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    after = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return first.timestamp(), after.timestamp()


def build_report(
    decisions: Iterable[CountedDecision],
    start: date,
    end: date,
    *,
    exact: bool = False,
    areas: Sequence[str] = (),
) -> Report:
    """Count `decisions` (those received outside the window are left out).

    Args:
        decisions: the figures of each decision.
        start, end: the first and last day (UTC), both included.
        exact: show counts from 1 to 4 as they are (else `<5`).
        areas: the areas of the rules, listed even when they have no decision.
    """
    low, high = window(start, end)
    chosen = [d for d in decisions if low <= d.received_at < high]
    by_area = {area: dict.fromkeys(OUTCOMES, 0) for area in (*areas, NO_AREA)}
    by_month = dict.fromkeys(_months(start, end), 0)
    by_age = dict.fromkeys(AGE_BANDS, 0)
    by_gender = dict.fromkeys(GENDERS, 0)
    by_sector = dict.fromkeys(SECTORS, 0)
    for decision in chosen:
        area = by_area.setdefault(decision.area or NO_AREA, dict.fromkeys(OUTCOMES, 0))
        area[decision.outcome] = area.get(decision.outcome, 0) + 1
        month = f"{datetime.fromtimestamp(decision.received_at, UTC):%Y-%m}"
        by_month[month] = by_month.get(month, 0) + 1
        _add(by_age, decision.age_band)
        _add(by_gender, decision.gender)
        _add(by_sector, decision.sector)
    waits = sorted(
        max(0.0, d.forwarded_at - d.received_at) for d in chosen if d.forwarded_at is not None
    )
    return Report(
        start=start,
        end=end,
        exact=exact,
        total=len(chosen),
        by_area=by_area,
        by_month=by_month,
        by_age=by_age,
        by_gender=by_gender,
        by_sector=by_sector,
        median_seconds=round(statistics.median(waits), 3) if waits else None,
        p90_seconds=round(waits[math.ceil(0.9 * len(waits)) - 1], 3) if waits else None,
        forwards_timed=len(waits),
    )


def previous_month(today: date) -> tuple[date, date]:
    """The first and last day of the month before `today`'s."""
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def _months(start: date, end: date) -> list[str]:
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _add(counts: dict[str, int], key: str) -> None:
    """Count under `key`; a value a newer version wrote that this one does not know counts
    as `unknown` (so the breakdown still adds up to the total)."""
    counts[key if key in counts else "unknown"] += 1

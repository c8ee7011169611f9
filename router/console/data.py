"""The console's contracts for a referral's trail and the statistics, and what serves them
until the audit trail (`show`) and statistics (`report`) of issue 24 are in the journal.

`TrailSource` and `StatisticsSource` are what the pages need; `TableTrail` and
`DecisionStatistics` build them from the journal's own tables (messages, decisions, outbox
and the console's actions). When `router.commands.show` / `report` exist, adapters to them
take their place in `router.console.context`.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from router.core.redaction import redact
from router.core.report import build_report
from router.core.report_render import render_csv
from router.core.trail import describe, masked

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from router.journal.console import ConsoleQueries
    from router.journal.protocol import Journal

OUTCOMES = ("forward", "incomplete", "needs_review", "ignored")
NO_AREA = "(no area)"
SMALL = "<5"  # counts from 1 to 4, as official statistics show them


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
    notes: list[str] = field(default_factory=list)  # what this source cannot give


class StatisticsSource(Protocol):
    """Statistics over referrals received from `start` to `end`, both days included (UTC)."""

    def report(self, start: date, end: date, *, exact: bool = False) -> Statistics: ...


def mask_address(address: str | None) -> str:
    """`t•••@school.example` for `teacher@school.example`; empty for none."""
    if not address or "@" not in address:
        return ""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def _recipients(kind: str, raw: str) -> str:
    """Forwards and notices go to addresses the rules name; an acknowledgment goes to the
    referrer, whose address is masked."""
    addresses = json.loads(raw or "[]")
    if kind == "ack":
        addresses = [mask_address(address) for address in addresses]
    return ", ".join(addresses) or "(address removed at the retention purge)"


class TableTrail:
    """A trail read from the journal's tables. See `TrailSource`."""

    def __init__(self, queries: ConsoleQueries) -> None:
        self._queries = queries

    def trail(self, message_id: str) -> list[TrailEvent]:
        """See `TrailSource.trail`."""
        message, mails = self._queries.message_history(message_id)
        if message is None:
            return []
        events = [TrailEvent(message["received_at"], "received", "stored in the journal")]
        for row in self._queries.message_rows(message_id):
            if row.outcome is not None and row.decided_at is not None:
                missing = f"; missing {', '.join(row.missing)}" if row.missing else ""
                area = row.area or "no area"
                detail = f"{row.reference}: {row.outcome}, {area}{missing}. {row.reason}"
                events.append(TrailEvent(row.decided_at, "decided", detail))
        for mail in mails:
            events += _mail_events(mail)
        if message["state"] == "quarantined":
            reason = redact(message["last_error"] or "(no reason recorded)")
            at = message["decided_at"] or message["received_at"]
            events.append(TrailEvent(at, "quarantined", reason))
        if message["done_at"] is not None:
            events.append(TrailEvent(message["done_at"], "done", "every mail settled"))
        if message["purged_at"] is not None:
            events.append(TrailEvent(message["purged_at"], "purged", "stored copies removed"))
        for action in self._queries.actions(message_id):
            detail = f"by {action.actor}: {action.result}"
            events.append(TrailEvent(action.at, action.action, detail))
        return sorted(events, key=lambda event: event.at)


def _mail_events(mail: dict[str, Any]) -> list[TrailEvent]:
    kind, to = mail["kind"], _recipients(mail["kind"], mail["recipients"])
    events = [TrailEvent(mail["created_at"], "queued", f"{kind} to {to}")]
    if mail["sent_at"] is not None:
        events.append(TrailEvent(mail["sent_at"], "sent", f"{kind} accepted by the relay"))
    if mail["state"] == "failed":
        error = redact(mail["last_error"] or "refused")
        events.append(TrailEvent(mail["created_at"], "failed", f"{kind}: {error}"))
    if mail["bounced_at"] is not None:
        events.append(TrailEvent(mail["bounced_at"], "bounced", f"{kind} bounced"))
    return events


def window(start: date, end: date) -> tuple[float, float]:
    """Epoch seconds of `start` 00:00 UTC and of the day after `end`."""
    first = datetime.combine(start, time(), UTC)
    after = datetime.combine(end + timedelta(days=1), time(), UTC)
    return first.timestamp(), after.timestamp()


def shown(count: int, exact: bool) -> int | str:
    """A count as published: 1 to 4 become `<5` unless `exact`."""
    return SMALL if 1 <= count <= 4 and not exact else count


class DecisionStatistics:
    """Counts by area and outcome and by month from the decisions table. See
    `StatisticsSource`. Age, gender, sector and time to forward need the statistics kept
    at decision time (issue 24): until then they are left out, and `notes` says so."""

    def __init__(self, queries: ConsoleQueries) -> None:
        self._queries = queries

    def report(self, start: date, end: date, *, exact: bool = False) -> Statistics:
        """See `StatisticsSource.report`."""
        rows = self._queries.decision_counts(*window(start, end))
        areas: dict[str, Counter[str]] = {}
        months: Counter[str] = Counter()
        for row in rows:
            areas.setdefault(row["area"] or NO_AREA, Counter())[row["outcome"]] += 1
            months[f"{datetime.fromtimestamp(row['received_at'], UTC):%Y-%m}"] += 1
        report: dict[str, Any] = {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "total": shown(len(rows), exact),
            "by_area": {
                area: {outcome: shown(counts[outcome], exact) for outcome in OUTCOMES}
                for area, counts in sorted(areas.items())
            },
            "by_month": {month: shown(n, exact) for month, n in sorted(months.items())},
        }
        notes = [
            "Age bands, gender, referring sector and time to forward are not kept by this"
            " version of the router."
        ]
        return Statistics(report, report_csv(report), notes)


def report_csv(report: dict[str, Any]) -> str:
    """One row per count: breakdown, key, outcome (when by area), count."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["breakdown", "key", "outcome", "count"])
    writer.writerow(["total", "", "", report["total"]])
    for area, outcomes in report.get("by_area", {}).items():
        for outcome, count in outcomes.items():
            writer.writerow(["area", area, outcome, count])
    for name in ("by_month", "by_age", "by_gender", "by_sector"):
        for key, count in report.get(name, {}).items():
            writer.writerow([name.removeprefix("by_"), key, "", count])
    return out.getvalue()


class AuditTrailSource:
    """The journal's audit trail (`Journal.audit_trail`, the events of `show`) in words, the
    referrer's address masked, with the console's own actions. See `TrailSource`."""

    def __init__(self, journal: Journal, queries: ConsoleQueries) -> None:
        self._journal = journal
        self._queries = queries

    def trail(self, message_id: str) -> list[TrailEvent]:
        """See `TrailSource.trail`."""
        found = self._journal.audit_trail(message_id)
        if found is None:
            return []
        shown = [masked(event, mask_address) for event in found.events]
        decided = {event.reference: event.detail for event in shown if event.event == "decided"}
        events = [TrailEvent(e.at, e.event, describe(e, decided)) for e in shown]
        for action in self._queries.actions(message_id):
            events.append(
                TrailEvent(action.at, action.action, f"by {action.actor}: {action.result}")
            )
        return sorted(events, key=lambda event: event.at)


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

"""The console's read-only pages: overview, referrals, one referral, rules, statistics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from router.console import health
from router.console.data import BREAKDOWNS, OUTCOMES, SMALL
from router.core.rules.loader import RulesError, load_rules
from router.journal.console import ReferralFilter

if TYPE_CHECKING:
    from router.console.app import Console
    from router.console.auth import User

PAGE_SIZE = 25
STATES = ("received", "decided", "done", "quarantined")


class Pages:
    """Handlers of the read-only pages; journal reads run in worker threads."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.context = console.context

    async def overview(self, request: Request, user: User) -> Response:
        now = datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        week = day - timedelta(days=day.weekday())
        queries = self.context.queries
        counts = await asyncio.to_thread(queries.overview, day.timestamp(), week.timestamp())
        name = self.context.journal.node
        mine = await health.this_node(name, self.context.settings.http_bind)
        others = health.other_nodes(await asyncio.to_thread(self.context.journal.nodes_seen), name)
        undecided = counts.oldest_undecided_at
        values = {
            "section": "overview",
            "nodes": [mine, *others],
            "counts": counts,
            "outcomes": OUTCOMES,
            "undecided_minutes": None if undecided is None else int((time.time() - undecided) / 60),
        }
        return self.console.render(request, "overview.html", values)

    async def referrals(self, request: Request, user: User) -> Response:
        params = request.query_params
        wanted = ReferralFilter(
            received_from=_day(params.get("from")),
            received_to=_day(params.get("to"), next_day=True),
            outcome=_one_of(params.get("outcome"), OUTCOMES),
            area=params.get("area") or None,
            state=_one_of(params.get("state"), STATES),
            quarantined=params.get("quarantined") == "yes",
        )
        page = max(1, int(params.get("page", "1")) if params.get("page", "1").isdigit() else 1)
        queries = self.context.queries
        rows, total = await asyncio.to_thread(
            queries.referrals, wanted, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        areas = await asyncio.to_thread(queries.areas_seen)
        kept = {key: value for key, value in params.items() if key != "page" and value}
        values = {
            "section": "referrals",
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "query": lambda number: urlencode({**kept, "page": number}),
            "filters": dict(params),
            "outcomes": OUTCOMES,
            "states": STATES,
            "areas": areas,
        }
        return self.console.render(request, "referrals.html", values)

    async def referral(self, request: Request, user: User) -> Response:
        reference = request.path_params["reference"]
        queries = self.context.queries
        message_id = await asyncio.to_thread(queries.message_of, reference)
        if message_id is None:
            raise HTTPException(404, f"No referral {reference}.")
        rows = await asyncio.to_thread(queries.message_rows, message_id)
        trail = await asyncio.to_thread(self.context.trails.trail, message_id)
        values = {
            "section": "referrals",
            "reference": reference,
            "message_id": message_id,
            "rows": rows,
            "trail": trail,
            "quarantined": bool(rows) and rows[0].state == "quarantined",
            "done": request.query_params.get("done", ""),
        }
        return self.console.render(request, "referral.html", values)

    async def rules(self, request: Request, user: User) -> Response:
        rules = self.context.rules()
        problems: list[str] = []
        try:
            on_disk = await asyncio.to_thread(load_rules, self.context.settings.rules_dir)
        except RulesError as exc:
            on_disk = None
            problems = [
                f"{problem.file}, line {problem.line}, {problem.field}: {problem.message}"
                for problem in exc.problems
            ]
        except OSError as exc:
            on_disk, problems = None, [f"{self.context.settings.rules_dir}: {exc.strerror}"]
        values = {
            "section": "rules",
            "rules": rules,
            "loaded_at": self.context.rules_loaded_at(),
            "problems": problems,
            "changed_on_disk": on_disk is not None and on_disk.version != rules.version,
            "dry_runs": await asyncio.to_thread(self.context.queries.recent_actions, 10),
        }
        return self.console.render(request, "rules.html", values)

    async def statistics(self, request: Request, user: User) -> Response:
        start, end = _window(request)
        stats = await asyncio.to_thread(self.context.statistics.report, start, end)
        report = stats.report
        values = {
            "section": "statistics",
            "start": start,
            "end": end,
            "report": report,
            "notes": stats.notes,
            "outcomes": OUTCOMES,
            "largest": _largest(report),
            "csv_query": urlencode({"from": start.isoformat(), "to": end.isoformat()}),
        }
        return self.console.render(request, "statistics.html", values)

    async def statistics_csv(self, request: Request, user: User) -> Response:
        start, end = _window(request)
        stats = await asyncio.to_thread(self.context.statistics.report, start, end)
        name = f"referrals-{start.isoformat()}-{end.isoformat()}.csv"
        return Response(
            stats.csv,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )


def _window(request: Request) -> tuple[date, date]:
    """The statistics window asked for; this month so far by default."""
    today = datetime.now(UTC).date()
    start = _date(request.query_params.get("from")) or today.replace(day=1)
    end = _date(request.query_params.get("to")) or today
    if end < start:
        raise HTTPException(400, "The end of the window is before its start.")
    return start, end


def _largest(report: dict[str, object]) -> dict[str, int]:
    """Each breakdown's bars' full length: its largest count, at least 5 when a count is
    shown as `<5` (drawn half way to 5, which says no more than the text)."""
    largest = {}
    for name in BREAKDOWNS:
        counts = report.get(name)
        values = list(counts.values()) if isinstance(counts, dict) else []
        floor = 5 if SMALL in values else 1
        largest[name] = max([floor, *(n for n in values if isinstance(n, int))])
    return largest


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise HTTPException(400, "Dates are written YYYY-MM-DD.") from None


def _day(value: str | None, *, next_day: bool = False) -> float | None:
    day = _date(value)
    if day is None:
        return None
    if next_day:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _one_of(value: str | None, allowed: tuple[str, ...]) -> str | None:
    return value if value in allowed else None

"""What the console reads and acts on, handed to it by the daemon that serves it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from router.console.data import AuditTrailSource, ReportStatistics, StatisticsSource, TrailSource
from router.journal.console import ConsoleQueries

if TYPE_CHECKING:
    from router.core.rules.model import Rules
    from router.journal.protocol import Journal
    from router.settings import Settings


@dataclass
class ConsoleContext:
    """The daemon's parts the console uses. Journal calls run in worker threads.

    Attributes:
        rules: the rules in force now (they change on reload).
        rules_loaded_at: when they were put in force (epoch seconds).
        wake: tells the daemon's pipeline, from any thread, that a message is queued again.
    """

    settings: Settings
    journal: Journal
    rules: Callable[[], Rules]
    rules_loaded_at: Callable[[], float]
    wake: Callable[[], object]
    queries: ConsoleQueries
    trails: TrailSource
    statistics: StatisticsSource


def console_context(
    settings: Settings,
    journal: Journal,
    *,
    rules: Callable[[], Rules],
    rules_loaded_at: Callable[[], float],
    wake: Callable[[], object],
) -> ConsoleContext:
    """The context with the trail and statistics sources this router has: the audit trail
    and the figures of `show` and `report` (issue 24)."""
    queries = journal.console_queries()
    return ConsoleContext(
        settings=settings,
        journal=journal,
        rules=rules,
        rules_loaded_at=rules_loaded_at,
        wake=wake,
        queries=queries,
        trails=AuditTrailSource(journal),
        statistics=ReportStatistics(journal, lambda: [area.id for area in rules().areas]),
    )

"""Completing the figures of decisions made before they were kept (migration 0042): the
stored message, while retention keeps it, is read again in the worker for the age band,
gender and referring sector of each form; nothing else of it is kept or changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict

import structlog

from router.core.routing import RoutingEngine
from router.core.statistics import figures
from router.decide.worker import AnalysisFailed, AnalysisSandbox
from router.journal.protocol import Journal
from router.settings import Settings

log = structlog.get_logger(__name__)

BATCH = 20  # decisions completed per housekeeping round: old work never crowds out new


class FigureBackfill:
    """Completes a few backfilled figures at a time (`run_once`, from the housekeeping)."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        sandbox: AnalysisSandbox,
        engine: Callable[[], RoutingEngine],
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.sandbox = sandbox
        self.engine = engine  # the rules now (they reload)
        self.done = False  # nothing left: no more look-ups until restart

    async def run_once(self) -> int:
        """Complete up to `BATCH` decisions' figures; returns how many were looked at."""
        if self.done:
            return 0
        pending = await asyncio.to_thread(self.journal.figures_to_refine, BATCH)
        self.done = not pending
        for reference, message_id, position, received_at in pending:
            found = await self._figures(message_id, position, received_at)
            await asyncio.to_thread(self.journal.refine_figures, reference, found)
        if pending:
            log.info("figures_backfilled", decisions=len(pending))
        return len(pending)

    async def _figures(
        self, message_id: str, position: int, received_at: float
    ) -> dict[str, str] | None:
        """The figures of one form of a stored message; None when it cannot be read."""
        raw = await asyncio.to_thread(self.journal.raw_message, message_id)
        if raw is None:
            return None  # purged meanwhile: the figures stay unknown
        engine = self.engine()
        try:
            analysis = await self.sandbox.analyse(
                raw,
                engine,
                router_from=self.settings.from_address,
                envelope_recipients=(),
                max_attachments=self.settings.max_attachments,
                trusted_authserv_ids=tuple(self.settings.authserv_ids),
            )
        except AnalysisFailed as exc:
            log.warning("figures_not_backfilled", message=message_id, reason=str(exc)[:200])
            return None
        if not 0 <= position < len(analysis.decisions):  # decisions.position counts from 0
            return None
        decision = analysis.decisions[position]
        sender = analysis.message.from_address
        found = figures(decision, sender=sender, received_at=received_at, rules=engine.rules)
        return asdict(found)

"""The monthly report mail (ROUTER_REPORT_TO): on the first days of a month, the previous
month's statistics go to the board's addresses once, whatever the number of routers.

One router claims the month in the journal (`report_mailings`, with a lease), sends, and
records the relay's reply; the others see the claim or the record and do nothing. A router
killed between the relay's 250 and the record lets another send it again once the lease has
run out: the same window as every mail the router sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import structlog

from router.core.report import build_report, previous_month, window
from router.journal.protocol import Journal
from router.send.relay import DeliveryError, Relay
from router.settings import Settings

log = structlog.get_logger(__name__)

# A month's report is still sent this many days into the next month (a router that was down
# on the 1st catches up), never later: a router installed mid-month sends nothing old.
CATCH_UP_DAYS = 7
# How long a claim on a month's mailing holds before another router may take it over.
CLAIM_SECONDS = 300.0
RETRY_SECONDS = 300.0  # after the relay refused the report


class MonthlyReport:
    """Mails the previous month's report once; `run_once` is called by the housekeeping."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        relay: Relay,
        areas: Callable[[], Sequence[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.relay = relay
        self.areas = areas  # the areas of the rules now (they reload)
        self.clock = clock
        self._next_try = 0.0  # after a refusal, not before (the housekeeping runs often)

    def due_month(self) -> tuple[date, date] | None:
        """The month whose report is due today, or None (no recipients, or too late)."""
        if not self.settings.report_recipients:
            return None
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        if today.day > CATCH_UP_DAYS:
            return None
        return previous_month(today)

    def _report_mail(self, start: date, end: date) -> tuple[bytes, int]:
        """The month's report as a mail, and how many decisions it counts (built in a thread:
        counting and charts take CPU)."""
        # pygal (and lxml) load only when a report is mailed: the daemon starts without them.
        from router.core.report_mail import compose_report_mail

        decisions = self.journal.figures_between(*window(start, end))
        report = build_report(decisions, start, end, areas=tuple(self.areas()))
        data = compose_report_mail(
            report, sender=self.settings.from_address, recipients=self.settings.report_recipients
        )
        return data, report.total

    async def run_once(self) -> bool:
        """Send the due report if no router has; True when this call sent it."""
        due = self.due_month()
        if due is None or self.clock() < self._next_try:
            return False
        start, end = due
        month = f"{start:%Y-%m}"
        if await asyncio.to_thread(self.journal.report_sent_at, month) is not None:
            return False
        if not await asyncio.to_thread(self.journal.claim_report_month, month, CLAIM_SECONDS):
            return False  # another router is sending it
        data, total = await asyncio.to_thread(self._report_mail, start, end)
        recipients = self.settings.report_recipients
        try:
            reply = await self.relay.send(
                data, sender=self.settings.from_address, recipients=recipients
            )
        except DeliveryError as exc:
            # Tried again at the next housekeeping (this router keeps its claim).
            log.warning("report_not_sent", month=month, error=type(exc).__name__)
            self._next_try = self.clock() + RETRY_SECONDS
            return False
        await asyncio.to_thread(self.journal.mark_report_sent, month, reply)
        log.info("report_sent", month=month, recipients=len(recipients), decisions=total)
        return True

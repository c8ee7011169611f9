"""Delivering: sends spooled mail over the relay and records each outcome in the journal.

Each mail is marked sent right after the relay's 250; a refusal for now is retried with
backoff and jitter, one for good (or a relay bug) fails the mail, sets its message aside and
tells a person, with the undelivered mail attached.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import structlog

from router.core.compose import Outgoing, compose_alert
from router.core.kinds import FORWARD
from router.core.redaction import redact
from router.journal.protocol import Journal
from router.journal.records import NewMail, OutboxItem
from router.metrics import Metrics
from router.send.relay import (
    DeliveryError,
    PermanentDeliveryError,
    Relay,
    TransientDeliveryError,
)
from router.settings import Settings

log = structlog.get_logger(__name__)

SENDERS = 2  # mails handed to the relay at once (its pool keeps as many connections)
# Spooled bytes read together with the due mail (one trip to a thread, not one a mail);
# bounded, as mail can be tens of MB.
_READ_AHEAD_BYTES = 8 * 1024 * 1024


class Delivery:
    """Sends what is due. One instance per pipeline."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        relay: Relay,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.relay = relay
        self.metrics = metrics
        self.clock = clock

    async def deliver_due(self, concurrency: int = SENDERS) -> int:
        """Send every mail that is due now, a few at once; returns how many were tried."""
        due = await asyncio.to_thread(self._due, self.clock())
        slots = asyncio.Semaphore(concurrency)
        failed = False

        async def deliver_one(item: OutboxItem, data: bytes | None) -> None:
            nonlocal failed
            async with slots:
                if failed:
                    # Sending on while the journal cannot record what was sent would only
                    # send it all again later: leave the rest for the next round.
                    return
                try:
                    await self.deliver(item, data)
                except BaseException:
                    failed = True
                    raise

        await asyncio.gather(*(deliver_one(item, data) for item, data in due))
        return len(due)

    def _due(self, now: float) -> list[tuple[OutboxItem, bytes | None]]:
        """The mail due now, with the bytes of the first few MB of it read in the same trip
        to the journal's thread (the rest is read when its turn comes)."""
        due: list[tuple[OutboxItem, bytes | None]] = []
        budget = _READ_AHEAD_BYTES
        for item in self.journal.due_mail(now):
            data = self.journal.outgoing_data(item.id) if budget > 0 else None
            budget -= len(data or b"")
            due.append((item, data))
        return due

    async def deliver(self, item: OutboxItem, data: bytes | None = None) -> None:
        """Send one spooled mail (its bytes read here unless given); record sent, retry
        later, or fail and alert a person."""
        if data is None:
            data = await asyncio.to_thread(self.journal.outgoing_data, item.id)
        if data is None:
            raise LookupError(f"the spooled mail {item.id} is missing")
        try:
            reply = await self.relay.send(data, sender=item.sender, recipients=item.recipients)
        except TransientDeliveryError as exc:
            await asyncio.to_thread(self._retry, item, exc)
            return
        except PermanentDeliveryError as exc:
            await asyncio.to_thread(self._failed, item, exc, data)
            return
        except Exception as exc:  # a relay bug must not stop every later delivery
            log.error("delivery_crashed", reference=item.reference, error=type(exc).__name__)
            error = PermanentDeliveryError(None, type(exc).__name__)
            await asyncio.to_thread(self._failed, item, error, data)
            return
        await asyncio.to_thread(self._sent, item, reply)  # right after the 250

    def _sent(self, item: OutboxItem, reply: str | None = None) -> None:
        """Record a mail the relay accepted (one trip to the journal's thread)."""
        self.journal.mark_sent(item.id, reply)
        self.metrics.sent.labels(item.kind).inc()
        log.info("sent", reference=item.reference, kind=item.kind, attempts=item.attempts + 1)
        if item.kind == FORWARD:  # to a force; notices and reviews are not timed
            received = self.journal.query(
                "SELECT received_at FROM messages WHERE id = ?", (item.message_id,)
            )
            if received:
                self.metrics.latency.observe(max(0.0, time.time() - received[0]["received_at"]))

    def _retry(self, item: OutboxItem, exc: DeliveryError) -> None:
        delay = min(
            self.settings.retry_base_seconds * 2**item.attempts, self.settings.retry_max_seconds
        )
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        self.journal.mark_retry(item.id, _describe(exc), self.clock() + delay)
        self.metrics.retries.inc()
        log.warning(
            "delivery_deferred",
            reference=item.reference,
            kind=item.kind,
            attempts=item.attempts + 1,
            retry_in=round(delay, 1),
            error=redact(_describe(exc)),  # the relay's reply may quote a referrer's address
        )
        if item.attempts + 1 == self.settings.max_attempts and item.kind != "alert":
            alert = compose_alert(
                f"Referral {item.reference}: delivery delayed",
                f"The {item.kind} for {item.reference} has failed {item.attempts + 1} times "
                f"and is still being retried.\nLast error: {_describe(exc)}",
                sender=self.settings.from_address,
                to=self.settings.review_address,
            )
            self.journal.add_mail(item.message_id, new_mail("alert", item.reference, alert))

    def _failed(self, item: OutboxItem, exc: DeliveryError, data: bytes) -> None:
        self.journal.mark_failed(item.id, _describe(exc))
        self.metrics.failed.labels(item.kind).inc()
        log.error(
            "delivery_failed",
            reference=item.reference,
            kind=item.kind,
            error=redact(_describe(exc)),
        )
        if item.kind == "ack":
            return  # a referrer's address that refuses mail: nothing more to do
        if item.kind != "alert":
            self.journal.quarantine(item.message_id, f"{item.kind} failed: {_describe(exc)}")
            self.metrics.quarantined.inc()
            alert = compose_alert(
                f"Referral {item.reference} was NOT delivered",
                f"The {item.kind} for {item.reference} to {', '.join(item.recipients)} was "
                f"refused for good.\nError: {_describe(exc)}\n\nThe undelivered mail is "
                "attached. Check the rules, then send it by hand or run\n"
                f"referral-router reprocess {item.message_id}",
                sender=self.settings.from_address,
                to=self.settings.review_address,
                original_raw=data,
            )
            self.journal.add_mail(item.message_id, new_mail("alert", item.reference, alert))


def new_mail(kind: str, reference: str | None, outgoing: Outgoing) -> NewMail:
    """A composed mail as the journal spools it."""
    return NewMail(
        kind=kind,
        reference=reference,
        sender=outgoing.sender,
        recipients=outgoing.recipients,
        message_id_header=outgoing.message_id,
        data=outgoing.data,
    )


def _describe(exc: DeliveryError) -> str:
    return str(exc)[:300] or type(exc).__name__

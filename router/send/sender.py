"""Delivering: sends spooled mail over the relay and records each outcome in the journal.

Each mail is marked sent right after the relay's 250; a refusal for now, or the relay
refusing the router itself, is retried with backoff and jitter; a refusal of this mail for
good (or a relay bug) fails the mail, sets its message aside and tells a person: the
reference, what failed, the relay's reply code and the command to run, never the mail.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import structlog

from router.core.compose import compose_alert
from router.core.kinds import FORWARD
from router.core.redaction import redact
from router.journal.protocol import Journal
from router.journal.records import NewMail, OutboxItem, new_mail
from router.metrics import Metrics
from router.send.health import RelayFault
from router.send.relay import (
    DeliveryError,
    PermanentDeliveryError,
    Relay,
    RelayFaultError,
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
        # Ids of mail with the relay now, or accepted by it and not yet recorded as sent: a
        # round never hands these over again (nor, on PostgreSQL, where this node's own
        # claims are claimable, does a restarted loop).
        self._in_flight: set[str] = set()
        # Accepted by the relay (250) while the journal failed to record it.
        self._unrecorded: dict[str, tuple[OutboxItem, str | None]] = {}  # with the relay's reply

    async def deliver_due(self, concurrency: int = SENDERS) -> int:
        """Send every mail that is due now, a few at once; returns how many were tried (or
        recorded at last).

        A mail is with the relay in one place only: one the relay accepted but the journal
        did not record as sent is recorded first (and never handed over again), and when a
        step fails no further mail starts; those already with the relay are finished and
        recorded before the failure is raised (for the supervisor, which runs the next round).
        """
        recorded = await self.record_unrecorded()
        due = await asyncio.to_thread(self._due, self.clock())
        due = [(item, data) for item, data in due if item.id not in self._in_flight]
        slots = asyncio.Semaphore(concurrency)
        failures: list[Exception] = []

        async def deliver_one(item: OutboxItem, data: bytes | None) -> None:
            async with slots:
                if failures:
                    # Sending on while the journal cannot record what was sent would only
                    # send it all again later: leave the rest for the next round.
                    return
                self._in_flight.add(item.id)
                try:
                    await self.deliver(item, data)
                except Exception as exc:  # raised below, once the others are back
                    failures.append(exc)
                finally:
                    if item.id not in self._unrecorded:
                        self._in_flight.discard(item.id)

        await asyncio.gather(*(deliver_one(item, data) for item, data in due))
        if failures:
            raise failures[0]
        return recorded + len(due)

    async def record_unrecorded(self) -> int:
        """Record as sent the mail the relay accepted in an earlier round whose sent mark
        failed; returns how many. Raises what the journal raised (nothing is sent until
        these are recorded)."""
        items = list(self._unrecorded.values())
        for item, reply in items:
            await asyncio.to_thread(self._sent, item, reply)
            del self._unrecorded[item.id]
            self._in_flight.discard(item.id)
        return len(items)

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
        except RelayFaultError as exc:  # the relay refuses the router: every mail waits
            self.metrics.relay_refusals.inc()
            await asyncio.to_thread(self._retry, item, exc)
            return
        except TransientDeliveryError as exc:
            await asyncio.to_thread(self._retry, item, exc)
            return
        except PermanentDeliveryError as exc:
            await asyncio.to_thread(self._failed, item, exc)
            return
        except Exception as exc:  # a relay bug must not stop every later delivery
            log.error("delivery_crashed", reference=item.reference, error=type(exc).__name__)
            error = PermanentDeliveryError(None, type(exc).__name__)
            await asyncio.to_thread(self._failed, item, error)
            return
        try:
            await asyncio.to_thread(self._sent, item, reply)  # right after the 250
        except Exception as exc:
            # Kept in memory and recorded before the next round sends anything: only a
            # kill of the process before then sends it again.
            self._unrecorded[item.id] = (item, reply)
            log.error(
                "sent_not_recorded", reference=item.reference, kind=item.kind,
                error=type(exc).__name__,
            )  # fmt: skip
            raise
        take_cleared = getattr(self.relay, "take_cleared", None)  # a RelayHealth
        cleared: RelayFault | None = take_cleared() if take_cleared is not None else None
        if cleared is not None:
            await asyncio.to_thread(self._relay_accepts_again, item, cleared)

    def _sent(self, item: OutboxItem, reply: str | None = None) -> None:
        """Record a mail the relay accepted (one trip to the journal's thread)."""
        self.journal.mark_sent(item.id, reply)
        self.metrics.sent.labels(item.kind).inc()
        log.info("sent", reference=item.reference, kind=item.kind, attempts=item.attempts + 1)
        if item.kind == FORWARD:  # to a force; notices and reviews are not timed
            received = self.journal.received_at(item.message_id)
            if received is not None:
                self.metrics.latency.observe(max(0.0, time.time() - received))

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
        if isinstance(exc, RelayFaultError):
            return  # one alert says it all once the relay accepts again
        if item.attempts + 1 == self.settings.max_attempts and item.kind != "alert":
            alert = compose_alert(
                f"Referral {item.reference}: delivery delayed",
                f"The {item.kind} for {item.reference} has failed {item.attempts + 1} times "
                f"and is still being retried.\nThe relay's reply code: {exc.code}\n"
                f"Last error: {redact(_describe(exc))}\n\n"
                f"See: referral-router show {item.reference}",
                sender=self.settings.from_address,
                to=self.settings.review_address,
            )
            self.journal.add_mail(item.message_id, new_mail("alert", item.reference, alert))

    def _relay_accepts_again(self, item: OutboxItem, fault: RelayFault) -> None:
        """One alert, after the relay refused the router and now took a mail: what happened."""
        minutes = max(0.0, self.clock() - fault.since) / 60
        log.warning(
            "relay_accepts_again", code=fault.code, refused_sends=fault.refused_sends,
            minutes=round(minutes, 1),
        )  # fmt: skip
        alert = compose_alert(
            "Referral router: the relay refused the router's mail, and accepts it again",
            f"For {minutes:.0f} minute(s) the relay refused the router itself, not one mail:\n"
            f"reply code {fault.code}: {fault.reply}\n\n"
            f"{fault.refused_sends} send(s) were refused. Every mail was kept in the journal "
            "and is being sent now:\nnothing was lost. If this happens again, check the "
            "relay's policy for the router\n(ROUTER_HELO_NAME, ROUTER_FROM_ADDRESS, "
            "ROUTER_RELAY_USER) and run: referral-router status",
            sender=self.settings.from_address,
            to=self.settings.review_address,
        )
        self.journal.add_mail(item.message_id, new_mail("alert", item.reference, alert))

    def _failed(self, item: OutboxItem, exc: DeliveryError) -> None:
        """Record a refusal for good: the mail failed, its message quarantined and a person
        told, in one transaction (an acknowledgment or an alert only fails)."""
        quarantine: str | None = None
        alert: NewMail | None = None
        if item.kind not in ("ack", "alert"):  # a referrer's address that refuses mail: no more
            quarantine = f"{item.kind} failed: {_describe(exc)}"
            composed = compose_alert(
                f"Referral {item.reference} was NOT delivered",
                f"The {item.kind} for referral {item.reference} was refused for good by the "
                f"relay.\nThe relay's reply code: {exc.code if exc.code is not None else 'none'}"
                f"\nWhat failed: {redact(_describe(exc))}\n\nThe referral is set aside and "
                "kept by the router. See what happened with\n"
                f"  referral-router show {item.reference}\n"
                "then check the rules, and send it again with\n"
                f"  referral-router reprocess {item.message_id}",
                sender=self.settings.from_address,
                to=self.settings.review_address,
            )
            alert = new_mail("alert", item.reference, composed)
        self.journal.mark_failed(item.id, _describe(exc), quarantine=quarantine, alert=alert)
        self.metrics.failed.labels(item.kind).inc()
        if quarantine is not None:
            self.metrics.quarantined.inc()
        log.error(
            "delivery_failed",
            reference=item.reference,
            kind=item.kind,
            error=redact(_describe(exc)),
        )


def _describe(exc: DeliveryError) -> str:
    return str(exc)[:300] or type(exc).__name__

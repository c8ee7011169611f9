"""The pipeline: takes stored messages from the journal to recorded decisions and sent mail.

Each step reads its state from the journal and writes its result back atomically, so the
daemon can be killed at any moment and carry on where it was.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import structlog

from router.core.analysis import unread_analysis
from router.core.compose import (
    UnwritableAddress,
    compose_ack,
    compose_alert,
    compose_forward,
    enclose,
)
from router.core.kinds import referral_kind
from router.core.mail.headers import mailbox_key
from router.core.redaction import redact
from router.core.routing import RoutingEngine
from router.core.statistics import figures
from router.decide.bounds import WorkerUnavailable
from router.decide.worker import SANDBOX_DEPTH, AnalysisFailed, AnalysisSandbox, Worked
from router.journal.protocol import Journal
from router.journal.records import (
    JournalUnavailable,
    NewMail,
    StoredMessage,
    is_environmental,
    new_mail,
)
from router.metrics import Metrics
from router.models import Decision, Outcome
from router.settings import Settings

log = structlog.get_logger(__name__)

# A message whose processing failed this many times is quarantined. An attempt is counted
# before the daemon itself handles what the worker read of it (see `Journal.count_attempt`);
# a daemon killed while the message was in the worker does not count.
MAX_PROCESS_ATTEMPTS = 3
# A message whose handling in the daemon was cut short this many times (a crash loop it may
# cause) is quarantined. More than the failures: a daemon restarted again and again (kills
# soon after each start) reaches the oldest message at the same moment each time.
MAX_INTERRUPTED_ATTEMPTS = 5
_DECIDE_BATCH = 4
_OVERLAP = 6  # messages being decided at once (one in the worker, the others claimed or recording)


@dataclass
class _Attempt:
    """One try at deciding a stored message; `count` once it was counted in the journal."""

    stored: StoredMessage
    count: int | None = None


class Pipeline:
    """Decides stored messages: claim, work in the sandbox, record decisions and their mail.
    One instance per daemon; `router.service.stages` drives it."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        engine: RoutingEngine,
        sandbox: AnalysisSandbox,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        size_limit: Callable[[], int | None] = lambda: None,
    ) -> None:
        """`size_limit` tells the relay's SIZE as last learnt (EHLO), which a composed
        mail must fit (None: no limit known)."""
        self.settings = settings
        self.size_limit = size_limit
        self.journal = journal
        self.engine = engine
        self.sandbox = sandbox
        self.metrics = metrics
        self.clock = clock
        self._failed_this_round: set[str] = set()
        self._analysing = asyncio.Semaphore(SANDBOX_DEPTH)  # claimed and in the worker

    def forget_failures(self) -> None:
        """Let messages that failed in this round be tried again (their attempts count)."""
        self._failed_this_round.clear()

    # --- deciding -----------------------------------------------------------------------

    async def process_received(
        self, batch: int = _DECIDE_BATCH, on_recorded: Callable[[], None] = lambda: None
    ) -> int:
        """Decide up to `batch` stored messages (the deciding loop asks for up to 64; each
        message's mail may go as soon as it is recorded: `on_recorded` is called then).

        A few are under way at once: while one is in the worker, the next ones are claimed
        and read and wait their turn there, and those before are composed and recorded, so
        the worker does not wait for the journal. Returns how many were decided or
        quarantined.
        """
        waiting = await asyncio.to_thread(
            self.journal.received, limit=batch + len(self._failed_this_round)
        )
        todo = [s for s in waiting if s.id not in self._failed_this_round][:batch]
        slots = asyncio.Semaphore(_OVERLAP)

        async def one(stored: StoredMessage) -> int:
            async with slots:
                return await self._process_counted(stored, on_recorded)

        results = await asyncio.gather(*(one(s) for s in todo), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result  # environmental (the others finished first): see below
        return sum(r for r in results if isinstance(r, int))

    async def _process_counted(self, stored: StoredMessage, on_recorded: Callable[[], None]) -> int:
        """Process one message; 1 when it was decided or quarantined, 0 when it failed this
        round. A failure of the journal or the disk is raised, for the supervisor."""
        attempt = _Attempt(stored)
        try:
            await self._decide(attempt, on_recorded)
        except Exception as exc:
            if is_environmental(exc) or isinstance(exc, WorkerUnavailable):
                # The journal, the disk or the machine (no worker can start) failed, not this
                # message: the attempt does not count against it, and the supervisor retries
                # the whole round (its backoff and /readyz say that deciding is failing).
                await asyncio.to_thread(self._give_back_attempt, stored)
                raise
            self._failed_this_round.add(stored.id)
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("processing_failed", message=stored.id, error=type(exc).__name__)
            if attempt.count is None:  # it failed before the daemon handled its contents
                await self._count(attempt)
            assert attempt.count is not None
            if attempt.count >= MAX_PROCESS_ATTEMPTS:
                await asyncio.to_thread(self.quarantine, stored, error, summary=type(exc).__name__)
                return 1
            return 0
        return 1

    def _give_back_attempt(self, stored: StoredMessage) -> None:
        """Undo `count_attempt`'s count for an attempt cut short (if it was counted)."""
        try:
            self.journal.give_back_attempt(stored.id, stored.attempts)
        except (OSError, sqlite3.Error, JournalUnavailable) as exc:
            # Still failing: the attempt stays counted.
            log.warning("attempt_not_returned", message=stored.id, error=type(exc).__name__)

    async def _count(self, attempt: _Attempt) -> None:
        attempt.count = await asyncio.to_thread(self.journal.count_attempt, attempt.stored.id)

    async def process(
        self, stored: StoredMessage, on_recorded: Callable[[], None] = lambda: None
    ) -> None:
        """Decide one stored message and record its decisions with the mail they cause.

        The journal's reads and writes run in a thread, so the event loop
        keeps serving intake, delivery and /healthz while they wait for the disk.
        """
        await self._decide(_Attempt(stored), on_recorded)

    async def _decide(self, attempt: _Attempt, on_recorded: Callable[[], None]) -> None:
        stored = attempt.stored
        started = time.monotonic()
        # `received` took the message for this node (its lease, which the heartbeat keeps)
        # with its attempts so far. Only as many are handed to a worker that is up as it
        # takes at once, and an attempt is counted when the worker is done with it (`_work`):
        # a kill of the daemon (or a restart while the worker starts) does not count
        # against the messages in the worker or waiting.
        if stored.attempts >= MAX_INTERRUPTED_ATTEMPTS:
            await asyncio.to_thread(
                self.quarantine, stored, f"processing was interrupted {stored.attempts} times"
            )
            return
        async with self._analysing:
            await self.sandbox.ready()
            raw = await asyncio.to_thread(self.journal.raw_message, stored.id)
            if raw is None:
                raise LookupError("the stored copy of the message is missing")
            worked = await self._work(attempt, raw)
        analysis = worked.analysis
        records = await asyncio.to_thread(self._record, stored, worked)
        on_recorded()  # its mail can go now, before the rest of the batch is decided
        elapsed = round(time.monotonic() - started, 3)
        for (reference, _), decision in zip(records, analysis.decisions, strict=True):
            self.metrics.decisions.labels(decision.outcome.value, decision.area or "none").inc()
            log.info(
                "decision",
                reference=reference,
                outcome=decision.outcome.value,
                area=decision.area,
                signal=decision.signal,
                missing=decision.missing,
                acknowledged=decision.ack_to is not None,
                because=_ignored_because(decision),
                seconds=elapsed,
                rules=self.engine.rules.version[:12],
            )

    def _record(self, stored: StoredMessage, worked: Worked) -> list[tuple[str, dict[str, object]]]:
        """Compose each decision's mail and record decisions and mail in one transaction."""
        mails: list[NewMail] = []
        records: list[tuple[str, dict[str, object]]] = []
        counted: list[dict[str, str]] = []
        sender = worked.analysis.message.from_address
        for position, decision in enumerate(worked.analysis.decisions, start=1):
            reference = f"PR-{stored.id}-{position}"
            mails += self._mails_for(decision, reference, worked)
            records.append((reference, decision.model_dump(mode="json", exclude={"fields"})))
            found = figures(
                decision, sender=sender, received_at=stored.received_at, rules=self.engine.rules
            )
            counted.append(asdict(found))
        self.journal.record_decisions(
            stored.id, records, mails, rules_version=self.engine.rules.version, figures=counted
        )
        return records

    async def _work(self, attempt: _Attempt, raw: bytes) -> Worked:
        """Analyse in the sandbox; a message it cannot read still gets a review decision,
        with the original attached as a file (encoded in a thread, never parsed here). The
        attempt is counted before the daemon handles anything of the message itself."""
        stored = attempt.stored
        envelope = stored.envelope_rcpts
        reason: str | None = None
        if stored.oversize:
            reason = (
                f"message too large to download ({stored.size} bytes); it is still in the inbox"
            )
        else:
            log.debug("analysing", message=stored.id)  # handed to the worker
            try:
                worked = await self.sandbox.work(
                    raw,
                    self.engine,
                    router_from=self.settings.from_address,
                    envelope_recipients=envelope,
                    max_attachments=self.settings.max_attachments,
                    trusted_authserv_ids=self.settings.authserv_ids,
                )
            except AnalysisFailed as exc:
                reason = str(exc)
                log.warning("analysis_failed", message=stored.id, reason=reason)
            else:
                await self._count(attempt)
                return worked
        await self._count(attempt)
        # Decide from the headers alone: who sent it and to which inbox.
        analysis = unread_analysis(
            raw,
            self.engine,
            reason or "the message could not be read",
            router_from=self.settings.from_address,
            envelope_recipients=envelope,
            trusted_authserv_ids=self.settings.authserv_ids,
        )
        enclosures = await asyncio.to_thread(
            enclose, analysis.message, raw, indexes=(), inspect=False
        )
        return Worked(analysis, enclosures)

    def _mails_for(self, decision: Decision, reference: str, worked: Worked) -> list[NewMail]:
        sender = self.settings.from_address
        analysis = worked.analysis
        mails: list[NewMail] = []
        if decision.outcome is Outcome.IGNORED:
            return self._bounce_alerts(decision, reference)
        forward = compose_forward(
            decision,
            reference,
            analysis.message,
            worked.enclosures,
            analysis.readings,
            sender=sender,
            size_limit=self.size_limit(),
        )
        mails.append(new_mail(referral_kind(decision.outcome), reference, forward))
        limit = self.engine.rules.acknowledgments.daily_limit_per_sender
        if decision.ack_to and self.journal.count_ack(mailbox_key(decision.ack_to), limit):
            area = next((a for a in self.engine.rules.areas if a.id == decision.area), None)
            try:
                ack = compose_ack(
                    decision,
                    reference,
                    analysis.message,
                    self.engine.rules.acknowledgments,
                    sender=sender,
                    area_name=area.names[0] if area else "your area",
                )
            except UnwritableAddress:
                # The forward goes; only the reply to an address no header can hold does not.
                log.warning("acknowledgment_unwritable", reference=reference)
            else:
                mails.append(new_mail("ack", reference, ack))
        elif decision.ack_to:
            log.warning("acknowledgment_capped", reference=reference)
        return mails

    def _bounce_alerts(self, decision: Decision, report: str) -> list[NewMail]:
        """A delivery report about one of our own mails: tell a person it did not arrive."""
        mails = []
        for reported in decision.bounce_of:
            row = self.journal.mail_by_message_id_header(reported)
            if row is None or row["kind"] == "ack":
                continue
            self.journal.mark_bounced(row["id"])
            log.warning("forward_bounced", reference=row["reference"], kind=row["kind"])
            alert = compose_alert(
                f"Referral {row['reference']} did NOT arrive: delivery report received",
                "A delivery report (bounce) came back for a mail the router sent.\n\n"
                f"Reference: {row['reference']}\nKind: {row['kind']}\n"
                f"Recipients: {', '.join(_json_list(row['recipients']))}\n\n"
                "The referral did not reach its recipient. Please check the address in the\n"
                "rules and send the referral on by hand. The delivery report is kept by the\n"
                f"router ({report}); see\n  referral-router show {row['reference']}",
                sender=self.settings.from_address,
                to=self.settings.review_address,
                references=[reported],
            )
            mails.append(new_mail("alert", row["reference"], alert))
        return mails

    def quarantine(self, stored: StoredMessage, error: str, *, summary: str | None = None) -> None:
        """Set a message aside with its error and tell a person (the message id, the error's
        class and the commands to run; nothing of the message itself).

        Args:
            stored: the message.
            error: the full error, for the journal and the alert to the review address.
            summary: what the log may say instead; an exception's text can quote the
                message's content, so only its class is logged.
        """
        alert = compose_alert(
            f"Referral router: message {stored.id} quarantined",
            f"The router could not process message {stored.id} and set it aside.\n\n"
            f"What failed: {summary or redact(error)}\n\nThe message is kept by the router. "
            f"See it with\n  referral-router show {stored.id}\nthen handle it by hand, or "
            f"fix the cause and run\n  referral-router reprocess {stored.id}",
            sender=self.settings.from_address,
            to=self.settings.review_address,
        )
        # One transaction: a message is never set aside without the alert that says so.
        self.journal.quarantine(stored.id, error, alert=new_mail("alert", None, alert))
        self.metrics.quarantined.inc()
        log.error("quarantined", message=stored.id, error=(summary or error)[:200])


# Why an `ignored` decision was automatic, in fixed words: the verdict's own reason can
# quote a sender's local part, so it is never logged.
_IGNORED_BECAUSE = (
    ("the router's own mail", "own mail"),
    ("delivery report", "delivery report"),
    ("bounce", "bounce"),
    ("auto-reply (Auto-Submitted", "auto-submitted header"),
    ("auto-reply (out-of-office", "out-of-office subject"),
    ("auto-reply", "auto-reply header"),
    ("bulk mail", "precedence header"),
    ("list mail", "list mail"),
)


def _ignored_because(decision: Decision) -> str | None:
    """Which rule made an `ignored` decision automatic (None for other outcomes)."""
    if decision.outcome is not Outcome.IGNORED:
        return None
    for prefix, words in _IGNORED_BECAUSE:
        if decision.reason.startswith(prefix):
            return words
    return decision.automatic or "automatic mail"


def _json_list(value: str) -> list[str]:
    import json

    return [str(v) for v in json.loads(value)]

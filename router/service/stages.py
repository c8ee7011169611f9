"""Deciding and delivering as two loops that overlap, so the worker reads the next referral
while the relay is sending the mail of the last one.

Intake (the SMTP listener or IMAP session) stores messages and calls `stored`; the deciding
loop takes stored messages in small batches to the worker and records their decisions with
their mail; the delivering loop sends what is due, a few mails at a time over the relay's
kept connections, and settles finished messages. The journal is the queue between them, so
a crash at any point loses nothing. Deciding pauses while more than `unsent_limit` mails are
decided but not yet sent (a dead relay must not turn a backlog into a spool of forwards).

Each loop is a plain coroutine that returns when `stop` is set; the daemon runs them and may
restart one that failed. `run_once` drives the same steps until nothing is left (tests, burst).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from router.core.aio import wait_any
from router.decide.decider import Pipeline
from router.journal.protocol import Journal
from router.send.sender import Delivery

log = structlog.get_logger(__name__)

UNSENT_LIMIT = 200  # decided-but-unsent mails before deciding waits for delivery
_IDLE_SECONDS = 30.0  # a loop with nothing to do looks again after this long
_FULL_SECONDS = 1.0  # how often a paused deciding loop looks at the outbox again
_BATCH = 64  # messages decided between two looks at the bound


class Stages:
    """The two loops, deciding (`Pipeline`) and delivering (`Delivery`), and the events that
    wake them."""

    def __init__(
        self,
        pipeline: Pipeline,
        delivery: Delivery,
        *,
        unsent_limit: int = UNSENT_LIMIT,
        on_round: Callable[[str], None] = lambda name: None,
        on_decided: Callable[[], None] = lambda: None,
    ) -> None:
        self.pipeline = pipeline
        self.delivery = delivery
        self.journal: Journal = pipeline.journal
        # Told after a round that decided something (an IMAP inbox settles its copies).
        self.on_decided = on_decided
        # Told "pipeline" or "delivery" after each round that got through (the supervisor).
        self.on_round = on_round
        self.unsent_limit = unsent_limit
        self._to_decide = asyncio.Event()
        self._to_deliver = asyncio.Event()
        self._sent = asyncio.Event()
        self.paused = asyncio.Event()  # set while deciding waits for the outbox to drain
        self.finished = asyncio.Event()  # set when messages are done (retention may purge)

    async def run_once(self) -> None:
        """Decide every stored message and send every mail that is due now, then return."""
        self.pipeline.forget_failures()
        while True:
            decided = await self.pipeline.process_received()
            sent = await self.delivery.deliver_due()
            finished = self.journal.finish_messages()
            if decided:
                self.on_decided()
            if not (decided or sent or finished):
                return

    def stored(self) -> None:
        """Intake stored a message: wake the deciding loop."""
        self._to_decide.set()

    def requeued(self) -> None:
        """A person put a message (or its failed mail) back in the queue: wake both loops."""
        self._to_decide.set()
        self._to_deliver.set()

    def _unsent(self) -> int:
        return self.journal.pending_mail_count()

    async def deciding(self, stop: asyncio.Event) -> None:
        """Decide stored messages until `stop` is set."""
        while not stop.is_set():
            self._to_decide.clear()
            room = self.unsent_limit - await asyncio.to_thread(self._unsent)
            if room <= 0:
                self._sent.clear()
                self.paused.set()
                await wait_any(self._sent, stop, seconds=_FULL_SECONDS)
                continue
            self.paused.clear()
            # A referral causes about two mails (forward, acknowledgment): keep to the bound.
            decided = await self.pipeline.process_received(
                max(1, min(_BATCH, room // 2)), on_recorded=self._to_deliver.set
            )
            self.on_round("pipeline")
            if decided:
                self._to_deliver.set()
                self.on_decided()
                continue
            # Messages that failed this round are tried again on the next wake-up.
            self.pipeline.forget_failures()
            await wait_any(self._to_decide, stop, seconds=_IDLE_SECONDS)

    async def delivering(self, stop: asyncio.Event) -> None:
        """Send due mail and settle finished messages until `stop` is set."""
        while not stop.is_set():
            self._to_deliver.clear()
            sent = await self.delivery.deliver_due()
            finished = await asyncio.to_thread(self.journal.finish_messages)
            self.on_round("delivery")
            if sent:
                self._sent.set()
            if finished:
                self.finished.set()
            if sent or finished:
                continue
            due = await asyncio.to_thread(self.journal.next_due)
            wait = _IDLE_SECONDS if due is None else max(0.01, due - time.time())
            await wait_any(self._to_deliver, stop, seconds=min(wait, _IDLE_SECONDS))

"""The daemon: wires inbox, journal, pipeline and relay together, runs their loops and closes
them (`router.service.process` runs it as `serve`: signals, the owner lock, the stop in order)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import structlog

from router.core.aio import wait_any
from router.core.routing import RoutingEngine
from router.core.rules.model import Rules
from router.decide.backfill import FigureBackfill
from router.decide.decider import Pipeline
from router.decide.worker import AnalysisSandbox
from router.journal.opener import open_journal
from router.journal.records import Gauges
from router.metrics import Metrics
from router.oauth.sources import OAuthSources
from router.send.health import RelayHealth
from router.send.pool import pooled
from router.send.probe import RelayProbe
from router.send.relay import Relay
from router.send.sender import Delivery
from router.service.graph_wiring import GraphWiring
from router.service.http import OpsServer
from router.service.monthly import MonthlyReport
from router.service.reload import RulesWatcher
from router.service.retention import RetentionKeeper
from router.service.stages import Stages
from router.service.supervise import Supervisor
from router.settings import Settings

if TYPE_CHECKING:
    from router.console.server import ConsoleServer

log = structlog.get_logger(__name__)

_IDLE_WAKE_SECONDS = 30.0
_HOUSEKEEPING_SECONDS = 1.0  # a burst's finished messages are looked at once a second


class Inbox(Protocol):
    """What the daemon needs of an inbox (SMTP listener or IMAP IDLE)."""

    @property
    def state(self) -> str: ...


class Daemon:
    """One running router. `start`, then `run` until the stop event, then `close`.

    Tests use `run_once` to process what is queued and return (burst mode).
    """

    def __init__(
        self,
        settings: Settings,
        rules: Rules,
        *,
        relay: Relay | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        inbox = settings.inbox_endpoint.scheme
        self.metrics.start(inbox, (area.id for area in rules.areas))
        # Counted at every message stored: the label is worked out once, not per message.
        self._received = self.metrics.received.labels(inbox)
        self.journal = open_journal(settings)
        # OAuth 2.0 token sources for the inbox and the relay (router/oauth), when asked for.
        self.oauth = OAuthSources(settings, on_change=self._oauth_changed)
        self.oauth.register_metrics(self.metrics.registry)
        # Microsoft Graph's per-mailbox gates and metrics (graph:// inbox or relay).
        self.graph = GraphWiring(self.journal, self.metrics)
        # A few kept SMTP connections (router.send.pool).
        self.relay = relay or pooled(self.graph.make_relay(settings, self.oauth.relay))
        self.relay_health = RelayHealth(self.relay)  # remembers recent send results
        self.sandbox = AnalysisSandbox(timeout=settings.parse_timeout_seconds)
        self.pipeline = Pipeline(
            settings,
            self.journal,
            RoutingEngine(rules, review_address=settings.review_address),
            self.sandbox,
            self.metrics,
            size_limit=lambda: self.relay_health.size_limit,  # mail composed to fit it
        )
        self.delivery = Delivery(settings, self.journal, self.relay_health, self.metrics)
        self.backfill = FigureBackfill(
            settings, self.journal, self.sandbox, lambda: self.pipeline.engine
        )
        self.monthly = MonthlyReport(  # ROUTER_REPORT_TO (router/service/monthly.py)
            settings,
            self.journal,
            self.relay_health,
            lambda: [a.id for a in self.rules.areas],
            clock,
        )
        # The deciding and delivering loops; each finished round tells the supervisor.
        self.stages = Stages(
            self.pipeline,
            self.delivery,
            on_round=lambda name: self.supervisor.ok(name),
            on_decided=self._settle_inbox,
        )
        self.wake = asyncio.Event()
        self.stop_event = asyncio.Event()
        self.inbox: Inbox | None = None
        self.settle_request: Callable[[], None] | None = None  # an IMAP inbox's settle request
        self.supervisor = Supervisor(self.metrics, self.stop_event)
        self._tasks: list[asyncio.Task[None]] = []
        self.retention = RetentionKeeper(self.journal, settings.retention_days)
        # --- operations (router/service/http.py, router/service/reload.py) ---
        self.relay_probe = RelayProbe(self.relay)  # is the relay usable? checked at start
        self.http: OpsServer | None = None
        self.console: ConsoleServer | None = None  # router/console, on ROUTER_CONSOLE
        self.rules_loaded_at = time.time()
        self.rules_watcher = RulesWatcher(
            settings.rules_dir,
            current=lambda: self.rules,
            apply=self.set_rules,
            metrics=self.metrics,
        )
        # --- end operations ---

    def add_task(self, task: asyncio.Task[None]) -> None:
        """Keep a task the daemon waits for when it closes."""
        self._tasks.append(task)

    @property
    def rules(self) -> Rules:
        return self.pipeline.engine.rules

    def set_rules(self, rules: Rules) -> None:
        """Swap in a new rules version; decisions already made keep the version they used."""
        self.pipeline.engine = RoutingEngine(rules, review_address=self.settings.review_address)
        self.rules_loaded_at = time.time()

    async def _store(self, raw: bytes, recipients: list[str]) -> tuple[str, bool]:
        """Store what the SMTP inbox received, unless it stored a copy (the same Message-ID
        and bytes) recently, to which this one's envelope recipients are then added; returns
        the journal's id and whether it was such a copy."""

        def store() -> tuple[str, bool]:
            copy = self.journal.recent_copy(raw, envelope_recipients=recipients)
            if copy is not None:
                return copy, True
            return self.journal.accept_sync(raw, envelope_recipients=recipients), False

        return await asyncio.to_thread(store)

    def _settle_inbox(self) -> None:
        """Messages were decided: an IMAP inbox moves the copies of finished ones."""
        if self.settle_request is not None:
            self.settle_request()

    def stored(self) -> None:
        """An inbox stored new mail: count it and wake the deciding stage."""
        self._received.inc()
        self.stages.stored()
        self.wake.set()

    async def start(self) -> None:
        """Open the inbox.

        Raises:
            OSError: the listener cannot bind.
            ValueError: the listener's settings are unsafe or unreadable (TLS, allow-list).
        """
        self.journal.start_heartbeat()
        self.retention.remove_orphans(time.time())  # nothing is stored yet: every orphan is one
        self.sandbox.start(self.pipeline.engine)  # warm, off the event loop: /readyz does not wait
        await self._start_operations()
        endpoint = self.settings.inbox_endpoint
        if endpoint.scheme == "smtp":
            from router.inbox.smtp import SmtpInbox, listener_options

            smtp = SmtpInbox(
                endpoint.host,
                endpoint.port,
                self.journal,
                options=listener_options(self.settings),
                allow=self.settings.inbox_allow,
                on_stored=self.stored,
                store=self._store,
                metrics=self.metrics,
            )
            await smtp.start()
            self.inbox = smtp
            self.metrics.inbox_connected.set(1)
        elif endpoint.scheme == "graph":  # polled through Microsoft Graph (router.inbox.graph)
            self.inbox = self.graph.start_inbox(self)
        else:
            from router.inbox.imap import ImapInbox
            from router.inbox.leader import MailboxLease

            imap = ImapInbox(
                self.settings,
                self.journal,
                on_stored=self.stored,
                on_state=self.inbox_state,
                tokens=self.oauth.inbox,
                starts=self.journal.mailbox_starts(),
            )
            # One watcher per mailbox among the nodes sharing the journal (inbox/leader.py).
            # Keyed by the normalised mailbox (imap_support.mailbox_key), not the setting's text.
            lease = MailboxLease(
                self.journal,
                imap.mailbox,
                inner_state=lambda: imap.state,
                inner_failure=lambda: imap.failure,
            )
            self.inbox = lease
            self.settle_request = imap.notify_settle
            self._tasks.append(
                self.supervisor.start("imap", lambda: lease.run(imap.run, self.stop_event))
            )

    # --- operations (router/service/http.py, router/service/reload.py) ---
    async def _start_operations(self) -> None:
        """Serve /metrics, /healthz, /readyz when settings.http is set; watch the rules."""
        bind = self.settings.http_bind
        if bind is not None:
            self.http = OpsServer(self, *bind)
            await self.http.start()
        await self._start_console()
        watcher = self.supervisor.start("rules", lambda: self.rules_watcher.run(self.stop_event))
        self._tasks.append(watcher)
        probe = asyncio.create_task(self.relay_probe.run(self.stop_event), name="relay-probe")
        self._tasks.append(probe)
        if self.oauth.certificate is not None:  # warned about at start and daily (router/oauth)
            certificate = self.oauth.watch_certificate(self.stop_event)
            self._tasks.append(asyncio.create_task(certificate, name="oauth-certificate"))

    async def _start_console(self) -> None:
        """Serve the operations console when ROUTER_CONSOLE is set (router/console)."""
        if self.settings.console_bind is not None:
            from router.console.server import start_console

            loop = asyncio.get_running_loop()
            self.console = await start_console(
                self.settings,
                self.journal,
                rules=lambda: self.rules,
                rules_loaded_at=lambda: self.rules_loaded_at,
                wake=lambda: loop.call_soon_threadsafe(self.stages.requeued),
            )

    def _oauth_changed(self) -> None:
        """Keep the OAuth health where `referral-router status` reads it (off the event loop,
        best effort: a token renewal never waits for the journal, nor fails with it)."""
        self.oauth.record_soon(self.journal)

    def refresh_gauges(self) -> None:
        """Bring the gauges up to date from the journal and the inbox (on each scrape)."""
        self._update_gauges()
        state = self.inbox.state if self.inbox is not None else "none"
        self.metrics.inbox_connected.set(1 if state in ("listening", "connected", "idle") else 0)

    # --- end operations ---

    def inbox_state(self, state: str) -> None:
        """An IMAP or Graph inbox's state changed."""
        self.metrics.inbox_connected.set(1 if state in ("connected", "idle") else 0)

    async def run_once(self) -> None:
        """Process everything that is queued and due now, then return."""
        await self.stages.run_once()
        self._update_gauges()

    def start_pipeline(self) -> asyncio.Task[None]:
        """Run deciding, delivery and housekeeping, each under the supervisor (restarted with
        backoff after any error, which /healthz shows); the task ends once all three have."""
        loops = {
            "pipeline": lambda: self.stages.deciding(self.stop_event),
            "delivery": lambda: self.stages.delivering(self.stop_event),
            "housekeeping": self._housekeeping,
        }
        tasks = [self.supervisor.start(name, loop) for name, loop in loops.items()]
        return asyncio.create_task(_all(tasks), name="loops")

    async def run(self) -> None:
        """Work until `stop_event` is set: deciding and delivering overlap
        (`router.service.stages`), beside housekeeping (gauges, retention). An error in one
        stops all three and is raised (tests; `serve` supervises each loop instead, see
        `start_pipeline`)."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.stages.deciding(self.stop_event))
                group.create_task(self.stages.delivering(self.stop_event))
                group.create_task(self._housekeeping())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def _housekeeping(self) -> None:
        """Gauges and retention: after messages finish (at most every 30 s), and when idle."""
        while not self.stop_event.is_set():
            await wait_any(self.stages.finished, self.stop_event, seconds=_IDLE_WAKE_SECONDS)
            self.stages.finished.clear()
            # In a thread: a query waits for the journal's lock while a commit holds it.
            await asyncio.to_thread(self._update_gauges)
            await asyncio.to_thread(self.retention.maybe_purge)
            await self.monthly.run_once()
            await self.backfill.run_once()  # figures of decisions made before they were kept
            self.supervisor.ok("housekeeping")
            await wait_any(self.stop_event, seconds=_HOUSEKEEPING_SECONDS)

    def _update_gauges(self) -> None:
        gauges = self.journal.gauges()
        now = time.time()
        self.metrics.quarantine_size.set(gauges.quarantined)
        self._update_node_gauges(gauges)
        oldest, undecided = gauges.oldest_unsent, gauges.oldest_undecided
        self.metrics.oldest_undelivered.set(0 if oldest is None else now - oldest)
        self.metrics.oldest_undecided.set(0 if undecided is None else max(0.0, now - undecided))

    def _update_node_gauges(self, gauges: Gauges) -> None:
        """What this node holds (several routers on one journal): labelled with its name."""
        node = self.journal.node
        self.metrics.node.labels(node).set(1)
        self.metrics.claims.labels(node, "message").set(gauges.held_messages)
        self.metrics.claims.labels(node, "mail").set(gauges.held_mail)
        watching = bool(getattr(self.inbox, "holding", False))  # an IMAP mailbox lease
        self.metrics.watching.labels(node).set(1 if watching else 0)

    async def close(self) -> None:
        """Stop intake, let in-flight work end (bounded), release everything."""
        self.stop_event.set()
        if self.http is not None:  # operations: the endpoint goes before the journal closes
            await self.http.stop()
        if self.console is not None:
            await self.console.stop()
        inbox = self.inbox
        if inbox is not None and hasattr(inbox, "stop"):
            await inbox.stop()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, self.settings.shutdown_seconds / 2)
        await self.relay.close()
        self.sandbox.close()
        # Mail the relay accepted whose sent mark failed: recorded now if the journal is back
        # (else it is sent again after the restart, as after a kill).
        with contextlib.suppress(Exception):
            await self.delivery.record_unrecorded()
        with contextlib.suppress(asyncio.CancelledError):
            await self.oauth.recorded()
        self.journal.close()


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks)

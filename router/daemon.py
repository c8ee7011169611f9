"""The daemon: wires inbox, journal, pipeline and relay together and runs until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from typing import Protocol

import structlog

from router.aio import wait_any
from router.delivery.pool import pooled
from router.delivery.relay import Relay, make_relay
from router.http import OpsServer, RelayHealth
from router.journal.store import Journal
from router.metrics import Metrics
from router.pipeline import Pipeline
from router.reload import RulesWatcher
from router.routing import RoutingEngine
from router.rules.model import Rules
from router.sandbox import AnalysisSandbox
from router.settings import Settings
from router.stages import Stages

log = structlog.get_logger(__name__)

_IDLE_WAKE_SECONDS = 30.0
_PURGE_EVERY_SECONDS = 3600.0
_HOUSEKEEPING_SECONDS = 1.0  # a burst's finished messages are looked at once a second


class Inbox(Protocol):
    """What the daemon needs of an inbox (SMTP listener or IMAP IDLE)."""

    @property
    def state(self) -> str: ...


class Daemon:
    """One running router. `start`, then `run` until the stop event, then `close`.

    Tests use `run_once` to process what is queued and return (burst mode).
    """

    def __init__(self, settings: Settings, rules: Rules, *, relay: Relay | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.journal = Journal(
            settings.state_dir,
            processed_folder=settings.processed_folder,
            failed_folder=settings.failed_folder,
        )
        self.relay = relay or pooled(make_relay(settings))  # a few kept SMTP connections
        self.sandbox = AnalysisSandbox(timeout=settings.parse_timeout_seconds)
        self.pipeline = Pipeline(
            settings,
            self.journal,
            self.relay,
            RoutingEngine(rules, review_address=settings.review_address),
            self.sandbox,
            self.metrics,
        )
        self.stages = Stages(self.pipeline)  # the deciding and delivering loops
        self.wake = asyncio.Event()
        self.stop_event = asyncio.Event()
        self.inbox: Inbox | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_purge = 0.0
        # --- operations (router/http.py, router/reload.py) ---
        self.relay_health = RelayHealth(self.pipeline.relay)  # remembers recent send results
        self.pipeline.relay = self.relay_health
        self.http: OpsServer | None = None
        self.rules_watcher = RulesWatcher(
            settings.rules_dir,
            current=lambda: self.rules,
            apply=self.set_rules,
            metrics=self.metrics,
        )
        # --- end operations ---

    @property
    def rules(self) -> Rules:
        return self.pipeline.engine.rules

    def set_rules(self, rules: Rules) -> None:
        """Swap in a new rules version; decisions already made keep the version they used."""
        self.pipeline.engine = RoutingEngine(rules, review_address=self.settings.review_address)

    def _stored(self) -> None:
        self.metrics.received.labels(self.settings.inbox_endpoint.scheme).inc()
        self.stages.stored()
        self.wake.set()

    async def start(self) -> None:
        """Open the inbox. Raises OSError when the listener cannot bind."""
        self.sandbox.start()  # a warm worker, started off the event loop: /readyz does not wait
        await self._start_operations()
        endpoint = self.settings.inbox_endpoint
        if endpoint.scheme == "smtp":
            from router.inbox.smtp import SmtpInbox

            smtp = SmtpInbox(
                endpoint.host,
                endpoint.port,
                self.journal,
                max_message_bytes=self.settings.max_message_bytes,
                on_stored=self._stored,
            )
            await smtp.start()
            self.inbox = smtp
            self.metrics.inbox_connected.set(1)
        else:
            from router.inbox.imap import ImapInbox

            imap = ImapInbox(
                self.settings,
                self.journal,
                on_stored=self._stored,
                on_state=self._inbox_state,
            )
            self.pipeline.on_decided = imap.notify_settle
            self.inbox = imap
            self._tasks.append(asyncio.create_task(imap.run(self.stop_event), name="imap"))

    # --- operations (router/http.py, router/reload.py) ---
    async def _start_operations(self) -> None:
        """Serve /metrics, /healthz, /readyz when settings.http is set; watch the rules."""
        bind = self.settings.http_bind
        if bind is not None:
            self.http = OpsServer(self, *bind)
            await self.http.start()
        watcher = asyncio.create_task(self.rules_watcher.run(self.stop_event), name="rules")
        self._tasks.append(watcher)

    def refresh_gauges(self) -> None:
        """Bring the gauges up to date from the journal and the inbox (on each scrape)."""
        self._update_gauges()
        state = self.inbox.state if self.inbox is not None else "none"
        self.metrics.inbox_connected.set(1 if state in ("listening", "connected", "idle") else 0)

    # --- end operations ---

    def _inbox_state(self, state: str) -> None:
        self.metrics.inbox_connected.set(1 if state in ("connected", "idle") else 0)

    async def run_once(self) -> None:
        """Process everything that is queued and due now, then return."""
        await self.pipeline.run_once()
        self._update_gauges()

    async def run(self) -> None:
        """Work until `stop_event` is set: deciding and delivering overlap (`router.stages`),
        beside housekeeping (gauges, retention)."""
        await asyncio.gather(
            self.stages.deciding(self.stop_event),
            self.stages.delivering(self.stop_event),
            self._housekeeping(),
        )

    async def _housekeeping(self) -> None:
        """Gauges and retention: after messages finish (at most every 30 s), and when idle."""
        while not self.stop_event.is_set():
            await wait_any(self.stages.finished, self.stop_event, seconds=_IDLE_WAKE_SECONDS)
            self.stages.finished.clear()
            self._update_gauges()
            self._maybe_purge()
            await wait_any(self.stop_event, seconds=_HOUSEKEEPING_SECONDS)

    def _update_gauges(self) -> None:
        rows = self.journal.query(
            "SELECT (SELECT COUNT(*) FROM messages WHERE state = 'quarantined') AS q,"
            " (SELECT MIN(created_at) FROM outbox WHERE state = 'pending') AS oldest"
        )
        self.metrics.quarantine_size.set(rows[0]["q"])
        oldest = rows[0]["oldest"]
        self.metrics.oldest_undelivered.set(0 if oldest is None else time.time() - oldest)

    def _maybe_purge(self) -> None:
        now = time.time()
        if now - self._last_purge < _PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        purged = self.journal.purge(now - self.settings.retention_days * 86400)
        if purged:
            log.info("purged", messages=purged, retention_days=self.settings.retention_days)

    async def close(self) -> None:
        """Stop intake, let in-flight work end (bounded), release everything."""
        self.stop_event.set()
        if self.http is not None:  # operations: the endpoint goes before the journal closes
            await self.http.stop()
        inbox = self.inbox
        if inbox is not None and hasattr(inbox, "stop"):
            await inbox.stop()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, self.settings.shutdown_seconds / 2)
        await self.relay.close()
        self.sandbox.close()
        self.journal.close()


async def _serve(settings: Settings, rules: Rules) -> int:
    try:
        daemon = Daemon(settings, rules)
    except (OSError, ValueError) as exc:
        # An unwritable state directory, a CA file that does not load: say so plainly.
        print(f"referral-router: cannot start: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stop_event.set)
    try:
        await daemon.start()
    except (OSError, ValueError) as exc:
        print(f"referral-router: cannot start: {exc}", file=sys.stderr)
        await daemon.close()
        return 2
    loop.add_signal_handler(signal.SIGHUP, daemon.rules_watcher.request)  # operations: reload
    log.info(
        "started",
        inbox=settings.inbox_endpoint.scheme,
        relay=daemon.relay.describe(),
        rules=rules.version[:12],
        areas=len(rules.areas),
    )
    worker = asyncio.create_task(daemon.run(), name="pipeline")
    await daemon.stop_event.wait()
    log.info("stopping")
    if daemon.inbox is not None and hasattr(daemon.inbox, "stop"):
        await daemon.inbox.stop()  # stop intake first
    try:
        await asyncio.wait_for(worker, settings.shutdown_seconds)
    except TimeoutError:
        log.warning("stop_timeout", seconds=settings.shutdown_seconds)
    await daemon.close()
    log.info("stopped")
    return 0


def serve(settings: Settings) -> int:
    """`referral-router serve`: load rules (a clear error if they are bad) and run."""
    from router.cli import CommandError, _load_rules

    rules = _load_rules(settings.rules_dir)
    if not rules.areas:
        raise CommandError(f"no areas in {settings.rules_dir}")
    return asyncio.run(_serve(settings, rules))

"""Wires Microsoft Graph into the daemon: one throttling gate per mailbox, shared by the
graph:// inbox and relay; their metrics and the throttling `status` shows; the inbox under the
same mailbox lease as IMAP (one watcher per mailbox among routers sharing a journal)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from prometheus_client import Counter, Gauge

from router.graph.client import MailboxGates, make_client
from router.journal.records import JournalUnavailable
from router.oauth.base import TokenSource
from router.send.relay import Relay
from router.send.relays import make_relay
from router.settings import Settings

if TYPE_CHECKING:
    from router.inbox.graph import GraphInbox
    from router.inbox.leader import MailboxLease
    from router.journal.protocol import Journal
    from router.metrics import Metrics
    from router.service.daemon import Daemon

log = structlog.get_logger(__name__)


class GraphWiring:
    """The daemon's Graph pieces (idle when neither inbox nor relay is graph://)."""

    def __init__(self, journal: Journal, metrics: Metrics) -> None:
        self.gates = MailboxGates()
        self.store = journal.graph_sync()
        self.inbox: GraphInbox | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.throttled = Counter(
            "router_graph_throttled",
            "429, 503 and 504 answers from Microsoft Graph",
            ["role"],
            registry=metrics.registry,
        )
        age = Gauge(
            "router_graph_last_delta_age_seconds",
            "Seconds since the graph:// inbox last finished a delta round (-1: never)",
            registry=metrics.registry,
        )
        age.set_function(self._delta_age)

    def _delta_age(self) -> float:
        last = None if self.inbox is None else self.inbox.last_delta
        return -1.0 if last is None else time.time() - last

    def on_throttled(self, role: str, key: str) -> Callable[[], None]:
        """What a Graph client calls after each 429/503/504: counted, and kept for `status`."""

        def note() -> None:
            self.throttled.labels(role).inc()
            task = asyncio.get_running_loop().create_task(self._record(key))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        return note

    async def _record(self, key: str) -> None:
        try:
            await self.store.record_throttled(key)
        except JournalUnavailable:
            log.debug("graph.throttle_not_recorded")  # a count for status only

    def make_relay(self, settings: Settings, tokens: TokenSource | None) -> Relay:
        """The relay `ROUTER_RELAY` names; a graph:// one shares its mailbox's gate."""
        throttled = self.on_throttled("relay", f"graph:{settings.relay_endpoint.user}")
        return make_relay(settings, tokens, gates=self.gates, on_throttled=throttled)

    def start_inbox(self, daemon: Daemon) -> MailboxLease:
        """The graph:// inbox, run under the mailbox lease by the daemon's supervisor."""
        from router.inbox.graph import GraphInbox, sync_key
        from router.inbox.leader import MailboxLease

        settings, tokens = daemon.settings, daemon.oauth.inbox
        endpoint = settings.inbox_endpoint
        assert endpoint.user is not None and tokens is not None  # graph:// implies OAuth 2.0
        key = sync_key(endpoint.user, endpoint.folder)
        client = make_client(
            settings, tokens, self.gates[endpoint.user], self.on_throttled("inbox", key)
        )
        inbox = GraphInbox(
            settings,
            daemon.journal,
            client,
            links=self.store,
            starts=daemon.journal.mailbox_starts(),
            on_stored=daemon.stored,
            on_state=daemon.inbox_state,
        )
        self.inbox = inbox
        daemon.settle_request = inbox.notify_settle
        lease = MailboxLease(
            daemon.journal,
            settings.inbox,
            inner_state=lambda: inbox.state,
            inner_detail=inbox.detail,
        )
        daemon.add_task(
            daemon.supervisor.start("graph", lambda: lease.run(inbox.run, daemon.stop_event))
        )
        return lease

"""Prometheus metrics of one daemon, in a registry of its own (tests run several daemons)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from router.core.kinds import MAIL_KINDS
from router.models import Outcome

RELOAD_RESULTS = ("ok", "invalid")


class Metrics:
    """Every figure the daemon exports on /metrics. Labels never carry personal data.

    The label sets known at start (each kind of mail, each reload result) are created at
    zero, so their series exist before the first event and alerts can be written on them.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "router_messages_received", "Messages stored in the journal", ["inbox"], registry=r
        )
        self.decisions = Counter(
            "router_decisions", "Decisions made", ["outcome", "area"], registry=r
        )
        self.sent = Counter(
            "router_mail_sent",
            "Mails sent, by kind: forward (to a force), incomplete_notice, review, ack, alert",
            ["kind"],
            registry=r,
        )
        self.failed = Counter(
            "router_mail_failed", "Mails that failed for good, by kind", ["kind"], registry=r
        )
        self.retries = Counter("router_mail_retries", "Transient delivery failures", registry=r)
        self.relay_refusals = Counter(
            "router_relay_refusals",
            "Sends the relay refused at the session (it refused the router, not one mail)",
            registry=r,
        )
        self.quarantined = Counter(
            "router_messages_quarantined", "Messages set aside with an error", registry=r
        )
        self.quarantine_size = Gauge(
            "router_quarantine_size", "Messages in quarantine now", registry=r
        )
        self.oldest_undelivered = Gauge(
            "router_oldest_undelivered_seconds",
            "Age of the oldest mail not yet sent (0 when none)",
            registry=r,
        )
        self.latency = Histogram(
            "router_arrival_to_forward_seconds",
            "From storing a message to its forward to a force being accepted by the relay",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
            registry=r,
        )
        self.inbox_connected = Gauge(
            "router_inbox_connected", "1 when the inbox is connected or listening", registry=r
        )
        # Several routers on one journal: which node this is and the work it holds now.
        self.node = Gauge(
            "router_node", "1, labelled with this router's node name", ["node"], registry=r
        )
        self.claims = Gauge(
            "router_claims",
            "Messages and mails this node has claimed",
            ["node", "kind"],
            registry=r,
        )
        self.watching = Gauge(
            "router_mailbox_watching",
            "1 while this node watches the IMAP mailbox",
            ["node"],
            registry=r,
        )
        self.rules_reloads = Counter(
            "router_rules_reloads", "Rules reload attempts", ["result"], registry=r
        )
        self.task_restarts = Counter(
            "router_task_restarts",
            "Long-running loops restarted after an unexpected error",
            ["task"],
            registry=r,
        )
        self.oldest_undecided = Gauge(
            "router_oldest_undecided_seconds",
            "Age of the oldest stored message not yet decided (0 when none)",
            registry=r,
        )
        self.smtp_refused = Counter(
            "router_smtp_connections_refused",
            "Listener connections refused at connect, by reason",
            ["reason"],
            registry=r,
        )
        for kind in MAIL_KINDS:
            self.sent.labels(kind)
            self.failed.labels(kind)
        for result in RELOAD_RESULTS:
            self.rules_reloads.labels(result)

    def start(self, inbox: str, areas: Iterable[str]) -> None:
        """Create at zero the series a daemon knows at start: its inbox, and each outcome
        with each area of its rules (and `none`)."""
        self.received.labels(inbox)
        labels = (*areas, "none")
        for outcome in Outcome:
            for area in labels:
                self.decisions.labels(outcome.value, area)

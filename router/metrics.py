"""Prometheus metrics of one daemon, in a registry of its own (tests run several daemons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every figure the daemon exports on /metrics. Labels never carry personal data."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "router_messages_received", "Messages stored in the journal", ["inbox"], registry=r
        )
        self.decisions = Counter(
            "router_decisions", "Decisions made", ["outcome", "area"], registry=r
        )
        self.sent = Counter("router_mail_sent", "Mails sent by kind", ["kind"], registry=r)
        self.failed = Counter(
            "router_mail_failed", "Mails that failed for good, by kind", ["kind"], registry=r
        )
        self.retries = Counter("router_mail_retries", "Transient delivery failures", registry=r)
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
            "From storing a message to its forward being accepted by the relay",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
            registry=r,
        )
        self.inbox_connected = Gauge(
            "router_inbox_connected", "1 when the inbox is connected or listening", registry=r
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

"""`referral-router status`: counts from the journal, nothing personal.

What it prints carries no personal data: no subjects, no form values, no sender addresses;
addresses in error texts lose their local part.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from router.commands.journal_access import open_journal
from router.core.kinds import MAIL_KINDS
from router.core.redaction import redact
from router.errors import EXIT_OK
from router.journal.protocol import Journal
from router.journal.records import NodeSeen
from router.models import MessageState, Outcome
from router.oauth.sources import format_health, recorded_health
from router.send.health import age
from router.settings import Settings

MESSAGE_STATES = tuple(state.value for state in MessageState)
OUTCOMES = tuple(outcome.value for outcome in Outcome)


@dataclass(frozen=True)
class Quarantined:
    """One message set aside: its id, when it came, its references and why."""

    id: str
    received_at: str
    references: list[str]
    reason: str


@dataclass(frozen=True)
class Status:
    """Counts from the journal, nothing personal."""

    journal: str
    messages: dict[str, int]
    outcomes: dict[str, int]
    # Mail the relay accepted, by kind, and referrals with one kind of mail sent more than
    # once (a duplicate send shows here).
    sent: dict[str, int]
    sent_more_than_once: int
    outbox_pending: int
    outbox_retrying: int
    outbox_failed: int
    oldest_undecided_seconds: float | None
    oldest_unsent_seconds: float | None
    last_rules_version: str | None
    quarantine: list[Quarantined]
    nodes: list[NodeSeen]
    oauth: dict[str, Any] | None = None  # the daemon's last OAuth 2.0 health (router/oauth)
    # Each graph:// folder or mailbox: last delta round, throttling seen (router/inbox/graph).
    graph: list[dict[str, Any]] = field(default_factory=list)


def read_status(journal: Journal, now: float | None = None) -> Status:
    """Gather the counts `status` prints."""
    now = time.time() if now is None else now
    counts = journal.counts()
    return Status(
        journal=journal.where,
        messages={**dict.fromkeys(MESSAGE_STATES, 0), **counts.messages},
        outcomes={**dict.fromkeys(OUTCOMES, 0), **counts.outcomes},
        sent={**dict.fromkeys(MAIL_KINDS, 0), **counts.sent},
        sent_more_than_once=counts.sent_more_than_once,
        outbox_pending=counts.outbox_pending,
        outbox_retrying=counts.outbox_retrying,
        outbox_failed=counts.outbox_failed,
        oldest_undecided_seconds=age(counts.oldest_undecided, now),
        oldest_unsent_seconds=age(counts.oldest_unsent, now),
        last_rules_version=counts.last_rules_version,
        quarantine=[
            Quarantined(
                id=row.id,
                received_at=f"{datetime.fromtimestamp(row.received_at, UTC):%Y-%m-%d %H:%M:%S}Z",
                references=list(row.references),
                reason=redact(row.last_error or "(no reason recorded)"),
            )
            for row in counts.quarantined
        ],
        nodes=journal.nodes_seen(),
        oauth=recorded_health(journal),
        graph=[
            {
                "mailbox": state.mailbox,
                "delta_link_kept": state.delta_link is not None,
                "last_delta_seconds": age(state.synced_at, now),
                "throttled": state.throttled,
                "last_throttled_seconds": age(state.throttled_at, now),
            }
            for state in journal.graph_sync().all_states()
        ],
    )


def status(settings: Settings, out: TextIO, *, as_json: bool = False) -> int:
    """`referral-router status [--json]`: counts by state and outcome, outbox, quarantine.

    Raises:
        CommandError: no journal in the state directory.
    """
    journal = open_journal(settings)
    try:
        report = read_status(journal)
    finally:
        journal.close()
    if as_json:
        out.write(json.dumps(asdict(report), indent=2) + "\n")
    else:
        out.write(format_status(report))
    return EXIT_OK


def format_status(report: Status) -> str:
    """The readable form of `status`."""
    lines = [
        f"journal     {report.journal}",
        "messages    " + _counts(report.messages),
        "decisions   " + _counts(report.outcomes),
        "sent        "
        + _counts(report.sent)
        + (
            f" ({report.sent_more_than_once} referral(s) with one kind sent more than once)"
            if report.sent_more_than_once
            else ""
        ),
        f"outbox      pending {report.outbox_pending} ({report.outbox_retrying} retrying),"
        f" failed {report.outbox_failed}",
        f"oldest      undecided message {_duration(report.oldest_undecided_seconds)},"
        f" unsent mail {_duration(report.oldest_unsent_seconds)}",
        f"rules       {(report.last_rules_version or 'none yet')[:12]} (last decision)",
        f"quarantine  {len(report.quarantine)}",
    ]
    for item in report.quarantine:
        references = ", ".join(item.references) or "no decision"
        lines.append(f"  {item.id}  received {item.received_at}  {references}")
        lines.append(f"    {item.reason}")
    if report.quarantine:
        lines.append("  (fix the cause, then: referral-router reprocess ID)")
    lines.append(f"nodes       {len(report.nodes)} seen in the last 10 minutes")
    now = time.time()
    for node in report.nodes:
        watching = ", ".join(node.watching) or "no mailbox"
        lines.append(
            f"  {node.name}  heartbeat {_duration(age(node.last_heartbeat, now))}"
            f"  holds {node.claimed_messages} message(s), {node.claimed_mail} mail(s),"
            f" watches {watching}"
        )
        if node.watcher_note:
            lines.append(f"    {node.watcher_note}")
    if report.oauth is not None:
        lines.extend(format_health(report.oauth))
    for graph in report.graph:
        throttled, last = graph["throttled"], _duration(graph["last_throttled_seconds"])
        lines.append(
            f"graph       {graph['mailbox']}: last delta {_duration(graph['last_delta_seconds'])}"
            f", delta link {'kept' if graph['delta_link_kept'] else 'none (a new delta next)'}"
            + (
                f", throttled {throttled} time(s), last {last}"
                if throttled
                else ", never throttled"
            )
        )
    return "\n".join(lines) + "\n"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h ago"
    if hours:
        return f"{hours}h {minutes}m ago"
    return f"{minutes}m {secs}s ago" if minutes else f"{secs}s ago"

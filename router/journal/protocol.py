"""The `Journal` contract: what the pipeline, the inboxes, the daemon and admin commands use.

Two implementations: `SqliteJournal` (embedded, one owner, files in ROUTER_STATE_DIR) and
`PostgresJournal` (several routers share it: rows and bytes in PostgreSQL, work claimed
with leases). Both are synchronous: the pipeline calls them between awaits, and the
`InboxSink` methods (async) run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from router.journal.records import (
    Gauges,
    JournalCounts,
    NewMail,
    NodeSeen,
    OutboxItem,
    Row,
    StoredMessage,
)
from router.models import MessageState

if TYPE_CHECKING:
    from router.core.report import CountedDecision
    from router.journal.audit import AuditTrail
    from router.journal.console import ConsoleQueries
    from router.journal.graph_sync import GraphSyncStore
    from router.journal.mailbox_start import MailboxStarts
from router.journal.sink import InboxSink


class Journal(InboxSink, Protocol):
    """The durable store of every message, decision and outgoing mail.

    Every write is one transaction; every step can be repeated after a crash. Methods may
    raise `JournalUnavailable` (PostgreSQL only) when the database cannot be reached.
    The `InboxSink` methods are documented there.
    """

    node: str  # this router's name among those sharing the journal
    where: str  # where the journal is, for `status` (a path or a URL without password)
    shared: bool  # several nodes may use it (PostgreSQL); False: this process owns it

    # --- intake ---
    def accept_sync(
        self,
        raw: bytes,
        *,
        source_key: str | None = None,
        envelope_recipients: Sequence[str] = (),
    ) -> str:
        """Store a message durably and queue it; idempotent per `source_key` (a key another
        node stored first returns that node's id, and nothing is stored twice)."""
        ...

    def raw_message(self, message_id: str) -> bytes | None:
        """A stored message's bytes; None once purged."""
        ...

    # --- decisions ---
    def received(self, limit: int = 100) -> list[StoredMessage]:
        """Messages stored but not yet decided, oldest first, claimed for this node (with a
        lease, renewed by `heartbeat`, on a shared journal: others skip them meanwhile)."""
        ...

    def count_attempt(self, message_id: str) -> int:
        """Count one more attempt *before* the daemon itself handles what the worker read
        of a message (composing, recording), so a message that crashes the daemon there
        again and again is bounded; returns the attempts so far. A daemon killed while the
        message was in the worker (which a message cannot crash: see
        `router.decide.worker`) does not count against it."""
        ...

    def record_decisions(
        self,
        message_id: str,
        decisions: Sequence[tuple[str, dict[str, Any]]],
        mails: Sequence[NewMail],
        *,
        rules_version: str,
        quarantine_reason: str | None = None,
        figures: Sequence[dict[str, str]] = (),
    ) -> None:
        """Record a message's decisions and every mail they cause, atomically, once: if the
        message is no longer `received` (decided after a crash, or by another node) nothing
        is recorded. `figures` (one per decision: age_band, gender, sector) are kept for
        `report` (see `router.journal.stats`); each change writes its audit event
        (`router.journal.events`) in the same transaction."""
        ...

    def quarantine(self, message_id: str, error: str, *, alert: NewMail | None = None) -> None:
        """Set one message aside with its error; it is never dropped (see `reprocess`).
        `alert`, the mail telling a person, is queued in the same transaction."""
        ...

    def reprocess(self, message_id: str, *, by: str | None = None) -> bool:
        """Put a quarantined message back in the queue with a fresh attempt count, or, when
        it was decided and a mail failed for good, retry those mails. False: nothing to do.
        `by`: who asked (the audit trail records it; default: this process's OS user)."""
        ...

    def count_ack(self, sender: str, limit: int) -> bool:
        """Count one acknowledgment to `sender` today; False when the daily cap is reached.
        A `limit` of 0 means no limit. Atomic, so the cap counts across nodes."""
        ...

    # --- outbox ---
    def add_mail(self, message_id: str, mail: NewMail) -> str:
        """Queue one more mail for a message after its decision (alerts about failures)."""
        ...

    def outgoing_data(self, mail_id: str) -> bytes | None:
        """A spooled mail's bytes; None once purged."""
        ...

    def due_mail(self, now: float, limit: int = 50) -> list[OutboxItem]:
        """Pending mail due by `now` that may go (an ack waits for its forward), claimed for
        this node on a shared journal."""
        ...

    def next_due(self) -> float | None:
        """When the next mail falls due (on a shared journal: at most a few seconds away,
        since other nodes add work); None when nothing waits."""
        ...

    def mark_sent(self, mail_id: str, reply: str | None = None) -> None:
        """The relay accepted the mail; `reply` is what it answered (for the audit trail)."""
        ...

    def mark_retry(self, mail_id: str, error: str, next_attempt_at: float) -> None: ...

    def mark_failed(
        self,
        mail_id: str,
        error: str,
        *,
        quarantine: str | None = None,
        alert: NewMail | None = None,
    ) -> None:
        """A mail refused for good. Its referral's waiting acknowledgment is held back too
        (failed, so `reprocess` sends both once the cause is fixed). In the same
        transaction: its message is quarantined with the reason `quarantine` (when given)
        and `alert` is queued, so none of them is recorded without the others."""
        ...

    def finish_messages(self) -> list[str]:
        """Mark decided messages with no mail left to send as done; returns their ids.

        A failed forward or review quarantines its message, so a failed mail still here is
        an acknowledgment or an alert: nothing more will happen to it, and the message must
        not wait for ever (its stored copy would never be purged).
        """
        ...

    def mail_by_message_id_header(self, header: str) -> Row | None:
        """The outbox row of a mail we sent, found by its Message-ID (for bounces)."""
        ...

    def mark_bounced(self, mail_id: str) -> None: ...

    # --- retention ---
    def purge(self, older_than: float) -> int:
        """Delete stored messages, spooled mail and personal traces of finished messages
        done before a time; rows keep reference, outcome, area and timestamps. Returns how
        many messages were purged (see `router.journal.retention`)."""
        ...

    # --- nodes and operations ---
    def start_heartbeat(self) -> None:
        """Beat (`heartbeat`) every few seconds in a thread until `close` (a serving node)."""
        ...

    def heartbeat(self) -> None:
        """Say this node is alive and renew the leases of the messages and mail it holds
        (on the database's clock)."""
        ...

    def hold_mailbox(self, mailbox: str) -> bool:
        """Become (or stay) the one watcher of an IMAP mailbox; False while another live
        node holds it. The watcher renews it by calling this again while it works (not the
        heartbeat: a watcher that cannot log in must be able to let the lease lapse)."""
        ...

    def release_mailbox(self, mailbox: str) -> None: ...

    def note_watcher(self, note: str | None) -> None:
        """Record (None: clear) why this node gave its mailbox up, for `status`."""
        ...

    def nodes_seen(self, within: float = 600.0) -> list[NodeSeen]:
        """The nodes whose heartbeat is at most `within` seconds old, with what they hold."""
        ...

    def probe(self) -> None:
        """A tiny durable write, for health checks. Raises what the write raised."""
        ...

    # --- operations: gauges, health, status ---
    def recent_copy(
        self, raw: bytes, window: float = ..., envelope_recipients: Sequence[str] = ()
    ) -> str | None:
        """The id of a message with the same Message-ID and SHA-256 as `raw` stored within
        `window` seconds (a sender sending again after a lost 250); None when there is none.
        `envelope_recipients` of the copy are added to that message's (recorded for them too:
        the same bytes may come again for another inbox address)."""
        ...

    def mailbox_starts(self) -> MailboxStarts:
        """The first-connection records of IMAP mailboxes (`ROUTER_IMAP_START`)."""
        ...

    # --- accountability: the audit trail and the figures of `report` ---
    def audit_trail(self, wanted: str) -> AuditTrail | None:
        """The events of one message, by its id or a referral reference; None if unknown."""
        ...

    def figures_between(self, start: float, end: float) -> list[CountedDecision]:
        """The figures kept at decision time for decisions received in [start, end)."""
        ...

    def claim_report_month(self, month: str, lease_seconds: float) -> bool:
        """Claim the mailing of one month's report for this node; False when it was sent,
        or another live node has it."""
        ...

    def mark_report_sent(self, month: str, reply: str | None) -> None:
        """Record that a month's report was mailed (with the relay's reply)."""
        ...

    def report_sent_at(self, month: str) -> float | None:
        """When a month's report was mailed; None if it was not."""
        ...

    def figures_to_refine(self, limit: int = 20) -> list[tuple[str, str, int, float]]:
        """(reference, message id, form position, received at) of figures backfilled on
        upgrade that the stored message can still complete (age band, gender, sector)."""
        ...

    def refine_figures(self, reference: str, figures: dict[str, str] | None) -> None:
        """Complete one backfilled decision's figures (None: nothing more to learn) and take
        it off the list."""
        ...

    def console_queries(self) -> ConsoleQueries:
        """The operations console's reads: overview, referral list, trail, actions."""
        ...

    def graph_sync(self) -> GraphSyncStore:
        """The delta links and first-connection state of Microsoft Graph inboxes."""
        ...

    def pending_mail_count(self) -> int:
        """Mails waiting to be sent (the deciding loop's bound)."""
        ...

    def oldest_undecided(self) -> float | None:
        """When the oldest stored, undecided message arrived (epoch seconds), if any."""
        ...

    def gauges(self) -> Gauges:
        """The quarantine's size, the oldest waiting work and this node's claims."""
        ...

    def received_at(self, message_id: str) -> float | None:
        """When a message was stored (epoch seconds); None if unknown."""
        ...

    def give_back_attempt(self, message_id: str, attempts: int) -> None:
        """Undo `count_attempt`'s count (back to `attempts`) for an attempt the journal or
        the disk cut short; nothing when the count moved on meanwhile."""
        ...

    def message_state(self, message_id: str) -> MessageState | None:
        """A message's state; None for an unknown id."""
        ...

    def message_for_reference(self, reference: str) -> str | None:
        """The message id a referral reference (`PR-...`, any case) was decided for."""
        ...

    def schema_version(self) -> int:
        """The newest migration applied to this journal."""
        ...

    def meta(self, key: str) -> str | None:
        """A small named value the daemon keeps for `status` (the OAuth health)."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Keep a small named value, durably (see `meta`)."""
        ...

    def counts(self) -> JournalCounts:
        """Everything `status` shows: messages, decisions, mail and the quarantine."""
        ...

    def close(self) -> None: ...

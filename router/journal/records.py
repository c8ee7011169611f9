"""The values the journal hands out and takes in: stored messages, outgoing mail, identities."""

from __future__ import annotations

import errno
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.core.compose import Outgoing

# A row read back from the journal: column name -> value (both backends give this shape).
Row = dict[str, Any]


@dataclass(frozen=True)
class StoredMessage:
    """A message row as the pipeline needs it."""

    id: str
    state: str
    attempts: int
    envelope_rcpts: tuple[str, ...]
    oversize: bool
    size: int
    message_id_header: str | None
    source_key: str | None
    received_at: float = 0.0


@dataclass(frozen=True)
class OutboxItem:
    """One outgoing mail waiting to be sent (its bytes are in the journal's spool)."""

    id: str
    message_id: str
    reference: str | None
    kind: str
    sender: str
    recipients: tuple[str, ...]
    message_id_header: str
    attempts: int


@dataclass(frozen=True)
class NewMail:
    """An outgoing mail to record with a decision (see `Journal.record_decisions`)."""

    kind: str  # router.core.kinds.MAIL_KINDS
    reference: str | None
    sender: str
    recipients: tuple[str, ...]
    message_id_header: str
    data: bytes


@dataclass(frozen=True)
class NodeSeen:
    """One router seen recently on a shared journal: its name, heartbeat and what it holds."""

    name: str
    last_heartbeat: float
    pid: int | None
    claimed_messages: int
    claimed_mail: int
    watching: tuple[str, ...]
    # Why it gave its mailbox up (it could not log in), until it next logs in.
    watcher_note: str | None = None


@dataclass(frozen=True)
class Gauges:
    """What the daemon's gauges show: the quarantine, the oldest waiting work, this node's
    claims (times are epoch seconds, None when nothing waits)."""

    quarantined: int
    oldest_unsent: float | None
    oldest_undecided: float | None
    held_messages: int
    held_mail: int


@dataclass(frozen=True)
class QuarantinedRow:
    """A quarantined message: its id, arrival, the references decided for it, its error."""

    id: str
    received_at: float
    references: tuple[str, ...]
    last_error: str | None


@dataclass(frozen=True)
class JournalCounts:
    """Everything `status` counts, read from the journal in one go."""

    messages: dict[str, int]  # by MessageState
    outcomes: dict[str, int]  # decisions by Outcome
    sent: dict[str, int]  # sent mail by kind
    sent_more_than_once: int  # (reference, kind) pairs sent twice or more, alerts aside
    outbox_pending: int
    outbox_retrying: int
    outbox_failed: int
    oldest_unsent: float | None
    oldest_undecided: float | None
    last_rules_version: str | None
    quarantined: list[QuarantinedRow]


def new_mail(kind: str, reference: str | None, outgoing: Outgoing) -> NewMail:
    """A composed mail as the journal spools it."""
    return NewMail(
        kind=kind,
        reference=reference,
        sender=outgoing.sender,
        recipients=outgoing.recipients,
        message_id_header=outgoing.message_id,
        data=outgoing.data,
    )


class JournalUnavailable(ConnectionError):
    """The journal's database cannot be reached or refused a write (a PostgreSQL restart, a
    network cut). An `OSError`, like a full disk under the SQLite journal: an inbox answers
    451 and the sender tries again later."""


class JournalUnreachable(JournalUnavailable):
    """The shared journal's database server cannot be reached, or is not (yet) writable (a
    failover in progress, a network cut): not a fault of this node, which keeps running and
    reconnects by itself (its /readyz fails meanwhile, its /healthz does not)."""


def new_message_id() -> str:
    """A journal id such as `20261121-9F2C3A1B`: sortable by day, readable on the phone."""
    return f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4).upper()}"


def message_id_header(raw: bytes) -> str | None:
    """The Message-ID from the header block, without a full parse (cheap, never raises)."""
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line[:11].lower() == b"message-id:":
            value = line[11:].strip().decode("ascii", "replace")
            return value or None
    return None


def oversize_stub(message_id_header: str | None, sender: str | None, size: int) -> bytes:
    """What is stored for a message too large to download: the headers we were given."""
    lines: list[str | None] = [
        f"From: {sender}" if sender else "From: <>",
        f"Message-ID: {message_id_header}" if message_id_header else None,
        "Subject: (oversize message not downloaded)",
        f"X-Router-Oversize: {size}",
        "",
        "The message was too large to download; it is still in the inbox.",
    ]
    return "\r\n".join(line for line in lines if line is not None).encode() + b"\r\n"


# OSError numbers that describe the machine (disk, descriptors), never one message.
_ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EMFILE, errno.ENFILE, errno.EROFS,
     errno.EIO, errno.ENOMEM, errno.EAGAIN}
)  # fmt: skip


def is_environmental(exc: BaseException) -> bool:
    """True when `exc` is the journal or the machine failing (a lock, a full disk, no file
    descriptors), not a fault of the message being handled: retry later, blame nobody."""
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError | JournalUnavailable):
        return True
    return isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS

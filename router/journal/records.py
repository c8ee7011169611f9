"""The values the journal hands out and takes in: stored messages, outgoing mail, identities."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


class JournalUnavailable(ConnectionError):
    """The journal's database cannot be reached or refused a write (a PostgreSQL restart, a
    network cut). An `OSError`, like a full disk under the SQLite journal: an inbox answers
    451 and the sender tries again later."""


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

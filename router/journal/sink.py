"""The contract between an inbox (SMTP listener, IMAP IDLE) and the durable journal behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel


class Settlement(BaseModel):
    """An inbox copy whose message has a recorded outcome and can now be moved on the server."""

    message_id: str  # the journal's id
    source_key: str  # the inbox's own key, e.g. "imap://u@h/INBOX;UIDVALIDITY=7/;UID=42"
    folder: str  # where to move it: the Processed or the Failed folder


class InboxSink(Protocol):
    """Where an inbox hands each message. The journal implements it.

    Every method is safe to call again after a crash: `accept` with a `source_key` it has
    seen returns the existing id and stores nothing new.
    """

    async def accept(
        self,
        raw: bytes,
        *,
        source_key: str | None = None,
        envelope_recipients: Sequence[str] = (),
    ) -> str:
        """Store `raw` durably (fsynced) and queue it; return the journal's message id.

        Raises:
            OSError: if the message could not be stored (an SMTP inbox then answers 451).
        """
        ...

    async def accept_oversize(
        self, *, source_key: str, size: int, message_id_header: str | None, sender: str | None
    ) -> str:
        """Record a message too large to download: it goes to review without its body."""
        ...

    async def find_source(
        self,
        *,
        source_key: str | None = None,
        message_id_header: str | None = None,
        sha256: str | None = None,
        source_prefix: str | None = None,
    ) -> str | None:
        """The journal id of a message already stored under this key or identity, if any.
        With `source_prefix`, an identity is looked up only among the messages whose key
        starts with it (one mailbox's) and the IMAP ones whose key names no mailbox yet."""
        ...

    async def adopt_sources(self, old_prefix: str, new_prefix: str) -> int:
        """Re-key every message whose source key starts with `old_prefix` to start with
        `new_prefix` instead; returns how many (a mailbox adopting keys from before they
        named it)."""
        ...

    async def rekey(self, message_id: str, source_key: str) -> None:
        """Record a new source key for a stored message (after a UIDVALIDITY change)."""
        ...

    async def settlements(self, source_prefix: str) -> list[Settlement]:
        """Messages from this inbox with a recorded outcome whose inbox copy is not settled."""
        ...

    async def settled(self, message_id: str) -> None:
        """Record that the inbox copy was moved."""
        ...

"""The mailboxes behind the loopback Graph server (tests/servers/graph.py): folders, messages,
the change log that delta queries read, and what was sent.

Shapes follow Microsoft's Graph v1.0 reference: `message` (id, internetMessageId,
receivedDateTime, parentFolderId, isDraft, from, subject), `mailFolder` (id, displayName,
parentFolderId, totalItemCount, childFolderCount), and the `@removed` entry a delta query gives
for a message that left the folder. A message's id changes when it is moved (the move creates
a copy in the destination and deletes the original).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr
from typing import Any

WELL_KNOWN = {"inbox": "Inbox", "drafts": "Drafts", "sentitems": "Sent Items"}
SIZE_PROPERTY = "Integer 0xe08"  # PidTagMessageSize, as Graph names it back


def new_id(prefix: str = "AAMkAG") -> str:
    """An opaque id in Graph's style (URL-safe base64 characters)."""
    return prefix + secrets.token_urlsafe(24)


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    well_known: str | None = None


@dataclass
class Message:
    id: str
    folder_id: str
    mime: bytes
    received: datetime
    is_draft: bool = False
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # uploaded files

    def header(self, name: str) -> str:
        parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(self.mime)
        return str(parsed.get(name, "") or "")


@dataclass
class Sent:
    """One message Graph accepted for sending: its MIME and the recipients it read from it."""

    mailbox: str
    mime: bytes
    recipients: list[str]
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    via: str = "sendMail"  # or "draft" (created, uploaded to, then sent)


def recipients_of(mime: bytes) -> list[str]:
    """The To, Cc and Bcc addresses of a MIME message, lower-cased (what sendMail reads)."""
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(mime)
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in parsed.get_all(name, [])]
    return [addr.lower() for _, addr in getaddresses(fields) if "@" in addr]


class Mailbox:
    """One user's mailbox: folders, messages and the change log of each folder."""

    def __init__(self, address: str) -> None:
        self.address = address.lower()
        self.root = new_id("AAMkRoot")
        self.folders: dict[str, Folder] = {}
        self.messages: dict[str, Message] = {}
        self.changes: list[tuple[int, str, str]] = []  # (sequence, folder id, message id)
        self._sequence = itertools.count(1)
        self.sequence = 0
        for name, display in WELL_KNOWN.items():
            self.add_folder(display, well_known=name)

    def add_folder(self, display_name: str, parent: str | None = None, **kw: Any) -> Folder:
        folder = Folder(new_id("AAMkFolder"), display_name, parent or self.root, **kw)
        self.folders[folder.id] = folder
        return folder

    def folder(self, key: str) -> Folder | None:
        """A folder by id or by well-known name (`inbox`, case-insensitive)."""
        if key in self.folders:
            return self.folders[key]
        for folder in self.folders.values():
            if folder.well_known is not None and folder.well_known == key.lower():
                return folder
        return None

    def children(self, parent: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == parent]

    def _changed(self, folder_id: str, message_id: str) -> None:
        self.sequence = next(self._sequence)
        self.changes.append((self.sequence, folder_id, message_id))

    def add_message(self, folder_id: str, mime: bytes, *, draft: bool = False) -> Message:
        message = Message(new_id(), folder_id, mime, datetime.now(UTC), is_draft=draft)
        self.messages[message.id] = message
        self._changed(folder_id, message.id)
        return message

    def remove(self, message_id: str) -> Message:
        message = self.messages.pop(message_id)
        self._changed(message.folder_id, message_id)
        return message

    def move(self, message_id: str, folder_id: str) -> Message:
        """A copy in the destination under a new id; the original is deleted."""
        old = self.remove(message_id)
        moved = Message(new_id(), folder_id, old.mime, old.received, old.is_draft)
        self.messages[moved.id] = moved
        self._changed(folder_id, moved.id)
        return moved

    def in_folder(self, folder_id: str) -> list[Message]:
        found = [m for m in self.messages.values() if m.folder_id == folder_id]
        return sorted(found, key=lambda m: m.received)

    def changed_since(self, folder_id: str, sequence: int) -> list[str]:
        """Ids of messages added to or removed from the folder after `sequence`, in order."""
        seen: dict[str, None] = {}
        for number, folder, message_id in self.changes:
            if number > sequence and folder == folder_id:
                seen[message_id] = None
        return list(seen)


def folder_json(mailbox: Mailbox, folder: Folder) -> dict[str, Any]:
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": len(mailbox.children(folder.id)),
        "unreadItemCount": 0,
        "totalItemCount": len(mailbox.in_folder(folder.id)),
        "isHidden": False,
    }


def message_json(message: Message, select: list[str] | None, expand_size: bool) -> dict[str, Any]:
    stamp = message.received.strftime("%Y-%m-%dT%H:%M:%SZ")
    sender = parseaddr(message.header("From"))[1]
    full: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": 'W/"' + secrets.token_hex(8) + '"',
        "id": message.id,
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "receivedDateTime": stamp,
        "sentDateTime": stamp,
        "internetMessageId": message.header("Message-ID").strip() or None,
        "subject": message.header("Subject"),
        "parentFolderId": message.folder_id,
        "isDraft": message.is_draft,
        "isRead": False,
        "from": {"emailAddress": {"address": sender, "name": sender}} if sender else None,
    }
    if select is not None:
        full = {k: v for k, v in full.items() if k in select or k in ("id", "@odata.type")}
    if expand_size:
        full["singleValueExtendedProperties"] = [
            {"id": SIZE_PROPERTY, "value": str(len(message.mime))}
        ]
    return full


MESSAGE_PROPERTIES = frozenset(
    {
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "receivedDateTime",
        "sentDateTime",
        "internetMessageId",
        "subject",
        "parentFolderId",
        "isDraft",
        "isRead",
        "from",
    }
)


@dataclass
class DeltaRound:
    """What a skip token or delta token stands for (Graph keeps the query options in it)."""

    mailbox: str
    folder_id: str
    sequence: int  # changes after this one are the next round's
    generation: int  # a token of an older generation is answered 410
    pending: list[str] = field(default_factory=list)  # message ids still to page out
    removed: set[str] = field(default_factory=set)
    select: list[str] | None = None
    expand_size: bool = False
    page_size: int = 10


class DeltaTokens:
    """The server's sync state: tokens handed out and their generation."""

    def __init__(self) -> None:
        self.rounds: dict[str, DeltaRound] = {}
        self.generation = 0
        self.lock = threading.Lock()

    def issue(self, round_: DeltaRound) -> str:
        token = secrets.token_urlsafe(18)
        self.rounds[token] = round_
        return token

    def expire(self) -> None:
        """Every token handed out so far is answered 410 from now on."""
        self.generation += 1

"""Small pieces of the IMAP inbox: source keys, the retry backoff and the sender of a header."""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import random
from collections.abc import Sequence
from email.utils import parseaddr

import structlog

from router.core.mailbox import (
    imap_source_key,
    imap_source_prefix,
    imap_uidvalidity_prefix,
    legacy_imap_prefix,
)
from router.journal.sink import InboxSink

log = structlog.get_logger(__name__)

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0


def source_key(mailbox: str, uidvalidity: int, uid: int) -> str:
    """The journal's key for one message of this inbox (it names the mailbox: the same UID
    in another folder or on another server is another message)."""
    return imap_source_key(mailbox, uidvalidity, uid)


def parse_source_key(key: str, mailbox: str) -> tuple[int, int] | None:
    """(uidvalidity, uid) from a key `source_key` made for `mailbox`; None for any other key."""
    prefix = imap_source_prefix(mailbox)
    if not key.startswith(prefix):
        return None
    uidvalidity, separator, uid = key[len(prefix) :].partition("/;UID=")
    if not separator or not uidvalidity.isdigit() or not uid.isdigit():
        return None
    return int(uidvalidity), int(uid)


async def adopt_legacy_keys(sink: InboxSink, mailbox: str, uidvalidity: int) -> None:
    """Give this mailbox the keys stored by a version whose keys named no mailbox
    (`imap:<uidvalidity>:<uid>`) that carry its folder's UIDVALIDITY: they are its messages."""
    adopted = await sink.adopt_sources(
        legacy_imap_prefix(uidvalidity), imap_uidvalidity_prefix(mailbox, uidvalidity)
    )
    if adopted:
        log.info("imap.keys_adopted", count=adopted, uidvalidity=uidvalidity)


def sender_address(raw_headers: bytes) -> str | None:
    """The bare address of the From header, or None if there is no usable one."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw_headers)
    address = parseaddr(str(headers.get("From", "")))[1]
    if "@" not in address or any(c.isspace() for c in address):
        return None
    return address


def mailbox_key(user: str, host: str, folder: str) -> str:
    """`user@host/folder`, the normalised mailbox: what its first-connection record, its
    messages' source keys and its watcher's lease are kept under. The port and the scheme do
    not count (`imaps://u@h/INBOX` and `imaps://u@h:993/INBOX` are one mailbox); another
    folder or server is another mailbox."""
    name = "INBOX" if folder.upper() == "INBOX" else folder
    return f"{user.lower()}@{host.lower()}/{name}"


class Backoff:
    """Exponential delays with jitter, reset after a good session."""

    def __init__(self, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_MAX_SECONDS):
        self._base, self._cap, self.failures = base, cap, 0

    def next(self, minimum: float = 0.0) -> float:
        """The next delay in seconds: half to all of the current step, never below `minimum`."""
        step = min(self._cap, self._base * 2**self.failures)
        self.failures += 1
        jittered = step * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not security)
        return float(max(minimum, jittered))

    def reset(self) -> None:
        """Start again from the base delay."""
        self.failures = 0


def chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    """`items` in slices of at most `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


async def wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds` or until `event` is set, whichever comes first."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return


def encode_mailbox(name: str) -> str:
    """Quote a folder name for a command, in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(utf16).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    encoded = "".join(out)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'

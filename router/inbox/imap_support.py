"""Small pieces of the IMAP inbox: source keys, the retry backoff and the sender of a header."""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import random
from collections.abc import Sequence
from email.utils import parseaddr

SOURCE_PREFIX = "imap:"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0


def source_key(uidvalidity: int, uid: int) -> str:
    """The journal's key for one message of this inbox."""
    return f"{SOURCE_PREFIX}{uidvalidity}:{uid}"


def parse_source_key(key: str) -> tuple[int, int] | None:
    """(uidvalidity, uid) from a key made by `source_key`, or None."""
    prefix, _, rest = key.partition(":")
    uidvalidity, _, uid = rest.partition(":")
    if prefix + ":" != SOURCE_PREFIX or not uidvalidity.isdigit() or not uid.isdigit():
        return None
    return int(uidvalidity), int(uid)


def sender_address(raw_headers: bytes) -> str | None:
    """The bare address of the From header, or None if there is no usable one."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw_headers)
    address = parseaddr(str(headers.get("From", "")))[1]
    if "@" not in address or any(c.isspace() for c in address):
        return None
    return address


def mailbox_key(user: str, host: str, folder: str) -> str:
    """`user@host/folder`: what the first-connection record is kept under (not the port)."""
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

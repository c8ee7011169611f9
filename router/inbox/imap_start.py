"""First connection to a mailbox (`ROUTER_IMAP_START`): which messages the router leaves untouched.

The promise (SPEC section 7): pointed at a folder holding years of referrals, the router never
forwards or acknowledges them, never moves them, never changes their flags; only mail that
arrives after its first connection to that mailbox is processed. Remembered per mailbox
(`user@host/folder`), not per UIDVALIDITY, so a restart or a recreated folder keeps it:

- At the first connection the UIDs then in the folder are recorded as untouched (`new`: all
  of them, that is below UIDNEXT; a date: those whose INTERNALDATE is before it; `all`: none),
  with a cut-off date and the SHA-256 of each one's Message-ID.
- Afterwards a message the journal does not know is left untouched when its UID is recorded
  for this UIDVALIDITY, when its INTERNALDATE is before the cut-off, or when its Message-ID was
  in the folder at the first connection. A new UIDVALIDITY (the folder rebuilt or recreated,
  old mail copied back) therefore finds the old mail by date and Message-ID, not by UID.

The `new` cut-off is the server's own INTERNALDATE of the newest message present (never later
than the router's clock), so a server clock that differs from the router's loses no new mail;
and dates only decide after a UIDVALIDITY change (before it, the recorded UIDs are exact).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

import structlog

from router.core.mailbox import MailboxStart, UidRanges
from router.inbox.imap_session import ImapSession

log = structlog.get_logger(__name__)

IDENTITY_BATCH = 500  # UIDs per FETCH of dates and Message-IDs
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


class StartStore(Protocol):
    """Where first-connection records live (the journal: `router.journal.mailbox_start`)."""

    async def load(self, mailbox: str, uidvalidity: int | None = None) -> MailboxStart | None:
        """The mailbox's first-connection record, or None if the router never met it
        (`uidvalidity`, the folder's now, helps recognise mail stored by an older version)."""
        ...

    async def untouched_uids(self, mailbox: str, uidvalidity: int) -> UidRanges:
        """UIDs recorded as untouched under this UIDVALIDITY (empty if none)."""
        ...

    async def known_old(self, mailbox: str, id_hashes: Collection[str]) -> set[str]:
        """Which of these Message-ID hashes were in the folder at the first connection."""
        ...

    async def record(
        self,
        mailbox: str,
        uidvalidity: int,
        uids: Collection[int],
        *,
        start: MailboxStart | None = None,
        id_hashes: Collection[str] = (),
    ) -> None:
        """Add untouched UIDs (and, the first time, the start and its Message-ID hashes)."""
        ...


@dataclass
class MemoryStartStore:
    """A `StartStore` in memory: forgets on exit (for tests and one-off tools). See `StartStore`."""

    starts: dict[str, MailboxStart] = field(default_factory=dict)
    uids: dict[tuple[str, int], UidRanges] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=dict)

    async def load(self, mailbox: str, uidvalidity: int | None = None) -> MailboxStart | None:
        return self.starts.get(mailbox)

    async def untouched_uids(self, mailbox: str, uidvalidity: int) -> UidRanges:
        return self.uids.get((mailbox, uidvalidity), UidRanges())

    async def known_old(self, mailbox: str, id_hashes: Collection[str]) -> set[str]:
        return set(id_hashes) & self.ids.get(mailbox, set())

    async def record(
        self,
        mailbox: str,
        uidvalidity: int,
        uids: Collection[int],
        *,
        start: MailboxStart | None = None,
        id_hashes: Collection[str] = (),
    ) -> None:
        if start is not None:
            self.starts.setdefault(mailbox, start)
        key = (mailbox, uidvalidity)
        self.uids[key] = self.uids.get(key, UidRanges()).union(UidRanges.of(uids))
        self.ids.setdefault(mailbox, set()).update(id_hashes)


@dataclass(frozen=True)
class Identity:
    """What tells an old message from a new one without reading it."""

    internaldate: float | None  # epoch seconds
    id_hash: str | None  # SHA-256 of the Message-ID, lower-cased


def id_hash(message_id: str) -> str:
    """The stored form of a Message-ID (a hash: the record keeps no header text)."""
    return hashlib.sha256(message_id.strip().lower().encode()).hexdigest()


def date_cutoff(value: str) -> float:
    """Midnight UTC at the start of a `YYYY-MM-DD` date, as epoch seconds."""
    day = date.fromisoformat(value)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


async def fetch_identities(session: ImapSession, uids: Sequence[int]) -> dict[int, Identity]:
    """INTERNALDATE and Message-ID of each UID still present (BODY.PEEK: flags unchanged)."""
    found: dict[int, Identity] = {}
    for index in range(0, len(uids), IDENTITY_BATCH):
        batch = uids[index : index + IDENTITY_BATCH]
        lines = await session.fetch_lines(
            batch, "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        )
        for position, line in enumerate(lines):
            uid = _FETCH_UID.search(line) if isinstance(line, bytes) else None
            if uid is None:
                continue
            literal = lines[position + 1] if position + 1 < len(lines) else b""
            header = bytes(literal) if isinstance(literal, bytearray) else b""
            match = _MESSAGE_ID.search(header)
            found[int(uid.group(1))] = Identity(
                internaldate=_internaldate(line),
                id_hash=id_hash(match.group(1).decode("ascii", "replace")) if match else None,
            )
    return found


def _internaldate(line: bytes) -> float | None:
    match = _INTERNALDATE.search(line)
    if match is None:
        return None
    try:
        text = match.group(1).decode("ascii").strip()
        return datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z").timestamp()
    except ValueError:
        return None


class FirstConnection:
    """Decides which messages of one mailbox were there first (see the module docstring).

    Args:
        mode: `ROUTER_IMAP_START` (`new`, `all` or `YYYY-MM-DD`).
        mailbox: `user@host/folder`, the key the decision is remembered under.
        store: where it is remembered.
    """

    def __init__(self, mode: str, mailbox: str, store: StartStore) -> None:
        self.mode, self.mailbox, self._store = mode, mailbox, store
        self._warned_mode = False

    async def untouched(
        self, session: ImapSession, uids: Sequence[int], *, record: bool = True
    ) -> set[int]:
        """The UIDs among `uids` (unknown to the journal) to leave exactly as they are.

        Args:
            record: False for a dry run (`inbox check`): decide, but store nothing.
        """
        start = await self._store.load(self.mailbox, session.uidvalidity)
        if start is None:
            return await self._first(session, uids, record)
        self._note_mode(start)
        recorded = await self._store.untouched_uids(self.mailbox, session.uidvalidity)
        old = {uid for uid in uids if uid in recorded}
        rest = [uid for uid in uids if uid not in recorded]
        if not rest or start.mode == "all":
            return old
        identities = await fetch_identities(session, rest)
        hashes = {i.id_hash for i in identities.values() if i.id_hash is not None}
        known = await self._store.known_old(self.mailbox, hashes)
        # Under the first UIDVALIDITY the UIDs recorded then are exact: a later UID is new mail
        # (unless its Message-ID was there first). Dates only decide after a UIDVALIDITY change.
        cutoff = start.cutoff if session.uidvalidity != start.uidvalidity else 0.0
        found = {
            uid
            for uid, identity in identities.items()
            if (identity.internaldate is not None and identity.internaldate < cutoff)
            or identity.id_hash in known
        }
        if found and record:
            await self._store.record(self.mailbox, session.uidvalidity, found)
            log.info("imap.left_untouched", count=len(found), reason="there_before_first_start")
        return old | found

    async def _first(self, session: ImapSession, uids: Sequence[int], record: bool) -> set[int]:
        now = time.time()
        old: set[int] = set()
        hashes: set[str] = set()
        cutoff = 0.0
        if self.mode != "all":
            identities = await fetch_identities(session, uids)
            if self.mode == "new":
                old = {uid for uid in uids if not session.uidnext or uid < session.uidnext}
                dates = [identities[u].internaldate for u in old if u in identities]
                known = [d for d in dates if d is not None]
                # Strictly before the newest one's second (INTERNALDATE has whole seconds): new
                # mail in that same second is never taken for old; the newest are known by
                # Message-ID anyway.
                cutoff = min(max(known), now) if known else 0.0
            else:
                cutoff = date_cutoff(self.mode)
                old = {
                    uid
                    for uid, identity in identities.items()
                    if identity.internaldate is not None and identity.internaldate < cutoff
                }
            hashes = {
                identity.id_hash
                for uid, identity in identities.items()
                if uid in old and identity.id_hash is not None
            }
        if record:
            start = MailboxStart(self.mailbox, self.mode, cutoff, now, session.uidvalidity)
            await self._store.record(
                self.mailbox, session.uidvalidity, old, start=start, id_hashes=hashes
            )
            log.info(
                "imap.first_connection",
                imap_start=self.mode,
                untouched=len(old),
                to_process=len(uids) - len(old),
            )
        return old

    def _note_mode(self, start: MailboxStart) -> None:
        if start.mode != self.mode and not self._warned_mode:
            self._warned_mode = True
            log.warning(
                "imap.start_setting_ignored",
                configured=self.mode,
                recorded=start.mode,
                detail="ROUTER_IMAP_START applies only at the first connection to a mailbox",
            )

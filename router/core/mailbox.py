"""What the router remembers of a mailbox it met: its first connection and sets of UIDs.

Plain values, shared by the IMAP inbox (`router.inbox.imap_start`) and the journal that keeps
them (`router.journal.mailbox_start`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

# Source keys of IMAP messages from before keys named their mailbox: `imap:<uidvalidity>:<uid>`
# (re-keyed when the mailbox they came from is known: `Journal.adopt_sources`).
LEGACY_IMAP_PREFIX = "imap:"


def imap_source_prefix(mailbox: str) -> str:
    """What every journal source key of a message from `mailbox` (`user@host/folder`) starts
    with: `imap://user@host/folder;UIDVALIDITY=` (after RFC 5092's IMAP URLs)."""
    return f"imap://{mailbox};UIDVALIDITY="


def imap_uidvalidity_prefix(mailbox: str, uidvalidity: int) -> str:
    """What the keys of a mailbox's messages under one UIDVALIDITY start with."""
    return f"{imap_source_prefix(mailbox)}{uidvalidity}/;UID="


def imap_source_key(mailbox: str, uidvalidity: int, uid: int) -> str:
    """The journal's key for one message of a mailbox, e.g.
    `imap://u@h/INBOX;UIDVALIDITY=1700000000/;UID=42`."""
    return f"{imap_uidvalidity_prefix(mailbox, uidvalidity)}{uid}"


def legacy_imap_prefix(uidvalidity: int) -> str:
    """What the keys from before start with for one UIDVALIDITY (`imap:<uidvalidity>:`)."""
    return f"{LEGACY_IMAP_PREFIX}{uidvalidity}:"


@dataclass(frozen=True)
class MailboxStart:
    """What the router recorded when it first met a mailbox.

    Attributes:
        mailbox: `user@host/folder`.
        mode: `ROUTER_IMAP_START` at that first connection (`new`, `all` or a date).
        cutoff: epoch seconds; mail whose INTERNALDATE is before it was there first.
        started_at: when the router first connected (its clock).
        uidvalidity: the folder's UIDVALIDITY then; under it, UIDs alone decide.
    """

    mailbox: str
    mode: str
    cutoff: float
    started_at: float
    uidvalidity: int = 0


class UidRanges:
    """A set of UIDs kept as sorted closed ranges (`1:4200,4305:4310`): compact for big folders."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for low, high in sorted(ranges):
            if self._ends and low <= self._ends[-1] + 1:
                self._ends[-1] = max(self._ends[-1], high)
            else:
                self._starts.append(low)
                self._ends.append(high)

    @classmethod
    def of(cls, uids: Iterable[int]) -> UidRanges:
        """The ranges that hold exactly `uids`."""
        return cls((uid, uid) for uid in uids)

    @classmethod
    def parse(cls, text: str) -> UidRanges:
        """Read what `str()` wrote."""
        pairs = []
        for part in filter(None, text.split(",")):
            low, _, high = part.partition(":")
            pairs.append((int(low), int(high or low)))
        return cls(pairs)

    def union(self, other: UidRanges) -> UidRanges:
        """Both sets together."""
        return UidRanges([*self.pairs(), *other.pairs()])

    def pairs(self) -> list[tuple[int, int]]:
        """The (low, high) ranges, ascending."""
        return list(zip(self._starts, self._ends, strict=True))

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        index = bisect.bisect_right(self._starts, uid) - 1
        return index >= 0 and uid <= self._ends[index]

    def __len__(self) -> int:
        return sum(high - low + 1 for low, high in self.pairs())

    def __str__(self) -> str:
        return ",".join(f"{lo}:{hi}" if hi != lo else str(lo) for lo, hi in self.pairs())

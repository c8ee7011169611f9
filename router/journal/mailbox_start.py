"""The journal's record of each mailbox's first connection (`ROUTER_IMAP_START`). See `StartStore`.

Its own tables (the `mailbox_start` migrations): what the router found in a folder the first
time it met it must outlive restarts, UIDVALIDITY changes and the purge of old messages.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from router.core.mailbox import (
    MailboxStart,
    UidRanges,
    imap_source_prefix,
    legacy_imap_prefix,
)

if TYPE_CHECKING:
    from router.journal.core import JournalCore

_LOOKUP_BATCH = 500


class MailboxStarts:
    """First-connection records in the journal's database. See `StartStore`."""

    def __init__(self, journal: JournalCore) -> None:
        self._journal = journal

    async def load(self, mailbox: str, uidvalidity: int | None = None) -> MailboxStart | None:
        """See `StartStore.load`.

        A mailbox the journal already holds mail from (a router upgraded to this version)
        has been met before: its start counts as `all`, so mail that arrived during the
        upgrade is not mistaken for old mail. Only its own mail counts (keys that name it, or
        keys from before that carry its folder's `uidvalidity`): another folder or server is
        met for the first time. (Message rows are never deleted, so this answer does not
        change; nothing is written here, so `inbox check` writes nothing.)
        """
        rows = self._journal.query(
            "SELECT mode, cutoff, started_at, uidvalidity FROM mailbox_start WHERE mailbox = ?",
            (mailbox,),
        )
        if rows:
            row = rows[0]
            return MailboxStart(
                mailbox, row["mode"], row["cutoff"], row["started_at"], row["uidvalidity"]
            )
        prefixes = [imap_source_prefix(mailbox)]
        if uidvalidity is not None:
            prefixes.append(legacy_imap_prefix(uidvalidity))
        for prefix in prefixes:
            if self._journal.query(
                "SELECT 1 FROM messages WHERE substr(source_key, 1, ?) = ? LIMIT 1",
                (len(prefix), prefix),
            ):
                return MailboxStart(mailbox, "all", 0.0, time.time())
        return None

    async def untouched_uids(self, mailbox: str, uidvalidity: int) -> UidRanges:
        """See `StartStore.untouched_uids`."""
        rows = self._journal.query(
            "SELECT uids FROM mailbox_untouched WHERE mailbox = ? AND uidvalidity = ?",
            (mailbox, uidvalidity),
        )
        return UidRanges.parse(rows[0]["uids"]) if rows else UidRanges()

    async def known_old(self, mailbox: str, id_hashes: Collection[str]) -> set[str]:
        """See `StartStore.known_old`."""
        wanted = sorted(id_hashes)
        found: set[str] = set()
        for index in range(0, len(wanted), _LOOKUP_BATCH):
            batch = wanted[index : index + _LOOKUP_BATCH]
            marks = ",".join("?" * len(batch))
            sql = "SELECT id_hash FROM mailbox_old_ids WHERE mailbox = ? AND id_hash IN"
            rows = self._journal.query(f"{sql} ({marks})", (mailbox, *batch))  # "?" marks only
            found.update(row["id_hash"] for row in rows)
        return found

    async def record(
        self,
        mailbox: str,
        uidvalidity: int,
        uids: Collection[int],
        *,
        start: MailboxStart | None = None,
        id_hashes: Collection[str] = (),
    ) -> None:
        """See `StartStore.record`. One transaction: all of it is recorded, or none."""
        hashes = sorted(id_hashes)
        with self._journal.transaction() as tx:
            if start is not None:
                tx.run(
                    "INSERT INTO mailbox_start"
                    " (mailbox, mode, cutoff, started_at, uidvalidity) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (mailbox) DO NOTHING",
                    (mailbox, start.mode, start.cutoff, start.started_at, start.uidvalidity),
                )
            rows = tx.rows(
                "SELECT uids FROM mailbox_untouched WHERE mailbox = ? AND uidvalidity = ?",
                (mailbox, uidvalidity),
            )
            ranges = UidRanges.parse(rows[0]["uids"]) if rows else UidRanges()
            ranges = ranges.union(UidRanges.of(uids))
            tx.run(
                "INSERT INTO mailbox_untouched (mailbox, uidvalidity, uids) VALUES (?, ?, ?)"
                " ON CONFLICT (mailbox, uidvalidity) DO UPDATE SET uids = excluded.uids",
                (mailbox, uidvalidity, str(ranges)),
            )
            # Many rows per statement: a first connection may meet thousands of messages.
            for index in range(0, len(hashes), _LOOKUP_BATCH):
                batch = hashes[index : index + _LOOKUP_BATCH]
                values = ",".join("(?, ?)" for _ in batch)
                tx.run(
                    f"INSERT INTO mailbox_old_ids (mailbox, id_hash) VALUES {values}"  # noqa: S608
                    " ON CONFLICT (mailbox, id_hash) DO NOTHING",
                    [item for value in batch for item in (mailbox, value)],
                )

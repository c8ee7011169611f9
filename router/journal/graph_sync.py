"""The journal's record of each graph:// inbox's place in its folder (the `graph_sync` table).

The delta link Microsoft Graph gave at the end of the last delta round survives restarts, so a
router that starts again asks only for what changed since; when the inbox last synced and when
Graph last throttled it are kept beside it for `referral-router status`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.journal.core import JournalCore


@dataclass(frozen=True)
class GraphSyncState:
    """One mailbox folder's sync state.

    Attributes:
        delta_link: where the next delta round starts, or None for a new delta.
        synced_at: epoch seconds of the last round that reached a delta link.
        throttled_at: epoch seconds of the last 429/503/504 Graph answered.
        throttled: how many such answers so far.
    """

    mailbox: str
    delta_link: str | None
    synced_at: float | None
    throttled_at: float | None
    throttled: int


class GraphSyncStore:
    """Delta links and sync times in the journal's database."""

    def __init__(self, journal: JournalCore) -> None:
        self._journal = journal

    def state(self, mailbox: str) -> GraphSyncState | None:
        """The folder's state, or None if the router never synced it."""
        rows = self._journal.query(
            "SELECT delta_link, synced_at, throttled_at, throttled FROM graph_sync"
            " WHERE mailbox = ?",
            (mailbox,),
        )
        if not rows:
            return None
        row = rows[0]
        return GraphSyncState(
            mailbox, row["delta_link"], row["synced_at"], row["throttled_at"], row["throttled"]
        )

    def all_states(self) -> list[GraphSyncState]:
        """Every graph:// folder the journal knows (for `status`)."""
        rows = self._journal.query(
            "SELECT mailbox, delta_link, synced_at, throttled_at, throttled FROM graph_sync"
            " ORDER BY mailbox"
        )
        return [
            GraphSyncState(
                r["mailbox"], r["delta_link"], r["synced_at"], r["throttled_at"], r["throttled"]
            )
            for r in rows
        ]

    async def delta_link(self, mailbox: str) -> str | None:
        """Where the next delta round starts (None: a new delta)."""
        state = await asyncio.to_thread(self.state, mailbox)
        return None if state is None else state.delta_link

    async def save_delta_link(self, mailbox: str, link: str | None) -> None:
        """Keep the delta link of a finished round (None forgets it: Graph no longer knows it).

        Durable: a delta link lost to a crash would make the next round start a new delta.
        """
        await asyncio.to_thread(self._upsert, mailbox, link, time.time() if link else None)

    def _upsert(self, mailbox: str, link: str | None, synced_at: float | None) -> None:
        with self._journal.transaction() as tx:
            tx.run(
                "INSERT INTO graph_sync (mailbox, delta_link, synced_at) VALUES (?, ?, ?)"
                " ON CONFLICT (mailbox) DO UPDATE SET delta_link = excluded.delta_link,"
                " synced_at = COALESCE(excluded.synced_at, graph_sync.synced_at)",
                (mailbox, link, synced_at),
            )

    async def record_throttled(self, mailbox: str) -> None:
        """Count one 429/503/504 from Graph for this mailbox (not fsynced: a count for status)."""

        def update() -> None:
            with self._journal.transaction(durable=False) as tx:
                tx.run(
                    "INSERT INTO graph_sync (mailbox, throttled_at, throttled) VALUES (?, ?, 1)"
                    " ON CONFLICT (mailbox) DO UPDATE SET throttled_at = excluded.throttled_at,"
                    " throttled = graph_sync.throttled + 1",
                    (mailbox, time.time()),
                )

        await asyncio.to_thread(update)

"""Nodes: who shares the journal, their heartbeats, and which mailbox each one watches."""

from __future__ import annotations

import os
import threading
import time

import structlog

from router.journal.core import HEARTBEAT_SECONDS, JournalCore
from router.journal.records import NodeSeen

log = structlog.get_logger(__name__)

# `status` lists the nodes whose heartbeat is at most this old.
RECENT_SECONDS = 600.0


class Nodes(JournalCore):
    """Heartbeats, claim renewal and mailbox leases. See `Journal`."""

    _stop_beating: threading.Event | None = None
    _beating: threading.Thread | None = None

    def start_heartbeat(self) -> None:
        """See `Journal.start_heartbeat`: a thread, so a busy event loop cannot starve it."""
        if self._stop_beating is None:
            self.heartbeat()
            self._stop_beating = threading.Event()
            self._beating = threading.Thread(target=self._beat, name="journal-heartbeat")
            self._beating.daemon = True
            self._beating.start()

    def _beat(self) -> None:
        stop = self._stop_beating
        assert stop is not None
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception as exc:  # a lock, a blip: the thread must outlive it, or every
                # claim of this node lapses and another node sends its mail again
                log.warning("journal_heartbeat_failed", error=type(exc).__name__)

    def close(self) -> None:
        """See `Journal.close`."""
        if self._stop_beating is not None:
            self._stop_beating.set()
        if self._beating is not None:
            self._beating.join(timeout=10)
        super().close()

    def heartbeat(self) -> None:
        """See `Journal.heartbeat`."""
        now = time.time()
        lease = now + self.lease_seconds
        # Renewals only, every few seconds: one lost to a power cut is the next one's to do.
        with self._db.transaction(durable=False) as tx:
            tx.run(
                "INSERT INTO nodes (name, pid, started_at, last_heartbeat) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET pid = excluded.pid,"
                " last_heartbeat = excluded.last_heartbeat",
                (self.node, os.getpid(), now, now),
            )
            for table, state in (("messages", "received"), ("outbox", "pending")):
                tx.run(
                    f"UPDATE {table} SET lease_until = ?"  # noqa: S608 - fixed table names
                    f" WHERE claimed_by = ? AND state = '{state}'",
                    (lease, self.node),
                )
            tx.run(
                "UPDATE mailbox_watchers SET lease_until = ? WHERE holder = ?",
                (lease, self.node),
            )

    def hold_mailbox(self, mailbox: str) -> bool:
        """See `Journal.hold_mailbox`. With one owner (SQLite) the owner lock already makes
        this process the only router: a lease a killed predecessor left is taken at once."""
        now = time.time()
        lapsed_before = now if self.shared else float("inf")
        with self._db.transaction() as tx:
            rows = tx.rows(
                "INSERT INTO mailbox_watchers (mailbox, holder, lease_until) VALUES (?, ?, ?)"
                " ON CONFLICT (mailbox) DO UPDATE SET holder = excluded.holder,"
                " lease_until = excluded.lease_until"
                " WHERE mailbox_watchers.holder = excluded.holder"
                " OR mailbox_watchers.lease_until < ? RETURNING holder",
                (mailbox, self.node, now + self.lease_seconds, lapsed_before),
            )
        return bool(rows)

    def release_mailbox(self, mailbox: str) -> None:
        """See `Journal.release_mailbox`."""
        with self._db.transaction() as tx:
            tx.run(
                "DELETE FROM mailbox_watchers WHERE mailbox = ? AND holder = ?",
                (mailbox, self.node),
            )

    def nodes_seen(self, within: float = RECENT_SECONDS) -> list[NodeSeen]:
        """See `Journal.nodes_seen`."""
        now = time.time()
        nodes = self.query(
            "SELECT name, pid, last_heartbeat FROM nodes WHERE last_heartbeat >= ? ORDER BY name",
            (now - within,),
        )
        seen = []
        for node in nodes:
            name = node["name"]
            [claims] = self.query(
                "SELECT (SELECT COUNT(*) FROM messages WHERE claimed_by = ? AND"
                " state = 'received' AND lease_until >= ?) AS messages,"
                " (SELECT COUNT(*) FROM outbox WHERE claimed_by = ? AND state = 'pending'"
                " AND lease_until >= ?) AS mail",
                (name, now, name, now),
            )
            watching = self.query(
                "SELECT mailbox FROM mailbox_watchers WHERE holder = ? AND lease_until >= ?"
                " ORDER BY mailbox",
                (name, now),
            )
            seen.append(
                NodeSeen(
                    name=name,
                    last_heartbeat=float(node["last_heartbeat"]),
                    pid=node["pid"],
                    claimed_messages=int(claims["messages"]),
                    claimed_mail=int(claims["mail"]),
                    watching=tuple(row["mailbox"] for row in watching),
                )
            )
        return seen

"""Nodes: who shares the journal, their heartbeats, and which mailbox each one watches."""

from __future__ import annotations

import os
import threading

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
        """See `Journal.heartbeat`. On the database's clock. The mailbox lease is not renewed
        here: its watcher renews it (`hold_mailbox`) while it works (see inbox/leader.py)."""
        clock, lease = self._db.clock, self._lease()
        # Renewals only, every few seconds: one lost to a power cut is the next one's to do.
        with self._db.transaction(durable=False) as tx:
            tx.run(
                "INSERT INTO nodes (name, pid, started_at, last_heartbeat)"  # noqa: S608
                f" VALUES (?, ?, {clock}, {clock})"
                " ON CONFLICT (name) DO UPDATE SET pid = excluded.pid,"
                " last_heartbeat = excluded.last_heartbeat",
                (self.node, os.getpid()),
            )
            for table, state in (("messages", "received"), ("outbox", "pending")):
                tx.run(
                    f"UPDATE {table} SET lease_until = {lease}"  # noqa: S608 - fixed names
                    f" WHERE claimed_by = ? AND state = '{state}'",
                    (self.node,),
                )

    def hold_mailbox(self, mailbox: str) -> bool:
        """See `Journal.hold_mailbox`. With one owner (SQLite) the owner lock already makes
        this process the only router: a lease a killed predecessor left is taken at once.
        On the database's clock."""
        lapsed = f"mailbox_watchers.lease_until < {self._db.clock}" if self.shared else "1 = 1"
        with self._db.transaction() as tx:
            rows = tx.rows(
                "INSERT INTO mailbox_watchers (mailbox, holder, lease_until)"  # noqa: S608
                f" VALUES (?, ?, {self._lease()})"
                " ON CONFLICT (mailbox) DO UPDATE SET holder = excluded.holder,"
                " lease_until = excluded.lease_until"
                " WHERE mailbox_watchers.holder = excluded.holder"
                f" OR {lapsed} RETURNING holder",
                (mailbox, self.node),
            )
        return bool(rows)

    def release_mailbox(self, mailbox: str) -> None:
        """See `Journal.release_mailbox`."""
        with self._db.transaction() as tx:
            tx.run(
                "DELETE FROM mailbox_watchers WHERE mailbox = ? AND holder = ?",
                (mailbox, self.node),
            )

    def note_watcher(self, note: str | None) -> None:
        """See `Journal.note_watcher`."""
        with self._db.transaction(durable=False) as tx:
            tx.run("UPDATE nodes SET watcher_note = ? WHERE name = ?", (note, self.node))

    def nodes_seen(self, within: float = RECENT_SECONDS) -> list[NodeSeen]:
        """See `Journal.nodes_seen`. "Recent" and "held" on the database's clock."""
        clock = self._db.clock
        nodes = self.query(
            "SELECT name, pid, last_heartbeat, watcher_note FROM nodes"  # noqa: S608
            f" WHERE last_heartbeat >= {clock} - ? ORDER BY name",
            (within,),
        )
        seen = []
        for node in nodes:
            name = node["name"]
            [claims] = self.query(
                "SELECT (SELECT COUNT(*) FROM messages WHERE claimed_by = ? AND"  # noqa: S608
                f" state = 'received' AND lease_until >= {clock}) AS messages,"
                " (SELECT COUNT(*) FROM outbox WHERE claimed_by = ? AND state = 'pending'"
                f" AND lease_until >= {clock}) AS mail",
                (name, name),
            )
            watching = self.query(
                "SELECT mailbox FROM mailbox_watchers WHERE holder = ?"  # noqa: S608
                f" AND lease_until >= {clock} ORDER BY mailbox",
                (name,),
            )
            seen.append(
                NodeSeen(
                    name=name,
                    last_heartbeat=float(node["last_heartbeat"]),
                    pid=node["pid"],
                    claimed_messages=int(claims["messages"]),
                    claimed_mail=int(claims["mail"]),
                    watching=tuple(row["mailbox"] for row in watching),
                    watcher_note=node["watcher_note"],
                )
            )
        return seen

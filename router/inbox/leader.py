"""One watcher per IMAP or Graph mailbox: an inbox runs only while this node holds the
mailbox's lease.

Every node may run the SMTP listener, but two nodes IDLEing on one mailbox would race to
take and move the same mail. The lease is a row in the journal (`Journal.hold_mailbox`),
renewed with the node's heartbeat: when the holder dies, the lease lapses and another node
takes over within the lease plus one poll (under 30 s). With the SQLite journal the state
directory's owner lock already makes this node the only one, and the lease is always held.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from router.core.aio import wait_any
from router.journal.core import HEARTBEAT_SECONDS
from router.journal.protocol import Journal
from router.journal.records import JournalUnavailable

log = structlog.get_logger(__name__)

Watch = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class MailboxLease:
    """Runs `watch` (an inbox's `run`) while this node holds `mailbox`, stops it when the
    lease is lost, and waits on standby otherwise."""

    def __init__(
        self,
        journal: Journal,
        mailbox: str,
        *,
        inner_state: Callable[[], str],
        inner_detail: Callable[[], dict[str, Any]] = dict,
        poll_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.journal = journal
        self.mailbox = mailbox
        self.poll_seconds = poll_seconds
        self._inner_state = inner_state
        self._inner_detail = inner_detail
        self.holding = False

    @property
    def state(self) -> str:
        """The inbox's state while this node watches the mailbox, else `standby`."""
        return self._inner_state() if self.holding else "standby"

    def detail(self) -> dict[str, Any]:
        """The inbox's own detail for /readyz while this node watches the mailbox."""
        return self._inner_detail() if self.holding else {}

    async def _hold(self) -> bool:
        try:
            return await asyncio.to_thread(self.journal.hold_mailbox, self.mailbox)
        except JournalUnavailable:
            return False  # cannot prove we hold it: stop watching rather than risk two

    async def run(self, watch: Watch, stop: asyncio.Event) -> None:
        """Until `stop`: take the lease when free, watch while held, stand by otherwise."""
        try:
            while not stop.is_set():
                if await self._hold():
                    await self._watch_while_held(watch, stop)
                else:
                    await wait_any(stop, seconds=self.poll_seconds)
        finally:
            self.holding = False
            with contextlib.suppress(JournalUnavailable):
                await asyncio.to_thread(self.journal.release_mailbox, self.mailbox)

    async def _watch_while_held(self, watch: Watch, stop: asyncio.Event) -> None:
        self.holding = True
        log.info("mailbox_watching", node=self.journal.node)
        watch_stop = asyncio.Event()
        watcher = asyncio.create_task(watch(watch_stop), name="imap-watch")
        done = asyncio.Event()
        watcher.add_done_callback(lambda _: done.set())
        try:
            while not (stop.is_set() or done.is_set()):
                await wait_any(stop, done, seconds=self.poll_seconds)
                if not stop.is_set() and not await self._hold():
                    log.warning("mailbox_lease_lost", node=self.journal.node)
                    break
        finally:
            watch_stop.set()
            self.holding = False
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(watcher, 10)

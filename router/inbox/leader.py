"""One watcher per IMAP or Graph mailbox: an inbox runs only while this node holds the
mailbox's lease.

Every node may run the SMTP listener, but two nodes IDLEing on one mailbox would race to
take and move the same mail. The lease is a row in the journal (`Journal.hold_mailbox`),
renewed by the watcher loop itself every poll (not by the node's heartbeat): when the holder
dies, the lease lapses and another node takes over within the lease plus one poll (under
30 s). A watcher that cannot log in for `GIVE_UP_SECONDS` gives the lease up and stands
aside for a few polls, so that another node (whose network, credentials or certificate
store may be fine) tries; `status` and `/readyz` say so. With the SQLite journal the state
directory's owner lock already makes this node the only one, and the lease is always held.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from router.core.aio import wait_any
from router.journal.core import HEARTBEAT_SECONDS
from router.journal.protocol import Journal
from router.journal.records import JournalUnavailable

log = structlog.get_logger(__name__)

Watch = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

# How long a watcher may go without logging in before it gives the mailbox up (tests
# shorten it, and `POLL_SECONDS`).
GIVE_UP_SECONDS = 180.0
POLL_SECONDS = HEARTBEAT_SECONDS
# After giving up, stand aside this many polls: another node takes the lease meanwhile.
STAND_ASIDE_POLLS = 3
# The inbox's states in which it is logged in.
_LOGGED_IN = frozenset({"connected", "idle"})


class MailboxLease:
    """Runs `watch` (an inbox's `run`) while this node holds `mailbox`, stops it when the
    lease is lost or the watcher has not logged in for `give_up_seconds`, and waits on
    standby otherwise."""

    def __init__(
        self,
        journal: Journal,
        mailbox: str,
        *,
        inner_state: Callable[[], str],
        inner_detail: Callable[[], dict[str, Any]] = dict,
        inner_failure: Callable[[], str | None] = lambda: None,
        poll_seconds: float | None = None,
        give_up_seconds: float | None = None,
    ) -> None:
        self.journal = journal
        self.mailbox = mailbox
        self.poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self.give_up_seconds = GIVE_UP_SECONDS if give_up_seconds is None else give_up_seconds
        self._inner_state = inner_state
        self._inner_detail = inner_detail
        self._inner_failure = inner_failure
        self.holding = False
        self.standing_aside = False
        self.gave_up: str | None = None  # why, until this node next logs in

    @property
    def state(self) -> str:
        """The inbox's state while this node watches the mailbox; `gave-up` while it stands
        aside after giving the mailbox up (not ready); else `standby`."""
        if self.holding:
            return self._inner_state()
        return "gave-up" if self.standing_aside else "standby"

    @property
    def failure(self) -> str | None:
        """Why the inbox is not logged in, or why this node gave the mailbox up."""
        return self._inner_failure() if self.holding else self.gave_up

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
                if self.standing_aside:
                    await wait_any(stop, seconds=self.poll_seconds * STAND_ASIDE_POLLS)
                    self.standing_aside = False
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
        logged_in_at = time.monotonic()  # (or the start of the watch)
        try:
            while not (stop.is_set() or done.is_set()):
                await wait_any(stop, done, seconds=self.poll_seconds)
                if self._inner_state() in _LOGGED_IN:
                    logged_in_at = time.monotonic()
                    await self._logged_in()
                elif (
                    self.journal.shared  # with one node there is nobody to hand it to
                    and self._inner_failure() is not None  # failing, not merely connecting
                    and time.monotonic() - logged_in_at >= self.give_up_seconds
                ):
                    await self._give_up()
                    break
                if not stop.is_set() and not await self._hold():
                    log.warning("mailbox_lease_lost", node=self.journal.node)
                    break
        finally:
            watch_stop.set()
            self.holding = False
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(watcher, 10)

    async def _logged_in(self) -> None:
        if self.gave_up is not None:
            with contextlib.suppress(JournalUnavailable):
                await asyncio.to_thread(self.journal.note_watcher, None)
                self.gave_up = None

    async def _give_up(self) -> None:
        """Let the lease go so another node tries, and say why (no personal data: the
        failure's kind, such as `login_refused` or `tls`)."""
        reason = self._inner_failure()
        self.gave_up = (
            f"gave the mailbox up after {self.give_up_seconds:g} s without logging in ({reason})"
        )
        self.standing_aside = True
        log.warning("mailbox_given_up", node=self.journal.node, reason=reason)
        with contextlib.suppress(JournalUnavailable):
            await asyncio.to_thread(self.journal.release_mailbox, self.mailbox)
            await asyncio.to_thread(self.journal.note_watcher, self.gave_up)

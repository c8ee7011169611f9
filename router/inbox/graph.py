"""The graph:// inbox: polls a Microsoft 365 folder through Microsoft Graph, stores what is new
in the journal, and moves settled mail to the Processed or Failed folder.

Each turn (every `ROUTER_GRAPH_POLL_SECONDS`, or at once when an outcome was recorded):

1. settle: every message of this inbox with a recorded outcome is moved
   (`POST /users/{mailbox}/messages/{id}/move`) to `ROUTER_PROCESSED_FOLDER` or
   `ROUTER_FAILED_FOLDER` at the mailbox's top level (created when missing); a message Graph
   no longer knows under that id (404: moved before a crash let the journal record it) is
   recorded as settled, so nothing is moved twice;
2. a delta round (`router.inbox.graph_delta`) from the delta link kept in the journal; the new
   link is kept once the round's messages are stored. A link Graph answers 410 is forgotten
   and a new delta starts at once (a resync: nothing known is stored again, nothing left
   untouched at the first connection is taken);
3. settle again, so what the round met and was already decided leaves the folder.

Failures never leave `run`: Graph refusing (403: the application lacks the permission or may
not use this mailbox), Graph unreachable, throttling, a token the endpoint will not give, a
folder that does not exist, are logged once (not once per retry) and retried with backoff
(at least as long as Graph's `Retry-After`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

import structlog

from router.core.aio import wait_any
from router.graph.client import GraphClient, GraphError
from router.graph.folders import ensure_folder, find_folder, user_path
from router.inbox.graph_delta import SOURCE_PREFIX, DeltaLinkGone, DeltaRound
from router.inbox.imap_start import MemoryStartStore, StartStore
from router.inbox.imap_support import Backoff
from router.journal.sink import InboxSink
from router.oauth.base import OAuthError
from router.settings import Settings

log = structlog.get_logger(__name__)

REFUSED_BACKOFF_MIN_SECONDS = 30.0  # 401/403/404: an admin must act; do not hammer Graph


class DeltaLinks(Protocol):
    """Where the delta link lives (the journal: `router.journal.graph_sync.GraphSyncStore`)."""

    async def delta_link(self, mailbox: str) -> str | None: ...

    async def save_delta_link(self, mailbox: str, link: str | None) -> None: ...


class MemoryDeltaLinks:
    """`DeltaLinks` in memory (tests, one-off tools)."""

    def __init__(self) -> None:
        self.links: dict[str, str | None] = {}

    async def delta_link(self, mailbox: str) -> str | None:
        return self.links.get(mailbox)

    async def save_delta_link(self, mailbox: str, link: str | None) -> None:
        self.links[mailbox] = link


def sync_key(mailbox: str, folder: str) -> str:
    """`graph:<mailbox>/<folder>`: what the delta link and the first connection are kept under."""
    return f"{SOURCE_PREFIX}{mailbox.lower()}/{folder}"


class GraphInbox:
    """Keeps one Graph folder flowing into an `InboxSink`.

    Args:
        settings: the router's settings (the graph:// inbox, folders, limits, poll interval).
        client: a Graph client for the mailbox, with the inbox's token source.
        links: where delta links are kept.
        starts: where the first connection is recorded.
    """

    def __init__(
        self,
        settings: Settings,
        sink: InboxSink,
        client: GraphClient,
        *,
        links: DeltaLinks | None = None,
        starts: StartStore | None = None,
        on_stored: Callable[[], None] = lambda: None,
        on_state: Callable[[str], None] = lambda s: None,
    ) -> None:
        endpoint = settings.inbox_endpoint
        assert endpoint.scheme == "graph" and endpoint.user is not None
        self._settings, self._sink, self._client = settings, sink, client
        self.mailbox, self.folder = endpoint.user, endpoint.folder
        self.key = sync_key(self.mailbox, self.folder)
        self._links = links if links is not None else MemoryDeltaLinks()
        self._round = DeltaRound(
            client,
            sink,
            starts if starts is not None else MemoryStartStore(),
            mailbox=self.mailbox,
            start_key=self.key,
            mode=settings.imap_start,
            max_bytes=settings.max_message_bytes,
        )
        self._on_stored, self._on_state = on_stored, on_state
        self._settle_event = asyncio.Event()
        self._state = "stopped"
        self._failure: str | None = None
        self._folder_id: str | None = None
        self._targets: dict[str, str] = {}  # settle folder name -> id
        self.last_delta: float | None = None  # epoch seconds of the last finished round
        self.rounds = 0  # finished delta rounds, for tests

    @property
    def state(self) -> str:
        """ "stopped", "connecting", "connected" or "backoff"."""
        return self._state

    @property
    def failure(self) -> str | None:
        """Why the inbox is not connected (Graph's error code, `oauth`, ...), or None."""
        return self._failure

    def detail(self) -> dict[str, Any]:
        """What /readyz shows: folder, last delta round, throttling seen."""
        gate = self._client.gate
        return {
            "graph_folder": self.folder,
            "last_delta_seconds_ago": None
            if self.last_delta is None
            else round(time.time() - self.last_delta, 1),
            "throttled": gate.throttled,
            "throttled_for_seconds": round(gate.wait_seconds, 1),
        }

    def notify_settle(self) -> None:
        """Ask for settled messages to be moved now (call it from the event loop's thread)."""
        self._settle_event.set()

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._on_state(state)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll the folder until `stop` is set. Never raises for Graph's or the network's
        trouble."""
        backoff = Backoff()
        try:
            while not stop.is_set():
                if self._state != "connected":
                    self._set_state("connecting")
                delay = await self._turn(stop, backoff)
                self._set_state("backoff" if delay is not None else "connected")
                self._settle_event.clear()
                seconds = delay if delay is not None else self._settings.graph_poll_seconds
                await wait_any(stop, self._settle_event, seconds=seconds)
        finally:
            self._set_state("stopped")
            await self._client.close()

    async def _turn(self, stop: asyncio.Event, backoff: Backoff) -> float | None:
        """One settle-delta-settle turn; returns None, or the delay before the next try."""
        try:
            await self._settle()
            await self._delta(stop)
            await self._settle()
        except OAuthError as exc:  # the token source logged the cause once
            return self._failed("oauth", exc, backoff.next(), quiet=True)
        except GraphError as exc:
            minimum = REFUSED_BACKOFF_MIN_SECONDS if exc.status in (401, 403, 404) else 0.0
            delay = max(backoff.next(minimum), exc.retry_after or 0.0)
            return self._failed(exc.code, exc, delay)
        except OSError as exc:  # the journal could not store: the mail stays on the server
            return self._failed("storage", exc, backoff.next())
        if self._failure is not None or self.rounds == 1:
            log.info("graph.connected", folder_known=True, recovered=bool(self._failure))
            self._failure = None
        backoff.reset()
        return None

    def _failed(self, reason: str, exc: Exception, delay: float, *, quiet: bool = False) -> float:
        if reason != self._failure and not quiet:
            log.log(
                logging.WARNING,
                "graph.unavailable",
                reason=reason,
                error=str(exc),
                retry_seconds=round(delay, 1),
            )
        else:
            log.debug("graph.retry", reason=reason, retry_seconds=round(delay, 1))
        self._failure = reason
        return delay

    async def _inbox_folder(self) -> str:
        if self._folder_id is None:
            found = await find_folder(self._client, self.mailbox, self.folder)
            if found is None:
                raise GraphError(404, "folder_not_found", "the ROUTER_INBOX folder does not exist")
            self._folder_id = str(found["id"])
        return self._folder_id

    async def _delta(self, stop: asyncio.Event) -> None:
        folder_id = await self._inbox_folder()
        link = await self._links.delta_link(self.key)
        resync = False
        while True:
            try:
                new_link, stored = await self._round.run(
                    folder_id, link, resync=resync, stopping=stop.is_set
                )
            except DeltaLinkGone:
                if link is None:
                    raise GraphError(410, "SyncStateNotFound", "a new delta was refused") from None
                log.warning("graph.delta_link_expired", detail="starting a new delta")
                await self._links.save_delta_link(self.key, None)
                link, resync = None, True
                continue
            break
        if stored:
            self._on_stored()
        if new_link is not None:
            await self._links.save_delta_link(self.key, new_link)
            self.last_delta = time.time()
            self.rounds += 1

    async def _settle(self) -> None:
        """Move every message of this inbox with a recorded outcome, then record that."""
        for item in await self._sink.settlements(SOURCE_PREFIX):
            if item.folder not in self._targets:
                self._targets[item.folder] = await ensure_folder(
                    self._client, self.mailbox, item.folder
                )
            message_id = item.source_key.removeprefix(SOURCE_PREFIX)
            path = f"{user_path(self.mailbox)}/messages/{quote(message_id, safe='')}/move"
            try:
                await self._client.request(
                    "POST", path, json={"destinationId": self._targets[item.folder]}
                )
            except GraphError as exc:
                if exc.status != 404 or await self._exists(message_id):
                    self._targets.pop(item.folder, None)  # the folder may have been deleted
                    raise
                log.info("graph.settle_gone", journal_id=item.message_id)
            await self._sink.settled(item.message_id)
            log.info("graph.settled", journal_id=item.message_id, folder=item.folder)

    async def _exists(self, message_id: str) -> bool:
        """Whether Graph still has a message under this id (a 404 on a move may be the
        destination's)."""
        path = f"{user_path(self.mailbox)}/messages/{quote(message_id, safe='')}"
        try:
            await self._client.request("GET", path, params={"$select": "id"})
        except GraphError as exc:
            if exc.status == 404:
                return False
            raise
        return True

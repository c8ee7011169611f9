"""One delta round of a graph:// inbox: what entered the folder since the last delta link,
each new message stored through the `InboxSink` before anything acts on it.

A round follows `@odata.nextLink` to the `@odata.deltaLink`, which is kept in the journal only
once every message of the round is stored: a crash mid-round repeats the round, and the
journal's source keys (`graph:<message id>`) make the repeat store nothing twice.

First connection (`ROUTER_IMAP_START`, `router.inbox.imap_start`, whose `StartStore` it uses):
the first round meets what is already in the folder. With `new` all of it is left untouched,
with a date what arrived before it, with `all` nothing; the Message-IDs of what was left are
recorded (hashed). Later, a message the journal does not know is left untouched when its
Message-ID was there at the first connection, and, in a round that starts a new delta after
Graph forgot the old link (410), when it arrived before the first connection's cut-off.

A message whose size (PidTagMessageSize) is over `ROUTER_MAX_MESSAGE_BYTES` is not downloaded:
it goes to review from its Message-ID and From (`InboxSink.accept_oversize`), as for IMAP; one
Graph gives no size for is measured once downloaded and, if too large, goes the same way.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import structlog

from router.core.mailbox import MailboxStart
from router.graph.client import GraphClient, GraphError
from router.graph.folders import user_path
from router.inbox.imap_start import StartStore, date_cutoff, id_hash
from router.journal.opener import message_id_header
from router.journal.sink import InboxSink

log = structlog.get_logger(__name__)

SOURCE_PREFIX = "graph:"
PAGE_SIZE = 50
SIZE_PROPERTY = "Integer 0x0E08"  # PidTagMessageSize
DELTA_PARAMS = {
    "$select": "internetMessageId,receivedDateTime,from",
    "$expand": f"singleValueExtendedProperties($filter=id eq '{SIZE_PROPERTY}')",
}
PREFER = {"Prefer": f"odata.maxpagesize={PAGE_SIZE}"}


def source_key(message_id: str) -> str:
    """The journal's key for one Graph message (its id in the folder)."""
    return SOURCE_PREFIX + message_id


class DeltaLinkGone(Exception):
    """Graph no longer knows the delta link (410): the next round starts a new delta."""


def _size(item: dict[str, Any]) -> int | None:
    for prop in item.get("singleValueExtendedProperties") or []:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower().endswith("0xe08"):
            try:
                return int(str(prop.get("value")))
            except (TypeError, ValueError):
                return None
    return None


def _received(item: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(item.get("receivedDateTime"))).timestamp()
    except ValueError:
        return None


def _sender(item: dict[str, Any]) -> str | None:
    address = ((item.get("from") or {}).get("emailAddress") or {}).get("address")
    return address if isinstance(address, str) and "@" in address else None


class DeltaRound:
    """Reads one folder's changes into the sink.

    Args:
        client: the inbox's Graph client.
        mailbox: the mailbox's address.
        start_key: what the first connection is recorded under (`graph:<mailbox>/<folder>`).
        mode: `ROUTER_IMAP_START`.
        max_bytes: `ROUTER_MAX_MESSAGE_BYTES`.
    """

    def __init__(
        self,
        client: GraphClient,
        sink: InboxSink,
        starts: StartStore,
        *,
        mailbox: str,
        start_key: str,
        mode: str,
        max_bytes: int,
    ) -> None:
        self._client, self._sink, self._starts = client, sink, starts
        self._mailbox, self._start_key, self._mode = mailbox, start_key, mode
        self._max_bytes = max_bytes

    async def pages(self, url: str, params: dict[str, str] | None) -> AsyncIterator[dict[str, Any]]:
        """Every page from `url` on; the last one holds the delta link.

        Raises:
            DeltaLinkGone: Graph answered 410.
        """
        while True:
            try:
                response = await self._client.request("GET", url, params=params, headers=PREFER)
            except GraphError as exc:
                if exc.status == 410:
                    raise DeltaLinkGone(exc.code) from None
                raise
            page = response.json()
            yield page
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            url, params = str(next_link), None  # Graph keeps the query options in the link

    async def run(
        self, folder_id: str, delta_link: str | None, *, resync: bool, stopping: Callable[[], bool]
    ) -> tuple[str | None, int]:
        """Store what is new; returns (the round's delta link or None if stopped, stored).

        Raises:
            DeltaLinkGone: Graph no longer knows `delta_link`.
        """
        start = await self._starts.load(self._start_key)
        first = start is None
        url = delta_link or f"{user_path(self._mailbox)}/mailFolders/{folder_id}/messages/delta"
        params = None if delta_link else DELTA_PARAMS
        stored, old_hashes, newest = 0, set[str](), 0.0
        claimed: set[str] = set()
        page: dict[str, Any] = {}
        async for page in self.pages(url, params):
            items = [i for i in page.get("value") or [] if isinstance(i, dict) and "id" in i]
            for item in items:
                if stopping():
                    return None, stored
                if "@removed" in item:
                    continue  # left the folder: settled, or moved by a person
                if first:
                    if self._there_first(item):
                        old_hashes.add(id_hash(item.get("internetMessageId") or ""))
                        newest = max(newest, _received(item) or 0.0)
                        continue
                elif await self._untouched(item, start, resync):
                    continue
                stored += await self._take(item, claimed)
        if first:
            await self._record_first(old_hashes, newest)
        link = page.get("@odata.deltaLink")
        return (str(link) if link else None), stored

    def _there_first(self, item: dict[str, Any]) -> bool:
        if self._mode == "all":
            return False
        if self._mode == "new":
            return True
        received = _received(item)
        return received is not None and received < date_cutoff(self._mode)

    async def _record_first(self, old_hashes: set[str], newest: float) -> None:
        now = time.time()
        cutoff = {"all": 0.0, "new": min(newest, now)}.get(self._mode)
        if cutoff is None:
            cutoff = date_cutoff(self._mode)
        start = MailboxStart(self._start_key, self._mode, cutoff, now, 0)
        await self._starts.record(self._start_key, 0, (), start=start, id_hashes=old_hashes)
        log.info("graph.first_connection", imap_start=self._mode, untouched=len(old_hashes))

    async def _untouched(
        self, item: dict[str, Any], start: MailboxStart | None, resync: bool
    ) -> bool:
        """Whether a message the journal may not know was in the folder before the router."""
        if start is None or start.mode == "all":
            return False
        if await self._sink.find_source(source_key=source_key(str(item["id"]))) is not None:
            return False  # known: `_take` skips it
        mid = item.get("internetMessageId")
        if mid and await self._starts.known_old(self._start_key, [id_hash(mid)]):
            return True
        received = _received(item)
        return resync and received is not None and received < start.cutoff

    async def _take(self, item: dict[str, Any], claimed: set[str]) -> int:
        """Store one message unless the journal has it; returns 1 if it stored one."""
        key = source_key(str(item["id"]))
        if await self._sink.find_source(source_key=key) is not None:
            return 0
        size = _size(item)
        raw = None if size is not None and size > self._max_bytes else await self._download(item)
        if raw is None:
            await self._oversize(item, key, size)
            return 1
        mid, digest = message_id_header(raw), hashlib.sha256(raw).hexdigest()
        found = await self._sink.find_source(message_id_header=mid, sha256=digest)
        if found is not None and found not in claimed:
            # The same message under a new id (moved out and back): settle it, never twice.
            await self._sink.rekey(found, key)
            claimed.add(found)
            log.info("graph.rekeyed", journal_id=found)
            return 0
        claimed.add(await self._sink.accept(raw, source_key=key))
        log.debug("graph.stored", size=len(raw))
        return 1

    async def _download(self, item: dict[str, Any]) -> bytes | None:
        """The MIME, or None when it is larger than the limit (Graph gave no size)."""
        path = f"{user_path(self._mailbox)}/messages/{quote(str(item['id']), safe='')}/$value"
        raw = (await self._client.request("GET", path)).content
        return None if len(raw) > self._max_bytes else raw

    async def _oversize(self, item: dict[str, Any], key: str, size: int | None) -> None:
        await self._sink.accept_oversize(
            source_key=key,
            size=size or self._max_bytes + 1,
            message_id_header=item.get("internetMessageId") or None,
            sender=_sender(item),
        )
        log.info("graph.oversize", size=size, limit=self._max_bytes)

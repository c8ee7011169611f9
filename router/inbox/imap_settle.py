"""Settling an IMAP folder: mail with a recorded outcome is moved to its Processed or Failed
folder, and the journal told it was."""

from __future__ import annotations

import structlog

from router.core.mailbox import imap_source_prefix
from router.inbox.imap_session import ImapSession
from router.inbox.imap_support import chunks, parse_source_key
from router.journal.sink import InboxSink

log = structlog.get_logger(__name__)


class Settler:
    """Settles one inbox's folder, once per turn of its IDLE loop."""

    def __init__(self, sink: InboxSink, batch: int, mailbox: str) -> None:
        self._sink = sink
        self._mailbox = mailbox  # only its messages: never another folder's or server's
        self._batch = batch  # UIDs per MOVE
        self._move_refused: set[str] = set()  # folders whose last MOVE was refused

    async def settle(self, session: ImapSession) -> None:
        """Move every message with a recorded outcome to its folder, then record that."""
        by_folder: dict[str, dict[int, str]] = {}
        for item in await self._sink.settlements(imap_source_prefix(self._mailbox)):
            parsed = parse_source_key(item.source_key, self._mailbox)
            if parsed is None:
                log.warning("imap.bad_source_key", journal_id=item.message_id)
            elif parsed[0] != session.uidvalidity:
                # Catch-up re-keyed every message still in the folder: this one left it.
                log.info("imap.settle_gone", journal_id=item.message_id, reason="uidvalidity")
                await self._sink.settled(item.message_id)
            else:
                by_folder.setdefault(item.folder, {})[parsed[1]] = item.message_id
        for folder, ids in by_folder.items():
            await session.ensure_folder(folder)
            for batch in chunks(sorted(ids), self._batch):
                if not await session.move(batch, folder):
                    # Retried before every IDLE; said once until it works again.
                    level = log.debug if folder in self._move_refused else log.warning
                    level("imap.move_refused", folder=folder, count=len(batch))
                    self._move_refused.add(folder)
                    continue
                self._move_refused.discard(folder)
                for uid in batch:
                    await self._sink.settled(ids[uid])
                log.info("imap.settled", folder=folder, count=len(batch))

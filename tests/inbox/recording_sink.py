"""An in-memory `InboxSink` that records every call, for inbox tests (the journal's stand-in)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from router.journal.opener import message_id_header as message_id_of
from router.journal.sink import Settlement

WAIT = 10.0  # seconds: an upper bound, tests finish as soon as the condition holds


class RecordingSink:
    """An in-memory `InboxSink` that records every call (the journal's stand-in)."""

    def __init__(self) -> None:
        self.changed = asyncio.Condition()
        self.raw: dict[str, bytes] = {}
        self.keys: dict[str, str] = {}  # source key -> id
        self.accepts: list[str] = []  # source keys handed to accept
        self.oversize: list[dict[str, Any]] = []
        self.rekeys: list[tuple[str, str]] = []
        self.outcomes: dict[str, str] = {}  # id -> folder
        self.settled_ids: list[str] = []

    async def _changed(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def until(self, predicate: Callable[[], bool], within: float = WAIT) -> None:
        """Wait until `predicate()` holds after some change; fail after `within` seconds."""

        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)

        await asyncio.wait_for(wait(), within)

    def _new_id(self, key: str) -> str:
        message_id = f"j{len(self.keys) + 1}"
        self.keys[key] = message_id
        return message_id

    async def accept(
        self, raw: bytes, *, source_key: str | None = None, envelope_recipients: Sequence[str] = ()
    ) -> str:
        assert source_key is not None
        self.accepts.append(source_key)
        if source_key in self.keys:
            return self.keys[source_key]
        message_id = self._new_id(source_key)
        self.raw[message_id] = raw
        await self._changed()
        return message_id

    async def accept_oversize(
        self, *, source_key: str, size: int, message_id_header: str | None, sender: str | None
    ) -> str:
        self.oversize.append(
            {"key": source_key, "size": size, "message_id": message_id_header, "sender": sender}
        )
        message_id = self.keys.get(source_key) or self._new_id(source_key)
        await self._changed()
        return message_id

    async def find_source(
        self,
        *,
        source_key: str | None = None,
        message_id_header: str | None = None,
        sha256: str | None = None,
        source_prefix: str | None = None,
    ) -> str | None:
        if source_key is not None:
            return self.keys.get(source_key)
        by_id = {v: k for k, v in self.keys.items()}
        for message_id, raw in self.raw.items():
            key = by_id.get(message_id, "")
            if source_prefix is not None and not (
                key.startswith(source_prefix)
                or (key.startswith("imap:") and not key.startswith("imap://"))
            ):
                continue
            if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
                continue
            if message_id_header is not None and message_id_of(raw) != message_id_header:
                continue
            return message_id
        return None

    async def adopt_sources(self, old_prefix: str, new_prefix: str) -> int:
        adopted = {k: v for k, v in self.keys.items() if k.startswith(old_prefix)}
        for key, message_id in adopted.items():
            del self.keys[key]
            self.keys[new_prefix + key[len(old_prefix) :]] = message_id
        return len(adopted)

    async def rekey(self, message_id: str, source_key: str) -> None:
        self.keys = {k: v for k, v in self.keys.items() if v != message_id}
        self.keys[source_key] = message_id
        self.rekeys.append((message_id, source_key))
        await self._changed()

    async def settlements(self, source_prefix: str) -> list[Settlement]:
        by_id = {v: k for k, v in self.keys.items()}
        return [
            Settlement(message_id=message_id, source_key=by_id[message_id], folder=folder)
            for message_id, folder in self.outcomes.items()
            if message_id not in self.settled_ids and by_id[message_id].startswith(source_prefix)
        ]

    async def settled(self, message_id: str) -> None:
        self.settled_ids.append(message_id)
        await self._changed()

    async def record_state(self, state: str) -> None:
        await self._changed()

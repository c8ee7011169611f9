"""The IMAP inbox: keeps a folder in sync with the journal over IMAP IDLE, and settles mail.

Life of one connection (`ImapInbox.run` reconnects for ever, with backoff):

1. log in, SELECT the folder, read its UIDVALIDITY;
2. catch up: every UID in the folder is either known to the journal (by its source key
   ``imap:<uidvalidity>:<uid>``) or is downloaded with BODY.PEEK[] (never marking it \\Seen)
   and handed to `InboxSink.accept`; a message larger than `max_message_bytes` is recorded
   with `accept_oversize` from its Message-ID and From only;
3. settle: messages with a recorded outcome are moved to the Processed or Failed folder;
4. IDLE until new mail, a settle request (`notify_settle`), the stop event, or
   `idle_seconds`; then fetch new UIDs, settle, and IDLE again.

UIDVALIDITY: the last value is kept in memory. When it changed, or on the first connection
after start-up (when it is unknown), each message without a known key is identified by its
Message-ID and SHA-256 (`find_source`) and re-keyed (`rekey`) instead of being stored twice.
A message byte-for-byte identical to one already stored is then taken to be that message.

Failures are never raised out of `run`: a refused login, a certificate the CA file does not
verify, a missing folder or a lost connection are logged once (not once per retry) and
retried with exponential backoff and jitter (0.5 s doubling to 60 s; a refused login waits at
least 30 s, so a mistyped password does not lock the account). Only a configuration that can
never work (plain IMAP to a remote host, no password) raises, from the constructor.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import logging
import random
import ssl
from collections.abc import Callable, Sequence
from email.utils import parseaddr

import structlog

from router.inbox.base import InboxSink
from router.inbox.imap_session import (
    COMMAND_TIMEOUT,
    ImapAuthError,
    ImapConnectionError,
    ImapSession,
)
from router.journal.store import message_id_header
from router.settings import Settings

log = structlog.get_logger(__name__)

SOURCE_PREFIX = "imap:"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0
AUTH_BACKOFF_MIN_SECONDS = 30.0


class ImapConfigError(ValueError):
    """The IMAP settings can never work; the daemon should refuse to start."""


def source_key(uidvalidity: int, uid: int) -> str:
    """The journal's key for one message of this inbox."""
    return f"{SOURCE_PREFIX}{uidvalidity}:{uid}"


def parse_source_key(key: str) -> tuple[int, int] | None:
    """(uidvalidity, uid) from a key made by `source_key`, or None."""
    prefix, _, rest = key.partition(":")
    uidvalidity, _, uid = rest.partition(":")
    if prefix + ":" != SOURCE_PREFIX or not uidvalidity.isdigit() or not uid.isdigit():
        return None
    return int(uidvalidity), int(uid)


def sender_address(raw_headers: bytes) -> str | None:
    """The bare address of the From header, or None if there is no usable one."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw_headers)
    address = parseaddr(str(headers.get("From", "")))[1]
    if "@" not in address or any(c.isspace() for c in address):
        return None
    return address


class Backoff:
    """Exponential delays with jitter, reset after a good session."""

    def __init__(self, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_MAX_SECONDS):
        self._base, self._cap, self.failures = base, cap, 0

    def next(self, minimum: float = 0.0) -> float:
        """The next delay in seconds: half to all of the current step, never below `minimum`."""
        step = min(self._cap, self._base * 2**self.failures)
        self.failures += 1
        jittered = step * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not security)
        return float(max(minimum, jittered))

    def reset(self) -> None:
        """Start again from the base delay."""
        self.failures = 0


def _chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class ImapInbox:
    """Keeps one IMAP folder flowing into an `InboxSink`.

    Args:
        settings: the router's settings (inbox endpoint, password, folders, limits).
        sink: where messages go (the journal).
        on_stored: called after each batch that stored at least one new message.
        on_state: called with the new `state` on every change.
        command_timeout: seconds any one server answer may take before the connection is
            taken for dead and re-opened (how fast a half-open connection is noticed, on top
            of `idle_seconds` while IDLE).

    Raises:
        ImapConfigError: the endpoint is not imap/imaps, plain IMAP would go to a host that
            is not on loopback without `allow_insecure`, the password is missing, the CA
            file cannot be loaded, or a settle folder is the inbox folder itself.
    """

    def __init__(
        self,
        settings: Settings,
        sink: InboxSink,
        *,
        on_stored: Callable[[], None] = lambda: None,
        on_state: Callable[[str], None] = lambda s: None,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        endpoint = settings.inbox_endpoint
        if endpoint.scheme not in ("imap", "imaps"):
            raise ImapConfigError(f"ROUTER_INBOX is {endpoint.scheme}://, not imap:// or imaps://")
        if endpoint.scheme == "imap" and not endpoint.is_loopback and not settings.allow_insecure:
            raise ImapConfigError(
                f"refusing plain-text IMAP to {endpoint.host}: the password and the referrals"
                " would cross the network unencrypted. Use imaps:// (or set"
                " ROUTER_ALLOW_INSECURE=true for a trusted network)"
            )
        password = settings.secret("inbox")
        if not endpoint.user or password is None:
            raise ImapConfigError(
                "IMAP needs a user in ROUTER_INBOX (imaps://user@host/INBOX) and"
                " ROUTER_INBOX_PASSWORD or ROUTER_INBOX_PASSWORD_FILE"
            )
        for folder in (settings.processed_folder, settings.failed_folder):
            if folder.upper() == endpoint.folder.upper() or not folder.strip():
                raise ImapConfigError(f"settle folder {folder!r} must differ from the inbox folder")
        self._ssl: ssl.SSLContext | None = None
        if endpoint.scheme == "imaps":
            cafile = str(settings.inbox_ca_file) if settings.inbox_ca_file else None
            try:
                self._ssl = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise ImapConfigError(f"ROUTER_INBOX_CA_FILE cannot be loaded: {exc}") from exc
        self._settings, self._endpoint, self._password = settings, endpoint, password
        self._user: str = endpoint.user
        self._sink = sink
        self._on_stored, self._on_state = on_stored, on_state
        self._settle_event = asyncio.Event()
        self._state = "stopped"
        self._uidvalidity: int | None = None
        self._last_uid = 0
        self._announced = 0  # the last UIDVALIDITY change logged
        self._failure: str | None = None
        self._command_timeout = command_timeout
        self._stop = asyncio.Event()
        self._move_refused: set[str] = set()  # folders whose last MOVE was refused
        self._delay = 0.0
        self.connections = 0  # successful sessions so far, for tests and metrics

    @property
    def state(self) -> str:
        """ "stopped", "connecting", "connected", "idle" or "backoff"."""
        return self._state

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._on_state(state)

    def notify_settle(self) -> None:
        """Ask for settled messages to be moved now (leaves IDLE within moments).

        Call it from the event loop's thread, after recording outcomes.
        """
        self._settle_event.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the folder in sync until `stop` is set. Never raises for server trouble."""
        backoff = Backoff()
        self._stop = stop
        try:
            while not stop.is_set():
                try:
                    await self._session(stop, backoff)
                except ImapAuthError as exc:
                    self._failed("login_refused", exc, backoff.next(AUTH_BACKOFF_MIN_SECONDS))
                except ImapConnectionError as exc:
                    self._failed("connection", exc, backoff.next())
                except OSError as exc:  # the sink could not store: keep the mail on the server
                    self._failed("storage", exc, backoff.next())
                except Exception as exc:  # a bug must not stop the inbox for good; it is logged
                    self._failed(f"unexpected {type(exc).__name__}", exc, backoff.next())
                else:
                    continue
                if not stop.is_set():
                    self._set_state("backoff")
                    await _wait(stop, self._delay)
        finally:
            self._set_state("stopped")

    def _failed(self, kind: str, exc: Exception, delay: float) -> None:
        self._delay = delay
        reason = "tls" if isinstance(exc.__cause__, ssl.SSLError) else kind
        if reason != self._failure:
            unexpected = reason.startswith("unexpected")
            log.log(
                logging.ERROR if unexpected else logging.WARNING,
                "imap.unavailable",
                reason=reason,
                error=str(exc),
                retry_seconds=round(delay, 1),
                exc_info=exc if unexpected else None,
            )
            self._failure = reason
        else:
            log.debug("imap.retry", reason=reason, retry_seconds=delay)

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        self._set_state("connecting")
        session = await ImapSession.open(
            host=self._endpoint.host,
            port=self._endpoint.port,
            user=self._user,
            password=self._password,
            folder=self._endpoint.folder,
            ssl_context=self._ssl,
            command_timeout=self._command_timeout,
        )
        try:
            await self._catch_up(session)
            self.connections += 1
            self._set_state("connected")
            backoff.reset()
            if self._failure is not None or self.connections == 1:
                log.info(
                    "imap.connected", uidvalidity=session.uidvalidity, recovered=bool(self._failure)
                )
                self._failure = None
            while not stop.is_set():
                await self._settle(session)
                while session.exists_seen and not stop.is_set():
                    session.exists_seen = False
                    await self._fetch_new(session)
                await session.idle(
                    self._settings.idle_seconds,
                    (stop, self._settle_event),
                    on_started=lambda: self._set_state("idle"),
                )
                self._set_state("connected")
                await self._fetch_new(session)
        finally:
            if stop.is_set():
                await session.logout()
            else:
                session.abort()

    async def _catch_up(self, session: ImapSession) -> None:
        uidvalidity = session.uidvalidity
        reidentify = self._uidvalidity != uidvalidity
        if reidentify and self._uidvalidity is not None and uidvalidity != self._announced:
            log.warning("imap.uidvalidity_changed", old=self._uidvalidity, new=uidvalidity)
            self._announced = uidvalidity  # once, not again on each retry of the catch-up
        uids = await session.search("ALL")
        if await self._take(session, uids, reidentify=reidentify):
            self._uidvalidity = uidvalidity
            self._last_uid = max(uids, default=0)

    async def _fetch_new(self, session: ImapSession) -> None:
        found = await session.search("UID", f"{self._last_uid + 1}:*")
        uids = [uid for uid in found if uid > self._last_uid]  # "n:*" always matches the last UID
        if uids and await self._take(session, uids, reidentify=False):
            self._last_uid = max(uids)

    async def _take(self, session: ImapSession, uids: list[int], *, reidentify: bool) -> bool:
        """Store every UID the journal does not know yet, in batches.

        Returns:
            False if it stopped early because the inbox is stopping.
        """
        known: dict[int, str] = {}
        for uid in uids:
            found = await self._sink.find_source(source_key=source_key(session.uidvalidity, uid))
            if found is not None:
                known[uid] = found
        claimed = set(known.values())  # journal ids that already have a message in the folder
        unknown = [uid for uid in uids if uid not in known]
        if unknown:
            log.info("imap.catching_up", new=len(unknown), known=len(known), reidentify=reidentify)
        for batch in _chunks(unknown, self._settings.imap_batch):
            if self._stop.is_set():
                return False
            sizes = await session.fetch_sizes(batch)
            stored = 0
            for uid in batch:
                if uid in sizes:  # else it vanished (moved by someone else) meanwhile
                    stored += await self._take_one(session, uid, sizes[uid], reidentify, claimed)
            if stored:
                self._on_stored()
        return True

    async def _take_one(
        self, session: ImapSession, uid: int, size: int, reidentify: bool, claimed: set[str]
    ) -> int:
        """Store or re-key one message; return 1 if a new message was stored."""
        key = source_key(session.uidvalidity, uid)
        if size > self._settings.max_message_bytes:
            headers = await session.fetch_part(uid, "HEADER.FIELDS (MESSAGE-ID FROM)")
            if headers is None:
                return 0
            mid = message_id_header(headers)
            if reidentify and mid and await self._rekeyed(key, claimed, message_id_header=mid):
                return 0
            await self._sink.accept_oversize(
                source_key=key, size=size, message_id_header=mid, sender=sender_address(headers)
            )
            log.info("imap.oversize", uid=uid, size=size, limit=self._settings.max_message_bytes)
            return 1
        raw = await session.fetch_part(uid, "", size_hint=size)
        if raw is None:
            return 0
        if reidentify and await self._rekeyed(
            key,
            claimed,
            message_id_header=message_id_header(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
        ):
            return 0
        await self._sink.accept(raw, source_key=key)
        log.debug("imap.stored", uid=uid, size=size)
        return 1

    async def _rekeyed(
        self,
        key: str,
        claimed: set[str],
        *,
        message_id_header: str | None,
        sha256: str | None = None,
    ) -> bool:
        found = await self._sink.find_source(message_id_header=message_id_header, sha256=sha256)
        if found is None or found in claimed:
            return False
        await self._sink.rekey(found, key)
        claimed.add(found)
        log.info("imap.rekeyed", journal_id=found, source_key=key)
        return True

    async def _settle(self, session: ImapSession) -> None:
        """Move every message with a recorded outcome to its folder, then record that."""
        self._settle_event.clear()
        by_folder: dict[str, dict[int, str]] = {}
        for item in await self._sink.settlements(SOURCE_PREFIX):
            parsed = parse_source_key(item.source_key)
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
            for batch in _chunks(sorted(ids), self._settings.imap_batch):
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


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds` or until `event` is set, whichever comes first."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return

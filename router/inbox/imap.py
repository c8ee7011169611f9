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

Authentication: LOGIN with the password, or (`ROUTER_INBOX_AUTH=oauth2`) AUTHENTICATE
XOAUTH2 with a token from a `TokenSource`. The session ends itself, politely, when the token
is due for renewal, and is opened again at once with a new token; a server that ends it
first (Exchange Online: `BYE ... AccessTokenExpired`) gets the same at once, without backoff.
Catch-up by UID after each reconnect loses nothing and the journal's source keys repeat
nothing.

First connection: mail that was in the folder when the router first met the mailbox is left
untouched (`ROUTER_IMAP_START`; `router.inbox.imap_start`).

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
import hashlib
import logging
import ssl
import time
from collections.abc import Callable

import structlog

from router.core.mailbox import imap_source_prefix
from router.inbox.imap_config import ImapConfigError, check_settings, imap_ssl_context
from router.inbox.imap_session import (
    COMMAND_TIMEOUT,
    ImapAuthError,
    ImapConnectionError,
    ImapSession,
    ImapTokenExpired,
)
from router.inbox.imap_settle import Settler
from router.inbox.imap_start import FirstConnection, MemoryStartStore, StartStore
from router.inbox.imap_support import (
    Backoff,
    adopt_legacy_keys,
    chunks,
    mailbox_key,
    parse_source_key,
    sender_address,
    source_key,
    wait,
)
from router.journal.opener import message_id_header
from router.journal.sink import InboxSink
from router.oauth.base import OAuthError, TokenSource
from router.settings import Settings

log = structlog.get_logger(__name__)

__all__ = ["ImapConfigError", "ImapInbox", "parse_source_key", "source_key"]

AUTH_BACKOFF_MIN_SECONDS = 30.0
_RENEW_RETRY_SECONDS = 30.0  # a failed token renewal is tried again this soon
_EXPIRY_MARGIN_SECONDS = 15.0  # a session is not kept this close to its token's expiry


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
        tokens: TokenSource | None = None,
        starts: StartStore | None = None,
    ) -> None:
        check_settings(settings)
        if settings.inbox_auth == "oauth2" and tokens is None:
            raise ImapConfigError("ROUTER_INBOX_AUTH=oauth2 needs a token source")
        endpoint = settings.inbox_endpoint
        assert endpoint.user is not None  # check_settings
        self._ssl = imap_ssl_context(settings)
        self._settings, self._endpoint = settings, endpoint
        self._password = settings.secret("inbox")
        self._tokens = tokens if settings.inbox_auth == "oauth2" else None
        self._user: str = endpoint.user
        self._sink = sink
        # The normalised mailbox: its messages' keys, first connection and lease name it.
        self.mailbox = mailbox_key(endpoint.user, endpoint.host, endpoint.folder)
        self._settler = Settler(sink, settings.imap_batch, self.mailbox)
        self._first = FirstConnection(
            settings.imap_start,
            self.mailbox,
            starts if starts is not None else MemoryStartStore(),
        )
        self._on_stored, self._on_state = on_stored, on_state
        self._settle_event = asyncio.Event()
        self._state = "stopped"
        self._uidvalidity: int | None = None
        self._last_uid = 0
        self._announced = 0  # the last UIDVALIDITY change logged
        self._failure: str | None = None
        self._command_timeout = command_timeout
        self._stop = asyncio.Event()
        self._delay = 0.0
        self._renew_at: float | None = None  # monotonic: re-authenticate before the token expires
        self._expires_at = 0.0  # monotonic: when the session's token expires
        self._renew_window = 0.0  # seconds between a token's renewal time and its expiry
        self.connections = 0  # successful sessions so far, for tests and metrics

    @property
    def failure(self) -> str | None:
        """Why the inbox is not connected (`login_refused`, `oauth`, `tls`, ...), or None."""
        return self._failure

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
                except OAuthError as exc:  # the token source logged the cause once
                    self._failed("oauth", exc, backoff.next(), quiet=True)
                except ImapTokenExpired as exc:
                    self._token_expired(exc)
                    continue
                except ImapAuthError as exc:
                    self._auth_refused(exc, backoff)
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
                    await wait(stop, self._delay)
        finally:
            self._set_state("stopped")

    def _token_expired(self, exc: ImapTokenExpired) -> None:
        """The server ended the session for an expired token: new token, reconnect at once."""
        if self._tokens is not None:
            self._tokens.invalidate()
        log.info("imap.reauthenticate", reason="token_expired_at_server")

    def _auth_refused(self, exc: ImapAuthError, backoff: Backoff) -> None:
        delay = backoff.next(AUTH_BACKOFF_MIN_SECONDS)
        if self._tokens is None:
            self._failed("login_refused", exc, delay)
            return
        self._tokens.refused("imap")  # logs the cause and the settings to check, once
        self._failed("token_refused", exc, delay, quiet=True)

    def _failed(self, kind: str, exc: Exception, delay: float, *, quiet: bool = False) -> None:
        self._delay = delay
        reason = "tls" if isinstance(exc.__cause__, ssl.SSLError) else kind
        if reason != self._failure and not quiet:
            unexpected = reason.startswith("unexpected")
            log.log(
                logging.ERROR if unexpected else logging.WARNING,
                "imap.unavailable",
                reason=reason,
                error=str(exc),
                retry_seconds=round(delay, 1),
                exc_info=exc if unexpected else None,
            )
        else:
            log.debug("imap.retry", reason=reason, retry_seconds=delay)
        self._failure = reason

    async def _open(self) -> ImapSession:
        """Connect and log in: LOGIN with the password, or XOAUTH2 with a current token."""
        token = None
        self._renew_at = None
        if self._tokens is not None:
            access = await self._tokens.token()
            token, self._renew_at, self._expires_at = (
                access.value,
                access.renew_at,
                access.expires_at,
            )
        session = await ImapSession.open(
            host=self._endpoint.host,
            port=self._endpoint.port,
            user=self._user,
            password=self._password,
            token=token,
            folder=self._endpoint.folder,
            ssl_context=self._ssl,
            command_timeout=self._command_timeout,
        )
        if self._tokens is not None:
            self._tokens.accepted()
        return session

    def _idle_seconds(self) -> float:
        """Until the next IDLE re-issue, or until the token must be renewed if that is sooner."""
        seconds = float(self._settings.idle_seconds)
        if self._renew_at is not None:
            seconds = min(seconds, max(0.0, self._renew_at - time.monotonic()))
        return seconds

    async def _must_reauthenticate(self) -> bool:
        """Whether to start a new session now: the token is due and a new one is at hand.

        The new token is fetched while the session still runs: if the token endpoint fails,
        the session goes on with the old token (retrying every 30 s) until shortly before it
        expires, instead of dropping a working session it could not replace.
        """
        now = time.monotonic()
        if self._tokens is None or self._renew_at is None or now < self._renew_at:
            return False
        try:
            await self._tokens.token()  # cached: the next session logs in with it
        except OAuthError:
            window = self._renew_window
            keep_until = self._expires_at - min(_EXPIRY_MARGIN_SECONDS, window / 2)
            if now < keep_until:
                retry = min(_RENEW_RETRY_SECONDS, max(0.5, window / 8))
                self._renew_at = min(now + retry, keep_until)
                return False
            raise
        return True

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        self._set_state("connecting")
        session = await self._open()
        reauthenticate = False
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
                self._settle_event.clear()
                await self._settler.settle(session)
                while session.exists_seen and not stop.is_set():
                    session.exists_seen = False
                    await self._fetch_new(session)
                if await self._must_reauthenticate():
                    # Before the token expires: a new session with a new token (SPEC 7).
                    log.debug("imap.reauthenticate", reason="token_renewal")
                    reauthenticate = True
                    return
                await session.idle(
                    self._idle_seconds(),
                    (stop, self._settle_event),
                    on_started=lambda: self._set_state("idle"),
                )
                self._set_state("connected")
                await self._fetch_new(session)
        finally:
            if stop.is_set() or reauthenticate:
                await session.logout()
            else:
                session.abort()

    async def _catch_up(self, session: ImapSession) -> None:
        uidvalidity = session.uidvalidity
        await adopt_legacy_keys(self._sink, self.mailbox, uidvalidity)
        reidentify = self._uidvalidity != uidvalidity
        if reidentify and self._uidvalidity is not None and uidvalidity != self._announced:
            log.warning("imap.uidvalidity_changed", old=self._uidvalidity, new=uidvalidity)
            self._announced = uidvalidity  # once, not again on each retry of the catch-up
        uids = await session.search("ALL")
        if await self._take(session, uids, reidentify=reidentify, first=True):
            self._uidvalidity = uidvalidity
            self._last_uid = max(uids, default=0)

    async def _fetch_new(self, session: ImapSession) -> None:
        found = await session.search("UID", f"{self._last_uid + 1}:*")
        uids = [uid for uid in found if uid > self._last_uid]  # "n:*" always matches the last UID
        if uids and await self._take(session, uids, reidentify=False):
            self._last_uid = max(uids)

    async def _take(
        self, session: ImapSession, uids: list[int], *, reidentify: bool, first: bool = False
    ) -> bool:
        """Store every UID the journal does not know yet, in batches.

        Mail that was in the folder before the router first met the mailbox is left as it
        is (`ROUTER_IMAP_START`, `router.inbox.imap_start`).

        Returns:
            False if it stopped early because the inbox is stopping.
        """
        known: dict[int, str] = {}
        for uid in uids:
            key = source_key(self.mailbox, session.uidvalidity, uid)
            found = await self._sink.find_source(source_key=key)
            if found is not None:
                known[uid] = found
        claimed = set(known.values())  # journal ids that already have a message in the folder
        unknown = [uid for uid in uids if uid not in known]
        if unknown or first:
            untouched = await self._first.untouched(session, unknown)
            unknown = [uid for uid in unknown if uid not in untouched]
        if unknown:
            log.info("imap.catching_up", new=len(unknown), known=len(known), reidentify=reidentify)
        for batch in chunks(unknown, self._settings.imap_batch):
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
        key = source_key(self.mailbox, session.uidvalidity, uid)
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
        found = await self._sink.find_source(
            message_id_header=message_id_header,
            sha256=sha256,
            source_prefix=imap_source_prefix(self.mailbox),  # never another mailbox's message
        )
        if found is None or found in claimed:
            return False
        await self._sink.rekey(found, key)
        claimed.add(found)
        log.info("imap.rekeyed", journal_id=found, source_key=key)
        return True

"""Keeps a few SMTP relay connections open between mails, so each send costs its MAIL, RCPT
and DATA rather than a new connection, TLS handshake, EHLO and login.

A reused connection is checked with RSET before each mail. A connection the server dropped
while it was idle shows there (or at MAIL or RCPT), before any DATA: the mail is then sent on
a fresh connection, so it goes exactly once. A failure after DATA was sent is not retried here
(the relay may have accepted it): it is the caller's transient failure, as with one connection
per mail. Connections idle for longer than `idle_seconds` are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
import structlog

from router.send.relay import DeliveryError, Relay, RelayConnection, RelayFaultError, SmtpRelay

log = structlog.get_logger(__name__)

POOL_SIZE = 2  # referrals are few; two connections keep one send in flight while one waits
IDLE_SECONDS = 30.0  # below the 60 s or more after which relays commonly drop idle clients


@dataclass
class _Idle:
    client: RelayConnection
    since: float


class PooledSmtpRelay:
    """An `SmtpRelay` with up to `size` persistent connections. See `Relay`."""

    def __init__(
        self, relay: SmtpRelay, *, size: int = POOL_SIZE, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self._relay = relay
        self._idle: list[_Idle] = []
        self._slots = asyncio.Semaphore(size)
        self._idle_seconds = idle_seconds
        self._reaper: asyncio.TimerHandle | None = None
        self._closed = False
        self.opened = 0  # connections opened so far (for tests and benchmarks)

    def describe(self) -> str:
        """See `Relay`."""
        return self._relay.describe()

    @property
    def size_limit(self) -> int | None:
        """See `SmtpRelay.size_limit`."""
        return self._relay.size_limit

    async def probe(self) -> str:
        """See `SmtpRelay.probe` (on a connection of its own, never a kept one)."""
        return await self._relay.probe()

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str | None:
        """See `Relay`."""
        if not recipients:
            raise ValueError("send() needs at least one recipient")
        async with self._slots:
            client = await self._reused()
            if client is not None:
                try:
                    reply = await self._relay.transfer(client, message, sender, recipients)
                except BaseException as exc:
                    if not isinstance(exc, DeliveryError):  # cancelled: the state is unknown
                        await client.shut()
                        raise
                    if client.data_started or client.is_connected:
                        await self._keep_or_close(client, exc)
                        raise
                    # Dropped before DATA: nothing was handed over. Try a fresh connection.
                    log.info("relay.stale_connection", relay=self.describe())
                    await client.shut()
                else:
                    self._release(client)
                    log.debug("relay.sent", relay=self.describe(), recipients=len(recipients))
                    return reply
            return await self._send_fresh(message, sender, recipients)

    async def _send_fresh(self, message: bytes, sender: str, recipients: Sequence[str]) -> str:
        client = await self._relay.connect()
        self.opened += 1
        try:
            reply = await self._relay.transfer(client, message, sender, recipients)
        except BaseException as exc:
            await self._keep_or_close(client, exc)
            raise
        self._release(client)
        log.debug("relay.sent", relay=self.describe(), recipients=len(recipients), new=True)
        return reply

    async def _reused(self) -> RelayConnection | None:
        """An idle connection that answers RSET, or None; dead ones are closed on the way."""
        while self._idle:
            idle = self._idle.pop()
            if time.monotonic() - idle.since > self._idle_seconds:
                await idle.client.shut()
                continue
            try:
                await idle.client.rset()
            except (aiosmtplib.SMTPException, OSError):
                log.info("relay.stale_connection", relay=self.describe())
                await idle.client.shut()
                continue
            return idle.client
        return None

    async def _keep_or_close(self, client: RelayConnection, exc: BaseException) -> None:
        """After a refused mail: keep the connection when RSET works, else close it. A
        session the relay refuses (`RelayFaultError`) is closed: the next one may be let in
        (a relay's policy is read at each new session)."""
        if client.is_connected and not client.data_started and not isinstance(exc, RelayFaultError):
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.rset()
                self._release(client)
                return
        await client.shut()

    def _release(self, client: RelayConnection) -> None:
        if self._closed:  # a send that finished after close(): nobody will reuse it
            client.close()
            return
        self._idle.append(_Idle(client, time.monotonic()))
        if self._reaper is None:
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(self._idle_seconds, self._reap)

    def _reap(self) -> None:
        """Close connections idle for longer than `idle_seconds` (their sockets are dropped)."""
        self._reaper = None
        now = time.monotonic()
        stale = [i for i in self._idle if now - i.since >= self._idle_seconds]
        self._idle = [i for i in self._idle if i not in stale]
        for idle in stale:
            idle.client.close()
        if self._idle:
            self._reaper = asyncio.get_running_loop().call_later(self._idle_seconds, self._reap)

    async def close(self) -> None:
        """See `Relay`. QUIT is not needed: the connections are dropped."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        idle, self._idle = self._idle, []
        for entry in idle:
            await entry.client.shut()


def pooled(relay: Relay) -> Relay:
    """`relay` with pooled connections when it is an `SmtpRelay`; other relays as they are."""
    return PooledSmtpRelay(relay) if isinstance(relay, SmtpRelay) else relay

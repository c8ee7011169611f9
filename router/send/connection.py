"""One SMTP connection to the relay, as `router.send.relay` and `router.send.pool` use it:
closed at once (and awaitably) when it closes, and the goodbyes that may fail quietly."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiosmtplib
import structlog

from router.core.redaction import redact

log = structlog.get_logger(__name__)

_CLOSE_TURNS = 20  # an aborted socket is closed on the next loop turn


class Connection(aiosmtplib.SMTP):
    """aiosmtplib.SMTP whose sockets are closed at once, and awaitably, when it closes.

    aiosmtplib closes a TLS connection gracefully, which leaves the socket open until the
    peer answers (or never, when the event loop ends first). A relay connection holds
    nothing worth a goodbye: every close drops the socket, and `shut` waits until it is gone.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sockets: list[Any] = []
        self.data_started = False  # DATA was sent in the current transaction

    def close(self) -> None:
        """Drop the connection now (see the class docstring)."""
        transport = self.transport
        if transport is not None:
            self._sockets.append(transport.get_extra_info("socket"))
            cast(asyncio.Transport, transport).abort()
        super().close()

    async def shut(self) -> None:
        """Close, then wait (a few loop turns) until every socket this client opened is closed."""
        self.close()
        for _ in range(_CLOSE_TURNS):
            if all(sock is None or sock.fileno() == -1 for sock in self._sockets):
                return
            await asyncio.sleep(0)
        log.warning("relay.socket_linger", sockets=len(self._sockets))


async def quit_quietly(client: aiosmtplib.SMTP) -> None:
    """QUIT after a 250: the message is delivered whatever happens to the goodbye."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.debug("relay.quit_failed", error=redact(str(exc)))


async def reset_quietly(client: aiosmtplib.SMTP) -> None:
    """RSET after refused recipients; the error that follows matters more than this one."""
    if not client.is_connected:
        return
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.debug("relay.rset_failed", error=redact(str(exc)))

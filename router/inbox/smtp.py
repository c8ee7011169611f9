"""The embedded SMTP inbox: accepts mail for any recipient, answers 250 only once it is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from router.inbox.base import InboxSink

log = structlog.get_logger(__name__)


class StoringHandler:
    """aiosmtpd handler: every message goes to the journal, never onwards (no relaying)."""

    def __init__(self, sink: InboxSink, on_stored: Callable[[], None]) -> None:
        self.sink = sink
        self.on_stored = on_stored

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            message_id = await self.sink.accept(raw, envelope_recipients=list(envelope.rcpt_tos))
        except OSError as exc:
            log.error("store_failed", error=type(exc).__name__, errno=exc.errno)
            return "451 4.3.0 Cannot store the message now; please try again later"
        log.info("received", message=message_id, inbox="smtp", size=len(raw))
        self.on_stored()
        return f"250 2.0.0 Stored as {message_id}"


class _ListenerSMTP(SMTP):
    """aiosmtpd's SMTP session with a longer line limit.

    aiosmtpd answers 500 to a line over RFC 5321's 1000 octets, and a 500 bounces the
    referral back to its sender. Some clients do write longer lines (HTML without breaks),
    so the message size cap is the only bound: the whole message is buffered anyway.
    """

    def __init__(self, handler: Any, *, line_length_limit: int, **kwargs: Any) -> None:
        # Read by SMTP.__init__ when it builds the stream reader: set it first.
        self.line_length_limit = max(SMTP.line_length_limit, line_length_limit)
        super().__init__(handler, **kwargs)


class SmtpInbox:
    """An aiosmtpd server in the daemon's own event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        sink: InboxSink,
        *,
        max_message_bytes: int,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.host, self.port = host, port
        self.handler = StoringHandler(sink, on_stored)
        self.max_message_bytes = max_message_bytes
        self._server: asyncio.Server | None = None

    @property
    def state(self) -> str:
        return "listening" if self._server is not None else "stopped"

    async def start(self) -> None:
        """Bind and listen.

        Raises:
            OSError: when the address cannot be bound (in use, not permitted).
        """
        loop = asyncio.get_running_loop()

        def factory() -> Any:
            return _ListenerSMTP(
                self.handler,
                line_length_limit=self.max_message_bytes,
                data_size_limit=self.max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname="referral-router",
                ident="referral-router",
            )

        self._server = await loop.create_server(factory, host=self.host, port=self.port)
        log.info("inbox_listening", inbox="smtp", host=self.host, port=self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except TimeoutError:
                log.warning("inbox_close_slow", inbox="smtp")

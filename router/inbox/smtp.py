"""The embedded SMTP inbox: accepts mail for any recipient, answers 250 only once it is stored."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from router.inbox.admission import Admission, parse_networks
from router.inbox.smtp_session import ListenerOptions, ListenerSMTP
from router.journal.sink import InboxSink
from router.metrics import Metrics
from router.settings import Settings

log = structlog.get_logger(__name__)

_TRY_LATER = "451 4.3.0 Cannot store the message now; please try again later"
# Stores a message unless a copy of it was stored lately (both in one trip to a thread):
# (raw, envelope recipients) -> (the journal's id, whether it was a copy).
Store = Callable[[bytes, list[str]], Awaitable[tuple[str, bool]]]


class StoringHandler:
    """aiosmtpd handler: every message goes to the journal, never onwards (no relaying).

    Any failure to store is answered 451, so the sending server keeps the referral and
    tries again: a 5xx would bounce it back to its sender.
    """

    def __init__(
        self, sink: InboxSink, on_stored: Callable[[], None], store: Store | None = None
    ) -> None:
        self.sink = sink
        self.on_stored = on_stored
        self.store = store

    def __dir__(self) -> list[str]:
        """Only the hooks: aiosmtpd looks up every name `dir()` gives at each connection."""
        return [name for name in dir(type(self)) if name.startswith("handle_")]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # The listener bounds the recipients of a message, so this look-up stays short.
        if address.lower() not in (known.lower() for known in envelope.rcpt_tos):
            envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        recipients = list(envelope.rcpt_tos)
        try:
            if self.store is not None:
                message_id, copy = await self.store(raw, recipients)
            else:
                message_id = await self.sink.accept(raw, envelope_recipients=recipients)
                copy = False
        except Exception as exc:  # a lock, a full disk, a journal error: all "try later"
            log.error("store_failed", error=type(exc).__name__, errno=getattr(exc, "errno", None))
            return _TRY_LATER
        if copy:
            log.info("received_again", message=message_id, inbox="smtp", size=len(raw))
            return f"250 2.0.0 Stored as {message_id}"
        log.info("received", message=message_id, inbox="smtp", size=len(raw))
        self.on_stored()
        return f"250 2.0.0 Stored as {message_id}"

    async def handle_exception(self, error: Exception) -> str:
        """Any other error in a session: 451, its class logged (never its text)."""
        log.error("smtp_session_error", error=type(error).__name__)
        return _TRY_LATER


def listener_options(settings: Settings) -> ListenerOptions:
    """The listener's bounds and TLS from the settings. Off loopback without a configured
    certificate, a self-signed one is made in the state directory (router.inbox.selfsigned)
    and STARTTLS is required before MAIL all the same.

    Raises:
        ValueError: half a certificate setting, a certificate that does not load, or a
            state directory that cannot take the self-signed one (the message says which).
    """
    context = _tls_context(settings)
    endpoint = settings.inbox_endpoint
    self_signed: Path | None = None
    if context is None and not endpoint.is_loopback:
        # Imported here: `cryptography` costs a start 0.2 s, and only this case needs it.
        from router.inbox.selfsigned import self_signed_certificate

        try:
            self_signed, key = self_signed_certificate(settings.state_dir, settings.ehlo_name)
        except OSError as exc:
            raise ValueError(
                f"the SMTP listener would listen on {endpoint.host}, which is not loopback,"
                " and no certificate could be made in the state directory"
                f" ({type(exc).__name__}): set ROUTER_INBOX_TLS_CERT_FILE and"
                " ROUTER_INBOX_TLS_KEY_FILE"
            ) from exc
        context = _load(self_signed, key, "the self-signed certificate")
        log.warning(
            "inbox_tls_self_signed",
            certificate=str(self_signed),
            advice="set ROUTER_INBOX_TLS_CERT_FILE and ROUTER_INBOX_TLS_KEY_FILE for production",
        )
    return ListenerOptions(
        max_message_bytes=settings.max_message_bytes,
        tls_context=context,
        require_starttls=context is not None and not endpoint.is_loopback,
        self_signed=self_signed,
    )


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    cert, key = settings.inbox_tls_cert_file, settings.inbox_tls_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("ROUTER_INBOX_TLS_CERT_FILE and ROUTER_INBOX_TLS_KEY_FILE go together")
    return _load(cert, key, "ROUTER_INBOX_TLS_CERT_FILE / ROUTER_INBOX_TLS_KEY_FILE")


def _load(cert: Path, key: Path, what: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"{what} do not load as a certificate and its key ({type(exc).__name__})"
        ) from exc
    return context


def _tls_mode(options: ListenerOptions) -> str:
    if options.require_starttls:
        return "starttls-required"
    return "starttls-offered" if options.tls_context is not None else "none"


class SmtpInbox:
    """An aiosmtpd server in the daemon's own event loop, bounded (see `ListenerSMTP`)."""

    def __init__(
        self,
        host: str,
        port: int,
        sink: InboxSink,
        *,
        options: ListenerOptions,
        allow: str = "",
        on_stored: Callable[[], None] = lambda: None,
        store: Store | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.handler = StoringHandler(sink, on_stored, store)
        self.options = options
        budget = options.data_budget_bytes
        self.admission = Admission(
            parse_networks(allow),
            options.max_sessions,
            options.max_sessions_per_client,
            4 * options.max_message_bytes if budget is None else budget,
        )
        self.metrics = metrics
        self._server: asyncio.Server | None = None

    @property
    def state(self) -> str:
        return "listening" if self._server is not None else "stopped"

    def detail(self) -> dict[str, str]:
        """What /readyz adds about the listener: a self-signed certificate in use."""
        if self.options.self_signed is None:
            return {}
        return {
            "tls": f"self-signed certificate {self.options.self_signed}: set "
            "ROUTER_INBOX_TLS_CERT_FILE and ROUTER_INBOX_TLS_KEY_FILE for production"
        }

    async def start(self) -> None:
        """Bind and listen.

        Raises:
            OSError: when the address cannot be bound (in use, not permitted).
        """
        loop = asyncio.get_running_loop()

        def factory() -> Any:
            return ListenerSMTP(
                self.handler,
                options=self.options,
                admission=self.admission,
                metrics=self.metrics,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname="referral-router",
                ident="referral-router",
            )

        self._server = await loop.create_server(factory, host=self.host, port=self.port)
        log.info(
            "inbox_listening",
            inbox="smtp",
            host=self.host,
            port=self.port,
            tls=_tls_mode(self.options),
            allow=len(self.admission.allow),
        )

    async def stop(self) -> None:
        """Stop listening; open sessions are told 421 (a message being stored first gets
        its answer)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for session in list(self.admission.sessions):
                session.shut_down()
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except TimeoutError:
                log.warning("inbox_close_slow", inbox="smtp")

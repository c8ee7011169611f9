"""The outgoing SMTP relay and what every relay shares: the `Relay` contract and its failures.

Failure classes (the caller decides what to do with the message):

- `TransientDeliveryError`: try again later. 4xx replies, connection refused,
  timeouts, a connection dropped before the final reply.
- `RelaySecurityError` (a `TransientDeliveryError`): the relay's set-up is wrong
  (certificate not trusted, STARTTLS missing where it is required, credentials
  refused, AUTH unavailable). It is not about the message, so the message is kept
  and retried; the operator must be alerted because retrying alone will not fix it.
- `PermanentDeliveryError`: a 5xx reply about this message or its recipients.

`router.send.maildir` writes to a Maildir instead; `router.send.relays` builds the
relay the settings name. `SmtpRelay.send` opens one connection per message;
`router.send.pool` keeps a few open between messages with `connect` and `transfer`.
Recipients are all-or-nothing: every RCPT must be accepted before DATA is sent, so a
referral never reaches the force without its mandatory CCs (or the other way round).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import aiosmtplib
import structlog

from router.core.redaction import redact
from router.oauth.base import OAuthError, TokenSource
from router.send import smtp_data
from router.send.tls import TlsMode, client_tls_context, tls_policy
from router.settings import Endpoint

log = structlog.get_logger(__name__)
smtp_data.install()  # DATA prepared as aiosmtplib does, without its cost for mail that is ready

_DETAIL_MAX = 300
_CLOSE_TURNS = 20  # an aborted socket is closed on the next loop turn


class DeliveryError(Exception):
    """A message could not be handed to the relay.

    Attributes:
        code: the SMTP reply code, or None when there was no reply.
        detail: the server's reply text or a short description; never message content.
        refused: recipient addresses the relay refused (routing addresses from the rules).
    """

    def __init__(self, code: int | None, detail: str, refused: Sequence[str] = ()) -> None:
        self.code = code
        self.detail = " ".join(detail.split())[:_DETAIL_MAX]
        self.refused = tuple(refused)
        super().__init__(f"{code} {self.detail}" if code is not None else self.detail)


class TransientDeliveryError(DeliveryError):
    """Try again later: the relay or the network failed, not the message."""


class RelaySecurityError(TransientDeliveryError):
    """The relay set-up is wrong (TLS, certificate, credentials): keep the mail, alert."""


class PermanentDeliveryError(DeliveryError):
    """The relay refused this message or some of its recipients for good (5xx)."""


class Relay(Protocol):
    """Where outgoing messages go. Implementations: `SmtpRelay`, `MaildirRelay`."""

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str | None:
        """Hand over one complete message (headers included) for the given envelope.

        Returns:
            The relay's reply to the message (`250 2.0.0 Ok: queued as ...`), for the audit
            trail; None where there is no such reply (a Maildir).

        Raises:
            TransientDeliveryError: keep the message and retry later.
            PermanentDeliveryError: the relay refused it for good.
        """
        ...

    async def close(self) -> None:
        """Release resources; the relay is not used afterwards."""
        ...

    def describe(self) -> str:
        """Where mail goes, for logs and start-up messages (never a password)."""
        ...


class SmtpRelay:
    """Sends through an SMTP relay with aiosmtplib. See `Relay`."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        user: str | None,
        password: str | None,
        ca_file: Path | None,
        allow_insecure: bool,
        timeout: float = 30,
        tokens: TokenSource | None = None,
    ) -> None:
        """Set up the relay; no connection is made until `send`.

        Args:
            tokens: authenticate with AUTH XOAUTH2 as `user` with its tokens, not a password.

        Raises:
            ValueError: the endpoint is not SMTP or the CA file is unusable.
        """
        if endpoint.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SmtpRelay needs smtp:// or smtps://, not {endpoint.scheme}")
        self._endpoint = endpoint
        self._user = user
        self._password = password
        self._tokens = tokens
        self._policy = tls_policy(endpoint, allow_insecure)
        self._tls_context = client_tls_context(ca_file)
        self._timeout = timeout

    def describe(self) -> str:
        """See `Relay`."""
        user = f"{self._user}@" if self._user else ""
        ep = self._endpoint
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        return f"{ep.scheme}://{user}{host}:{ep.port} ({self._policy.mode.value})"

    async def close(self) -> None:
        """See `Relay`. Nothing to release: each send uses its own connection."""

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str | None:
        """See `Relay`."""
        if not recipients:
            raise ValueError("send() needs at least one recipient")
        client = await self.connect()
        try:
            reply = await self.transfer(client, message, sender, recipients)
            await _quit_quietly(client)
        finally:
            await client.shut()
        log.debug("relay.sent", relay=self.describe(), recipients=len(recipients))
        return reply

    async def connect(self) -> _Client:
        """Open, secure and authenticate a connection (see `router.send.pool`).

        Raises:
            TransientDeliveryError: the relay cannot be reached or set up (a
                `RelaySecurityError` when TLS or credentials are wrong).
        """
        client = self._client()
        try:
            await client.connect()
            await self._secure(client)
            await self._authenticate(client)
        except BaseException as exc:
            await client.shut()
            raise self._failure(exc) from exc
        return client

    async def transfer(
        self, client: _Client, message: bytes, sender: str, recipients: Sequence[str]
    ) -> str:
        """MAIL, RCPT and DATA on an open connection, which stays open afterwards; returns
        the relay's reply to DATA. `client.data_started` tells whether the failure came
        after DATA was sent.

        Raises:
            TransientDeliveryError, PermanentDeliveryError: as for `send`.
        """
        client.data_started = False
        try:
            return await self._transfer(client, message, sender, recipients)
        except BaseException as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> BaseException:
        """The error to raise for `exc` (logged): a `DeliveryError` for relay failures."""
        if isinstance(exc, DeliveryError):
            error: DeliveryError = exc
        elif isinstance(exc, aiosmtplib.SMTPException | OSError):
            error = classify(exc)
        else:
            return exc  # cancellation, a bug: not a delivery failure
        self._log_failure(error)
        return error

    async def probe(self) -> str:
        """Connect, secure and authenticate as `send` does, then QUIT without sending.

        Returns:
            What was done, e.g. "STARTTLS, AUTH XOAUTH2" (for `inbox check` and the start-up
            probe, router.send.probe).

        Raises:
            DeliveryError: as `send` would (classified the same way).
        """
        client = self._client()
        try:
            await client.connect()
            await self._secure(client)
            await self._authenticate(client)
            encrypted = client.get_transport_info("sslcontext") is not None
            await _quit_quietly(client)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise classify(exc) from exc
        finally:
            await client.shut()
        done = ["TLS" if self._policy.mode is TlsMode.IMPLICIT else "STARTTLS"] if encrypted else []
        if self._user is not None:
            done.append("AUTH XOAUTH2" if self._tokens is not None else "AUTH")
        return ", ".join(done) or "no TLS, no AUTH"

    def _client(self) -> _Client:
        return _Client(
            hostname=self._endpoint.host,
            port=self._endpoint.port,
            use_tls=self._policy.mode is TlsMode.IMPLICIT,
            start_tls=False,  # decided in _secure, by policy
            tls_context=self._tls_context,
            timeout=self._timeout,
        )

    def _log_failure(self, error: DeliveryError) -> None:
        log.warning(
            "relay.failed",
            relay=self.describe(),
            kind=type(error).__name__,
            code=error.code,
            detail=redact(error.detail, _DETAIL_MAX),  # a reply text may quote an address
            refused=[redact(address) for address in error.refused],
        )

    async def _secure(self, client: aiosmtplib.SMTP) -> None:
        if self._policy.mode is TlsMode.IMPLICIT:
            return
        await client.ehlo()
        if client.supports_extension("starttls"):
            await client.starttls()
            await client.ehlo()  # capabilities learnt before TLS must be discarded
        elif self._policy.mode is TlsMode.REQUIRED:
            raise RelaySecurityError(
                None,
                "relay does not offer STARTTLS; refusing to send in plain text "
                "to a host that is not on loopback (ROUTER_ALLOW_INSECURE allows it)",
            )

    async def _authenticate(self, client: aiosmtplib.SMTP) -> None:
        if self._user is None:
            return
        encrypted = client.get_transport_info("sslcontext") is not None
        if not encrypted and not self._policy.plain_auth_allowed:
            raise RelaySecurityError(None, "refusing to send the relay password without TLS")
        if not client.supports_extension("auth"):
            raise RelaySecurityError(None, "relay user is set but the relay offers no AUTH")
        if self._tokens is not None:
            await self._xoauth2(client, self._user, self._tokens)
            return
        try:
            await client.login(self._user, self._password or "")
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TransientDeliveryError(exc.code, exc.message) from exc
            raise RelaySecurityError(exc.code, f"login refused: {exc.message}") from exc

    async def _xoauth2(self, client: aiosmtplib.SMTP, user: str, tokens: TokenSource) -> None:
        """AUTH XOAUTH2 with a current token; a refusal is reported to the token source."""
        if "xoauth2" not in client.server_auth_methods:
            raise RelaySecurityError(None, "the relay does not offer AUTH XOAUTH2")
        try:
            token = await tokens.token()
        except OAuthError as exc:  # logged once by the token source, with the cause
            raise RelaySecurityError(None, f"no OAuth token: {exc.cause.short}") from None
        except Exception as exc:  # not a refusal (a bug, the machine): try again later
            raise TransientDeliveryError(None, f"no OAuth token: {type(exc).__name__}") from exc
        try:
            await client.auth_xoauth2(user, token.value)
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TransientDeliveryError(exc.code, exc.message) from None
            tokens.refused("smtp")
            raise RelaySecurityError(exc.code, f"XOAUTH2 refused: {exc.message}") from None
        tokens.accepted()

    async def _transfer(
        self,
        client: _Client,
        message: bytes,
        sender: str,
        recipients: Sequence[str],
    ) -> str:
        options = []
        if not message.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        encoding = "ascii"
        if not all(address.isascii() for address in (sender, *recipients)):
            # An internationalised address (RFC 6531) can only travel with SMTPUTF8.
            if not client.supports_extension("smtputf8"):
                raise PermanentDeliveryError(
                    None, "an address is not ASCII and the relay does not offer SMTPUTF8"
                )
            options.append("SMTPUTF8")
            encoding = "utf-8"
        await client.mail(sender, options=options, encoding=encoding)
        refusals: list[aiosmtplib.SMTPRecipientRefused] = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refusals.append(exc)
                if not client.is_connected:  # 421: the server closed the connection
                    break
        if refusals:
            await _reset_quietly(client)
            raise _refusal_error(refusals)
        client.data_started = True
        response = await client.data(message)
        return f"{response.code} {response.message}"


class _Client(aiosmtplib.SMTP):
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


RelayConnection = _Client  # an open, secured, authenticated connection (`SmtpRelay.connect`)


def _refusal_error(refusals: Sequence[aiosmtplib.SMTPRecipientRefused]) -> DeliveryError:
    """Permanent when any recipient got a 5xx, else transient; lists the refused addresses."""
    refused = [r.recipient for r in refusals]
    permanent = [r for r in refusals if r.code >= 500]
    worst = permanent[0] if permanent else refusals[0]
    detail = f"recipients refused: {', '.join(refused)}: {worst.message}"
    if permanent:
        return PermanentDeliveryError(worst.code, detail, refused)
    return TransientDeliveryError(worst.code, detail, refused)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(exc: BaseException) -> DeliveryError:
    """Turn an aiosmtplib or socket error into the matching `DeliveryError`."""
    chain = _causes(exc)
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return RelaySecurityError(
                None, f"relay certificate not trusted: {cause.verify_message}"
            )
        if isinstance(cause, ssl.SSLError) and not isinstance(
            cause, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            return RelaySecurityError(None, f"TLS with the relay failed: {cause.reason}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code in (530, 538):  # authentication or encryption required
            return RelaySecurityError(exc.code, exc.message)
        if 500 <= exc.code < 600:
            return PermanentDeliveryError(exc.code, exc.message)
        return TransientDeliveryError(exc.code, exc.message)
    if any(isinstance(cause, TimeoutError) for cause in chain):
        return TransientDeliveryError(None, f"timed out: {exc}")
    return TransientDeliveryError(None, str(exc) or type(exc).__name__)


async def _quit_quietly(client: aiosmtplib.SMTP) -> None:
    """QUIT after a 250: the message is delivered whatever happens to the goodbye."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.debug("relay.quit_failed", error=redact(str(exc)))


async def _reset_quietly(client: aiosmtplib.SMTP) -> None:
    """RSET after refused recipients; the error that follows matters more than this one."""
    if not client.is_connected:
        return
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.debug("relay.rset_failed", error=redact(str(exc)))

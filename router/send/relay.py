"""The outgoing SMTP relay and what every relay shares: the `Relay` contract and its failures.

Failure classes: see `router.send.failures` (the caller decides what to do with the
message). A refusal before DATA that may be about the router rather than the mail (a 5xx
at MAIL, or the same 5xx for every recipient) is checked on the same connection with the
router's own MAIL FROM and RCPT TO (`ROUTER_FROM_ADDRESS`, `ROUTER_REVIEW_ADDRESS`): refused
too, it is the relay refusing the router (`RelayFaultError`), else this mail's failure.

`router.send.maildir` writes to a Maildir instead; `router.send.relays` builds the
relay the settings name. `SmtpRelay.send` opens one connection per message;
`router.send.pool` keeps a few open between messages with `connect` and `transfer`.
Recipients are all-or-nothing: every RCPT must be accepted before DATA is sent, so a
referral never reaches the force without its mandatory CCs (or the other way round).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import aiosmtplib
import structlog

from router.core.redaction import redact
from router.endpoints import Endpoint
from router.oauth.base import OAuthError, TokenSource
from router.send import smtp_data
from router.send.connection import Connection, quit_quietly, reset_quietly
from router.send.failures import (
    DeliveryError,
    PermanentDeliveryError,
    RelayFaultError,
    RelaySecurityError,
    TransientDeliveryError,
    classify,
    refusal_error,
)
from router.send.tls import TlsMode, client_tls_context, tls_policy

log = structlog.get_logger(__name__)
smtp_data.install()  # DATA prepared as aiosmtplib does, without its cost for mail that is ready

__all__ = [  # the failures are defined in router.send.failures, imported from here too
    "DeliveryError",
    "PermanentDeliveryError",
    "Relay",
    "RelayFaultError",
    "RelaySecurityError",
    "SmtpRelay",
    "TransientDeliveryError",
    "classify",
]
RelayConnection = Connection  # an open, secured, authenticated connection (`SmtpRelay.connect`)
_DETAIL_MAX = 300


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
        helo_name: str | None = None,
        check_sender: str | None = None,
        check_recipient: str | None = None,
    ) -> None:
        """Set up the relay; no connection is made until `send`.

        Args:
            tokens: authenticate with AUTH XOAUTH2 as `user` with its tokens, not a password.
            helo_name: the name given in EHLO (`ROUTER_HELO_NAME`); None: the host's FQDN.
            check_sender, check_recipient: the envelope the probe and the session check
                try (MAIL FROM, RCPT TO, then RSET); None: the probe stops after AUTH.

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
        self._helo_name = helo_name
        self._check = (check_sender, check_recipient) if check_sender and check_recipient else None
        # The relay's SIZE (EHLO), learnt at each connection: what a composed mail must fit.
        self.size_limit: int | None = None

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
            await quit_quietly(client)
        finally:
            await client.shut()
        log.debug("relay.sent", relay=self.describe(), recipients=len(recipients))
        return reply

    async def connect(self) -> Connection:
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
            raise self._failure(_session_refusal(exc)) from exc
        self._learn_size(client)
        return client

    async def transfer(
        self, client: Connection, message: bytes, sender: str, recipients: Sequence[str]
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
        """Connect, secure and authenticate as `send` does, then try the router's own
        envelope (MAIL FROM, RCPT TO, RSET) and QUIT without sending.

        Returns:
            What was done, e.g. "STARTTLS, AUTH XOAUTH2, MAIL, RCPT" (for `inbox check` and
            the start-up probe, router.send.probe).

        Raises:
            DeliveryError: as `send` would; a 5xx anywhere is a `RelayFaultError`.
        """
        client = self._client()
        try:
            await client.connect()
            await self._secure(client)
            await self._authenticate(client)
            self._learn_size(client)
            encrypted = client.get_transport_info("sslcontext") is not None
            refused = await self._refuses_router(client)
            if refused is not None:
                raise refused
            await quit_quietly(client)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise classify(_session_refusal(exc)) from exc
        finally:
            await client.shut()
        done = ["TLS" if self._policy.mode is TlsMode.IMPLICIT else "STARTTLS"] if encrypted else []
        if self._user is not None:
            done.append("AUTH XOAUTH2" if self._tokens is not None else "AUTH")
        if self._check is not None:
            done.append("MAIL, RCPT")
        return ", ".join(done) or "no TLS, no AUTH"

    def _learn_size(self, client: aiosmtplib.SMTP) -> None:
        size = client.esmtp_extensions.get("size", "")
        self.size_limit = int(size) if size.isdigit() and int(size) > 0 else None

    async def _refuses_router(self, client: aiosmtplib.SMTP) -> RelayFaultError | None:
        """MAIL FROM the router, RCPT TO the review address, then RSET: the refusal when
        the relay refuses that with a 5xx (it refuses the router, whatever the mail)."""
        if self._check is None:
            return None
        sender, recipient = self._check
        try:
            await client.mail(sender)
            await client.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code < 500:
                raise
            await reset_quietly(client)
            return RelayFaultError(exc.code, f"the relay refuses the router: {exc.message}")
        await client.rset()
        return None

    def _client(self) -> Connection:
        return Connection(
            local_hostname=self._helo_name,
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
        client: Connection,
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
        try:
            await client.mail(sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPSenderRefused as exc:
            refused = classify(exc)
            if isinstance(refused, PermanentDeliveryError):  # the relay or this mail?
                await reset_quietly(client)
                raise await self._blame(client, refused) from None
            raise
        refusals: list[aiosmtplib.SMTPRecipientRefused] = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refusals.append(exc)
                if not client.is_connected:  # 421: the server closed the connection
                    break
        if refusals:
            await reset_quietly(client)
            error = refusal_error(refusals)
            codes = {refusal.code for refusal in refusals}
            permanent = error.code is not None and error.code >= 500
            if permanent and len(refusals) == len(recipients) and len(codes) == 1:
                error = await self._blame(client, error)  # every recipient, one reason
            raise error
        client.data_started = True
        response = await client.data(message)
        return f"{response.code} {response.message}"

    async def _blame(self, client: Connection, error: DeliveryError) -> DeliveryError:
        """`error` (a 5xx before DATA) as the relay refusing the router when the router's
        own envelope is refused too on this connection, else as it is: this mail's."""
        if not client.is_connected:
            return error
        try:
            refused = await self._refuses_router(client)
        except (aiosmtplib.SMTPException, OSError):
            return error  # the check could not say: the refusal stands as given
        if refused is None:
            return error
        return RelayFaultError(error.code, error.detail, error.refused)


def _session_refusal(exc: BaseException) -> BaseException:
    """A 5xx while opening the session (EHLO, STARTTLS, AUTH) refuses the router, not a mail."""
    # (530 and 538 are left to classify, which makes them a RelaySecurityError.)
    if (
        isinstance(exc, aiosmtplib.SMTPResponseException)
        and exc.code >= 500
        and exc.code not in (530, 538)
    ):
        return RelayFaultError(exc.code, exc.message)
    if isinstance(exc, PermanentDeliveryError):
        return RelayFaultError(exc.code, exc.detail)
    return exc

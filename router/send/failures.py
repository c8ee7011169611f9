"""How a relay's failures are told apart: the message's fault, the relay's for now, or the
relay refusing the router itself (see `router.send.relay` for who raises which).

- `TransientDeliveryError`: try again later. 4xx replies, connection refused,
  timeouts, a connection dropped before the final reply.
- `RelayFaultError` (a `TransientDeliveryError`): the relay refuses the router's session,
  not one message: a 5xx at EHLO, AUTH or MAIL, or the same 5xx for every recipient while
  the relay also refuses the router's own MAIL FROM / RCPT TO check. Every mail waits (kept,
  retried with backoff), `/readyz` fails quoting the code, a person is told once it clears.
- `RelaySecurityError` (a `RelayFaultError`): the relay's set-up is wrong (certificate not
  trusted, STARTTLS missing where it is required, credentials refused, AUTH unavailable).
- `PermanentDeliveryError`: a 5xx reply about this message or some of its recipients.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import aiosmtplib

_DETAIL_MAX = 300


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


class RelayFaultError(TransientDeliveryError):
    """The relay refuses the router's session (HELO, sender, AUTH, policy): not this mail."""


class RelaySecurityError(RelayFaultError):
    """The relay set-up is wrong (TLS, certificate, credentials): keep the mail, alert."""


class PermanentDeliveryError(DeliveryError):
    """The relay refused this message or some of its recipients for good (5xx)."""


def refusal_error(refusals: Sequence[aiosmtplib.SMTPRecipientRefused]) -> DeliveryError:
    """Permanent when any recipient got a 5xx, else transient; lists the refused addresses."""
    refused = [r.recipient for r in refusals]
    permanent = [r for r in refusals if r.code >= 500]
    worst = permanent[0] if permanent else refusals[0]
    detail = f"recipients refused: {', '.join(refused)}: {worst.message}"
    if permanent:
        return PermanentDeliveryError(worst.code, detail, refused)
    return TransientDeliveryError(worst.code, detail, refused)


def causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(exc: BaseException) -> DeliveryError:
    """Turn an aiosmtplib or socket error into the matching `DeliveryError`."""
    chain = causes(exc)
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

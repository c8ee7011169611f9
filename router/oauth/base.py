"""The token contract: `TokenSource`, the token it hands out, and the errors an admin can act on."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class Cause(enum.Enum):
    """Why no token could be had, or why a server refused one: each names what to check.

    The value is (short name, what it means for an admin, the setting or place to check).
    """

    EXPIRED_SECRET = (
        "expired_secret",
        "the client secret has expired (AADSTS7000222): create a new one in Entra ID",
        "ROUTER_OAUTH_CLIENT_SECRET",
    )
    UNKNOWN_CLIENT = (
        "unknown_client",
        "no application with this client id in the tenant (AADSTS700016)",
        "ROUTER_OAUTH_CLIENT_ID",
    )
    WRONG_TENANT = (
        "wrong_tenant",
        "the tenant is not known to the identity provider (AADSTS90002)",
        "ROUTER_OAUTH_TENANT",
    )
    CONSENT_MISSING = (
        "consent_missing",
        "an administrator has not granted consent for the application's permissions (AADSTS65001)",
        "admin consent in Entra ID",
    )
    BAD_CERTIFICATE = (
        "bad_certificate",
        "the certificate is not the one registered with the application (AADSTS700027)",
        "ROUTER_OAUTH_CERTIFICATE_FILE",
    )
    INVALID_CLIENT = (
        "invalid_client",
        "the token endpoint refused the client's credentials (invalid_client)",
        "ROUTER_OAUTH_CLIENT_SECRET",
    )
    UNAUTHORIZED_CLIENT = (
        "unauthorized_client",
        "the client may not use this grant or scope (unauthorized_client; for Google:"
        " domain-wide delegation for the scope)",
        "ROUTER_OAUTH_CLIENT_ID",
    )
    INVALID_SCOPE = (
        "invalid_scope",
        "the token endpoint refused the scope (invalid_scope)",
        "ROUTER_OAUTH_SCOPE",
    )
    CREDENTIALS = (
        "credentials",
        "the client secret or certificate file cannot be read or used",
        "ROUTER_OAUTH_CLIENT_SECRET_FILE / ROUTER_OAUTH_CERTIFICATE_FILE",
    )
    NETWORK = (
        "network",
        "the token endpoint cannot be reached",
        "ROUTER_OAUTH_TOKEN_URL",
    )
    ENDPOINT = (
        "endpoint",
        "the token endpoint gave an answer that is not a token",
        "ROUTER_OAUTH_TOKEN_URL",
    )
    TOKEN_REFUSED = (
        "token_refused",
        "the mail server refused the access token: the application has no permission on"
        " this mailbox, or the token is for another user or service",
        "the mailbox permission (Add-MailboxPermission) and the user in ROUTER_INBOX",
    )
    GRAPH_REFUSED = (
        "token_refused",
        "Microsoft Graph refused the access token: the application lacks the Mail.ReadWrite or"
        " Mail.Send application permission (or its admin consent), or the token is for"
        " another tenant",
        "the application's Graph permissions and admin consent in Entra ID, and"
        " ROUTER_OAUTH_TENANT",
    )

    @property
    def short(self) -> str:
        """The machine-readable name, e.g. `expired_secret`."""
        return self.value[0]

    @property
    def explanation(self) -> str:
        """What it means, in a sentence an admin can act on."""
        return self.value[1]

    @property
    def setting(self) -> str:
        """The setting (or place) to check."""
        return self.value[2]


class OAuthError(Exception):
    """No token, for a `Cause`. The message never holds a secret or a token.

    Attributes:
        cause: what went wrong, with the setting to check.
        code: the provider's error code when it gave one (e.g. `AADSTS7000222`).
        retryable: whether retrying soon may help (network, 5xx) rather than a fix by an admin.
    """

    def __init__(self, cause: Cause, code: str | None = None, *, retryable: bool = False) -> None:
        self.cause = cause
        self.code = code
        self.retryable = retryable
        detail = f" [{code}]" if code and code not in cause.explanation else ""
        super().__init__(f"{cause.explanation}{detail}; check {cause.setting}")


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when to stop using it (`time.monotonic` seconds).

    Attributes:
        value: the token itself; never logged, never in an error (kept out of repr).
        expires_at: when the issuer says it expires.
        renew_at: when to get a new one (and re-authenticate sessions that use it).
    """

    value: str = field(repr=False)
    expires_at: float
    renew_at: float


@dataclass(frozen=True)
class Grant:
    """What a provider's token endpoint answered: the token and its lifetime in seconds."""

    value: str = field(repr=False)
    lifetime: float


class TokenFetcher(Protocol):
    """One provider's way of getting a fresh token (blocking is fine: it runs in a thread)."""

    provider: str

    def fetch(self) -> Grant:
        """Ask the token endpoint for a new token.

        Raises:
            OAuthError: no token, with the cause.
        """
        ...


class TokenSource(Protocol):
    """Where the inbox and the relay get their access token (cached, renewed before expiry)."""

    provider: str

    async def token(self) -> AccessToken:
        """A token valid for a while yet: the cached one, or a fresh one.

        Raises:
            OAuthError: no token could be had (the cause is logged once by the source).
        """
        ...

    def refused(self, by: str) -> None:
        """Report that a mail server (`by`: "imap", "smtp" or "graph") refused the current
        token.

        The token is dropped so the next `token()` fetches a new one.
        """
        ...

    def accepted(self) -> None:
        """Report that a mail server accepted the current token."""
        ...

    def invalidate(self) -> None:
        """Drop the current token (a server said it expired): the next `token()` fetches anew."""
        ...

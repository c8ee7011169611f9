"""Turn a token endpoint's error answer (OAuth 2.0 / Entra ID AADSTS codes) into a `Cause`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from router.oauth.base import Cause, OAuthError

# Entra ID error codes (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
_AADSTS = {
    7000222: Cause.EXPIRED_SECRET,  # the client secret keys are expired
    7000215: Cause.INVALID_CLIENT,  # invalid client secret provided
    700016: Cause.UNKNOWN_CLIENT,  # application not found in the directory
    90002: Cause.WRONG_TENANT,  # tenant not found
    900023: Cause.WRONG_TENANT,  # the tenant identifier is not a valid tenant
    90023: Cause.WRONG_TENANT,
    65001: Cause.CONSENT_MISSING,  # the user or administrator has not consented
    700027: Cause.BAD_CERTIFICATE,  # client assertion failed signature validation
    700024: Cause.BAD_CERTIFICATE,  # client assertion is not within its valid time range
    70011: Cause.INVALID_SCOPE,  # the scope is not valid
    1002012: Cause.INVALID_SCOPE,
}
_OAUTH = {
    "invalid_client": Cause.INVALID_CLIENT,
    "unauthorized_client": Cause.UNAUTHORIZED_CLIENT,
    "invalid_scope": Cause.INVALID_SCOPE,
    "invalid_grant": Cause.UNAUTHORIZED_CLIENT,  # google: no delegation for this subject
    "access_denied": Cause.CONSENT_MISSING,
}
_AADSTS_IN_TEXT = re.compile(r"AADSTS(\d+)")


def classify_response(status: int | None, body: Mapping[str, Any]) -> OAuthError:
    """The error for a token endpoint's refusal.

    Args:
        status: the HTTP status, when known.
        body: the decoded JSON answer (`error`, `error_description`, Entra's `error_codes`).
    """
    codes = [int(c) for c in body.get("error_codes") or [] if isinstance(c, int)]
    description = str(body.get("error_description") or "")
    codes += [int(c) for c in _AADSTS_IN_TEXT.findall(description)]
    for code in codes:
        if code in _AADSTS:
            return OAuthError(_AADSTS[code], f"AADSTS{code}")
    error = str(body.get("error") or "")
    if error in _OAUTH:
        label = f"AADSTS{codes[0]}" if codes else error
        return OAuthError(_OAUTH[error], label)
    if status is not None and (status >= 500 or status == 429):
        return OAuthError(Cause.ENDPOINT, f"HTTP {status}", retryable=True)
    label = error or (f"HTTP {status}" if status is not None else "no token")
    return OAuthError(Cause.ENDPOINT, _printable(label))


def _printable(text: str) -> str:
    """A short error code fit for a log line (an endpoint could answer anything)."""
    return re.sub(r"[^\w .:-]", "?", text)[:60]

"""The `generic` provider: an OAuth 2.0 client credentials POST to `ROUTER_OAUTH_TOKEN_URL`."""

from __future__ import annotations

from typing import Any

import requests

from router.oauth.base import Cause, Grant, OAuthError
from router.oauth.errors import classify_response

TIMEOUT_SECONDS = 15.0
# When the endpoint does not say how long its token lasts, assume a short life.
DEFAULT_LIFETIME_SECONDS = 300.0


class HttpSession(requests.Session):
    """A requests session with a default timeout, whose own `verify` is what counts.

    requests lets REQUESTS_CA_BUNDLE override a session's CA bundle; a private CA given here
    must win, while `verify=True` still follows the environment as usual.
    """

    def __init__(self, verify: bool | str = True, timeout: float = TIMEOUT_SECONDS) -> None:
        super().__init__()
        self.verify = verify
        self._timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        """See `requests.Session.request`."""
        kwargs.setdefault("timeout", self._timeout)
        if kwargs.get("verify") is None:
            kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)


def post_form(
    url: str, form: dict[str, str], *, verify: bool | str = True, timeout: float = TIMEOUT_SECONDS
) -> Grant:
    """POST a token request form-encoded (RFC 6749 4.4) and read the token from the answer.

    Args:
        verify: True for the system CAs, or a CA bundle path (a private endpoint, tests).

    Raises:
        OAuthError: refused, unreachable, or an answer without a token.
    """
    try:
        with HttpSession(verify, timeout) as session:
            response = session.post(url, data=form, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise OAuthError(Cause.NETWORK, type(exc).__name__, retryable=True) from None
    body = _json(response)
    if response.status_code != 200:
        raise classify_response(response.status_code, body)
    return grant_from(body)


def grant_from(body: dict[str, Any]) -> Grant:
    """The `Grant` in a token response (`access_token`, `expires_in`).

    Raises:
        OAuthError: the answer holds no token.
    """
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise classify_response(None, body)
    try:
        lifetime = float(body.get("expires_in", DEFAULT_LIFETIME_SECONDS))
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME_SECONDS
    return Grant(token, lifetime)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class GenericFetcher:
    """Client credentials with a client secret. See `TokenFetcher`."""

    provider = "generic"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str,
        *,
        verify: bool | str = True,
    ) -> None:
        self._url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if scope:
            self._form["scope"] = scope
        self._verify = verify

    def fetch(self) -> Grant:
        """See `TokenFetcher`."""
        return post_form(self._url, self._form, verify=self._verify)

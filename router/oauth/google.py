"""The `google` provider: a service account with domain-wide delegation, acting as the mailbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.auth import exceptions
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from router.oauth.base import Cause, Grant, OAuthError
from router.oauth.errors import classify_response
from router.oauth.generic import HttpSession

DEFAULT_SCOPE = "https://mail.google.com/"


def load_service_account(path: Path) -> dict[str, Any]:
    """Read a service-account JSON key.

    Raises:
        ValueError: missing, unreadable or not a service-account key; never holds the key.
    """
    where = f"ROUTER_OAUTH_CERTIFICATE_FILE {path}"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{where}: cannot be read ({exc.strerror})") from None
    except ValueError:
        raise ValueError(f"{where}: is not JSON (a service-account key file is)") from None
    needed = ("client_email", "private_key", "token_uri")
    if not isinstance(info, dict) or any(not info.get(key) for key in needed):
        raise ValueError(f"{where}: not a service-account key (needs {', '.join(needed)})")
    return info


class GoogleFetcher:
    """Tokens for one Google Workspace user through domain-wide delegation. See `TokenFetcher`.

    Args:
        info: the service-account key (see `load_service_account`).
        subject: the mailbox user the router acts as.
        token_url: a token endpoint other than the key's `token_uri` (tests).
        verify: True for the system CAs, or a CA bundle path.
    """

    provider = "google"

    def __init__(
        self,
        info: dict[str, Any],
        subject: str,
        scope: str,
        *,
        token_url: str = "",
        verify: bool | str = True,
    ) -> None:
        info = dict(info)
        if token_url:
            info["token_uri"] = token_url
        build = service_account.Credentials.from_service_account_info
        try:
            self._credentials = build(  # type: ignore[no-untyped-call]
                info, scopes=[scope or DEFAULT_SCOPE], subject=subject
            )
        except ValueError:
            raise ValueError(
                "ROUTER_OAUTH_CERTIFICATE_FILE: the private key cannot be used"
            ) from None
        self._request = Request(HttpSession(verify))

    def fetch(self) -> Grant:
        """See `TokenFetcher`."""
        try:
            self._credentials.refresh(self._request)
        except exceptions.TransportError:
            raise OAuthError(Cause.NETWORK, "TransportError", retryable=True) from None
        except exceptions.RefreshError as exc:
            body = next((arg for arg in exc.args if isinstance(arg, dict)), {})
            raise classify_response(None, body) from None
        token, expiry = self._credentials.token, self._credentials.expiry
        if not token:
            raise OAuthError(Cause.ENDPOINT, "no token")
        # google-auth keeps the expiry as a naive UTC datetime.
        now = datetime.now(UTC).replace(tzinfo=None)
        lifetime = (expiry - now).total_seconds() if expiry is not None else 300.0
        return Grant(str(token), lifetime)

"""Settings for OAuth 2.0 and the first connection are checked at start, naming the variable."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from router.settings import Settings

IMAP = "imaps://prevent@outlook.office365.com/INBOX"


def _error(**values: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    return str(refused.value)


@pytest.mark.parametrize("value", ["new", "all", "2026-02-01", " NEW "])
def test_imap_start_accepts_new_all_and_dates(value: str) -> None:
    """`new`, `all` and a YYYY-MM-DD date are accepted."""
    assert Settings(imap_start=value).imap_start == value.strip().lower()


@pytest.mark.parametrize("value", ["old", "2026-13-01", "01/02/2026", ""])
def test_imap_start_refuses_anything_else(value: str) -> None:
    """Anything else stops the router at start, naming ROUTER_IMAP_START."""
    assert "ROUTER_IMAP_START" in _error(imap_start=value)


def test_token_url_must_be_https_off_loopback() -> None:
    """A plain-http token endpoint is refused unless it is on loopback."""
    assert "https" in _error(oauth_token_url="http://idp.example.org/token")
    assert Settings(oauth_token_url="http://127.0.0.1:8080/token").oauth_token_url


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({"oauth_provider": "generic", "oauth_client_id": "c", "oauth_client_secret": "s"},
         "ROUTER_OAUTH_TOKEN_URL"),
        ({"oauth_tenant": "contoso", "oauth_client_secret": "s"}, "ROUTER_OAUTH_CLIENT_ID"),
        ({"oauth_tenant": "contoso", "oauth_client_id": "c"}, "ROUTER_OAUTH_CLIENT_SECRET"),
        ({"oauth_client_id": "c", "oauth_client_secret": "s"}, "ROUTER_OAUTH_TENANT"),
        ({"oauth_provider": "google"}, "ROUTER_OAUTH_CERTIFICATE_FILE"),
    ],
)  # fmt: skip
def test_oauth2_needs_what_its_provider_needs(values: dict[str, Any], missing: str) -> None:
    """ROUTER_INBOX_AUTH=oauth2 without what the provider needs names the missing variable."""
    assert missing in _error(inbox=IMAP, inbox_auth="oauth2", **values)


def test_relay_oauth2_needs_a_user() -> None:
    """ROUTER_RELAY_AUTH=oauth2 needs the user to authenticate as."""
    message = _error(
        relay="smtp://smtp.office365.com:587",
        relay_auth="oauth2",
        oauth_tenant="contoso",
        oauth_client_id="c",
        oauth_client_secret="s",
    )
    assert "ROUTER_RELAY_USER" in message


def test_secret_is_not_echoed() -> None:
    """The error never repeats the client secret."""
    assert "s3cr3t-value" not in _error(
        inbox=IMAP, inbox_auth="oauth2", oauth_client_secret="s3cr3t-value"
    )

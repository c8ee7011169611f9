"""Settings for Microsoft Graph (SPEC section 7): graph:// inbox and relay, ROUTER_GRAPH_URL,
ROUTER_GRAPH_POLL_SECONDS, OAuth implied, From defaulting to the mailbox."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router.settings import Settings
from router.settings_problems import describe_errors, known_variables

OAUTH = {
    "oauth_tenant": "contoso.onmicrosoft.com",
    "oauth_client_id": "app",
    "oauth_client_secret": "secret",
}


def test_a_graph_inbox_names_the_mailbox_and_the_folder_path() -> None:
    """graph://MAILBOX/FOLDER gives the mailbox's address and the folder's display path,
    Inbox when left out; the inbox uses OAuth 2.0 without ROUTER_INBOX_AUTH."""
    nested = Settings(inbox="graph://Referrals@Council.example/Inbox/Prevent", **OAUTH)
    endpoint = nested.inbox_endpoint
    assert (endpoint.scheme, endpoint.user, endpoint.folder) == (
        "graph",
        "referrals@council.example",
        "Inbox/Prevent",
    )
    assert Settings(inbox="graph://referrals@council.example", **OAUTH).inbox_endpoint.folder == (
        "Inbox"
    )
    assert nested.inbox_auth_method == "oauth2"


def test_a_graph_relay_sends_as_its_mailbox_unless_told_otherwise() -> None:
    """With a graph:// relay, ROUTER_FROM_ADDRESS defaults to the mailbox; a set one stays."""
    relay = "graph://referrals@council.example"
    assert Settings(relay=relay, **OAUTH).from_address == "referrals@council.example"
    assert Settings(relay=relay, from_address="prevent@council.example", **OAUTH).from_address == (
        "prevent@council.example"
    )
    assert Settings(relay=relay, **OAUTH).relay_auth_method == "oauth2"


def test_graph_needs_the_oauth_client_settings() -> None:
    """graph:// implies OAuth 2.0: without the client id and secret the router will not start,
    and the message names what is missing."""
    with pytest.raises(ValidationError) as failed:
        Settings(inbox="graph://referrals@council.example/Inbox", oauth_tenant="contoso")
    [line] = describe_errors(failed.value)
    assert "ROUTER_OAUTH_CLIENT_ID" in line and "ROUTER_OAUTH_CLIENT_SECRET" in line


def test_the_graph_url_is_https_off_loopback_and_gives_the_token_scope() -> None:
    """ROUTER_GRAPH_URL must be https unless on loopback; tokens are asked for its origin's
    /.default whatever ROUTER_OAUTH_SCOPE says."""
    with pytest.raises(ValidationError) as failed:
        Settings(graph_url="http://graph.example/v1.0")
    assert "ROUTER_GRAPH_URL" in describe_errors(failed.value)[0]
    assert Settings(graph_url="http://127.0.0.1:8080/v1.0").graph_scope == (
        "http://127.0.0.1:8080/.default"
    )
    usgov = Settings(graph_url="https://graph.microsoft.us/v1.0/", oauth_scope="x")
    assert usgov.graph_scope == "https://graph.microsoft.us/.default"
    assert Settings().graph_scope == "https://graph.microsoft.com/.default"


def test_a_graph_address_without_a_mailbox_is_refused() -> None:
    """graph:// with no address before the folder stops the router with a clear message."""
    with pytest.raises(ValidationError) as failed:
        Settings(inbox="graph://Inbox")
    assert "graph:// needs the mailbox's address" in describe_errors(failed.value)[0]


def test_the_graph_settings_are_known() -> None:
    """ROUTER_GRAPH_URL and ROUTER_GRAPH_POLL_SECONDS pass the unknown-setting check."""
    assert {"ROUTER_GRAPH_URL", "ROUTER_GRAPH_POLL_SECONDS"} <= set(known_variables())

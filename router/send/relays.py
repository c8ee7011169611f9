"""Builds the relay that `ROUTER_RELAY` names (SMTP, Microsoft Graph or a Maildir)."""

from __future__ import annotations

from collections.abc import Callable

from router.graph.client import MailboxGates, make_client
from router.oauth.base import TokenSource
from router.send.maildir import MaildirRelay
from router.send.relay import Relay, SmtpRelay
from router.settings import Settings


def make_relay(
    settings: Settings,
    tokens: TokenSource | None = None,
    *,
    gates: MailboxGates | None = None,
    on_throttled: Callable[[], None] = lambda: None,
) -> Relay:
    """Build the relay `settings.relay` names.

    Args:
        tokens: the relay's token source when `ROUTER_RELAY_AUTH=oauth2` or graph://.
        gates: graph://: the mailboxes' throttling gates (shared with a graph:// inbox).
        on_throttled: graph://: called after each 429/503/504.

    Raises:
        ValueError: the relay CA file is unusable.
        OSError: the Maildir cannot be created.
    """
    endpoint = settings.relay_endpoint
    if endpoint.scheme == "maildir":
        assert endpoint.path is not None  # parse_endpoint always sets it for maildir:
        return MaildirRelay(endpoint.path)
    method = settings.relay_auth_method
    if method == "oauth2" and tokens is None:
        raise ValueError("ROUTER_RELAY_AUTH=oauth2 and graph:// need a token source")
    if endpoint.scheme == "graph":
        from router.send.graph_relay import GraphRelay

        assert endpoint.user is not None and tokens is not None  # parse_endpoint, above
        gate = (gates or MailboxGates())[endpoint.user]
        return GraphRelay(endpoint.user, make_client(settings, tokens, gate, on_throttled))
    if method == "oauth2" and tokens is None:
        raise ValueError("ROUTER_RELAY_AUTH=oauth2 needs a token source")
    return SmtpRelay(
        endpoint,
        user=None if method == "none" else settings.relay_user or endpoint.user,
        password=settings.secret("relay"),
        ca_file=settings.relay_ca_file,
        allow_insecure=settings.allow_insecure,
        tokens=tokens if method == "oauth2" else None,
        helo_name=settings.ehlo_name,
        check_sender=settings.from_address,
        check_recipient=settings.review_address,
    )

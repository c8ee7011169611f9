"""Builds the relay that `ROUTER_RELAY` names (SMTP or a Maildir)."""

from __future__ import annotations

from router.oauth.base import TokenSource
from router.send.maildir import MaildirRelay
from router.send.relay import Relay, SmtpRelay
from router.settings import Settings


def make_relay(settings: Settings, tokens: TokenSource | None = None) -> Relay:
    """Build the relay `settings.relay` names.

    Args:
        tokens: the relay's token source when `ROUTER_RELAY_AUTH=oauth2`.

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
        raise ValueError("ROUTER_RELAY_AUTH=oauth2 needs a token source")
    return SmtpRelay(
        endpoint,
        user=None if method == "none" else settings.relay_user or endpoint.user,
        password=settings.secret("relay"),
        ca_file=settings.relay_ca_file,
        allow_insecure=settings.allow_insecure,
        tokens=tokens if method == "oauth2" else None,
    )

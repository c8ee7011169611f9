"""Build the `TokenSource` that `ROUTER_OAUTH_*` describe."""

from __future__ import annotations

from collections.abc import Callable

from router.oauth.base import TokenFetcher
from router.oauth.cache import CachedTokenSource
from router.settings import Settings


def client_secret(settings: Settings) -> str | None:
    """`ROUTER_OAUTH_CLIENT_SECRET`, or the content of `ROUTER_OAUTH_CLIENT_SECRET_FILE`.

    Raises:
        ValueError: the secret file cannot be read (the message never holds the secret).
    """
    if settings.oauth_client_secret is not None:
        return settings.oauth_client_secret.get_secret_value()
    path = settings.oauth_client_secret_file
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"ROUTER_OAUTH_CLIENT_SECRET_FILE {path}: {exc.strerror}") from None


def make_fetcher(
    settings: Settings, user: str, *, verify: bool | str = True, scope: str | None = None
) -> TokenFetcher:
    """The provider `ROUTER_OAUTH_PROVIDER` names, acting for `user` (google only).

    Args:
        scope: the scope to ask for instead of `ROUTER_OAUTH_SCOPE` (Microsoft Graph's).

    Raises:
        ValueError: a credential file cannot be read or used; the message names the setting.
    """
    # Each provider's library is imported only when it is the one configured.
    provider = settings.oauth_provider
    scope = settings.oauth_scope if scope is None else scope
    if provider == "google":
        from router.oauth.google import GoogleFetcher, load_service_account

        assert settings.oauth_certificate_file is not None  # checked by Settings
        info = load_service_account(settings.oauth_certificate_file)
        return GoogleFetcher(info, user, scope, token_url=settings.oauth_token_url, verify=verify)
    secret = client_secret(settings)
    if provider == "generic":
        from router.oauth.generic import GenericFetcher

        return GenericFetcher(
            settings.oauth_token_url,
            settings.oauth_client_id,
            secret or "",
            scope,
            verify=verify,
        )
    from router.oauth.microsoft import MicrosoftFetcher, load_certificate

    credential = (
        load_certificate(settings.oauth_certificate_file)
        if settings.oauth_certificate_file is not None
        else secret or ""
    )
    return MicrosoftFetcher(
        settings.oauth_tenant,
        settings.oauth_client_id,
        credential,
        scope,
        token_url=settings.oauth_token_url,
        verify=verify,
    )


def make_token_source(
    settings: Settings,
    user: str,
    *,
    role: str,
    verify: bool | str = True,
    on_change: Callable[[], None] = lambda: None,
    scope: str | None = None,
) -> CachedTokenSource:
    """A cached, self-renewing token source for `user`.

    Args:
        role: "inbox" or "relay", for logs and /readyz.
        verify: True for the system CAs, or a CA bundle for a private token endpoint.
        scope: instead of `ROUTER_OAUTH_SCOPE` (a graph:// inbox or relay asks for Graph's).

    Raises:
        ValueError: a credential file cannot be read or used.
    """
    fetcher = make_fetcher(settings, user, verify=verify, scope=scope)
    return CachedTokenSource(fetcher, role=role, on_change=on_change)

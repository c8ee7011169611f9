"""Checks of the IMAP inbox settings that can never work, made before any connection."""

from __future__ import annotations

import ssl

from router.settings import Settings


class ImapConfigError(ValueError):
    """The IMAP settings can never work; the daemon should refuse to start."""


def check_settings(settings: Settings) -> None:
    """Refuse IMAP settings that can never work.

    Raises:
        ImapConfigError: see `ImapInbox`.
    """
    endpoint = settings.inbox_endpoint
    if endpoint.scheme not in ("imap", "imaps"):
        raise ImapConfigError(f"ROUTER_INBOX is {endpoint.scheme}://, not imap:// or imaps://")
    if endpoint.scheme == "imap" and not endpoint.is_loopback and not settings.allow_insecure:
        raise ImapConfigError(
            f"refusing plain-text IMAP to {endpoint.host}: the password and the referrals"
            " would cross the network unencrypted. Use imaps:// (or set"
            " ROUTER_ALLOW_INSECURE=true for a trusted network)"
        )
    if not endpoint.user:
        raise ImapConfigError("IMAP needs a user in ROUTER_INBOX (imaps://user@host/INBOX)")
    if settings.inbox_auth == "password" and settings.secret("inbox") is None:
        raise ImapConfigError(
            "IMAP needs ROUTER_INBOX_PASSWORD or ROUTER_INBOX_PASSWORD_FILE"
            " (or ROUTER_INBOX_AUTH=oauth2)"
        )
    for folder in (settings.processed_folder, settings.failed_folder):
        if folder.upper() == endpoint.folder.upper() or not folder.strip():
            raise ImapConfigError(f"settle folder {folder!r} must differ from the inbox folder")


def imap_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The verifying TLS context for imaps:// (None for imap://).

    Raises:
        ImapConfigError: the CA file cannot be loaded.
    """
    if settings.inbox_endpoint.scheme != "imaps":
        return None
    cafile = str(settings.inbox_ca_file) if settings.inbox_ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ImapConfigError(f"ROUTER_INBOX_CA_FILE cannot be loaded: {exc}") from exc

"""The console's settings (`ROUTER_CONSOLE*`), a part of `router.settings.Settings`.

Kept apart so the settings module stays readable; `Settings` inherits these fields, so the
environment, the README's table and the unknown-setting check know them like any other.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

CONSOLE_EXAMPLES = {
    "console": "127.0.0.1:9182 (or empty to turn it off)",
    "console_url": "https://router.council.example",
    "console_issuer": "https://login.microsoftonline.com/TENANT/v2.0",
    "console_users": "coordinator@council.example,lead@council.example",
    "console_admins": "it-admin@council.example",
}


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_console_bind(value: str) -> tuple[str, int] | None:
    """`host:port` of the console; None when empty (turned off).

    Raises:
        ValueError: not host:port.
    """
    if not value.strip():
        return None
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected host:port, the port a number up to 65535")
    return host.strip("[]"), int(port)


def _names(value: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


class ConsoleSettings(BaseModel):
    """The `ROUTER_CONSOLE*` settings. Off by default (`console` empty)."""

    console: str = ""
    # The address people type (behind a reverse proxy); empty: http://<ROUTER_CONSOLE>.
    console_url: str = ""
    # `oidc`: sign in with OpenID Connect; `none`: no sign-in, allowed on loopback only.
    console_auth: Literal["oidc", "none"] = "oidc"
    console_issuer: str = ""
    console_client_id: str = ""
    console_client_secret: SecretStr | None = None
    console_client_secret_file: Path | None = None
    # Who may sign in: email addresses, or values of the groups claim; admins are either.
    console_users: str = ""
    console_groups: str = ""
    console_admins: str = ""
    console_groups_claim: str = "groups"
    console_idle_minutes: int = Field(default=30, ge=1, le=720)

    @field_validator("console")
    @classmethod
    def _console(cls, value: str) -> str:
        parse_console_bind(value)
        return value

    @model_validator(mode="after")
    def _console_auth(self) -> ConsoleSettings:
        bind = parse_console_bind(self.console)
        if bind is None:
            return self
        if self.console_url:
            url = urlsplit(self.console_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError("ROUTER_CONSOLE_URL must be an http:// or https:// URL")
            if url.scheme == "http" and not is_loopback_host(url.hostname):
                raise ValueError("ROUTER_CONSOLE_URL must be https:// (http only on loopback)")
        elif not is_loopback_host(bind[0]):
            raise ValueError(
                "ROUTER_CONSOLE_URL is needed when the console listens off loopback"
                " (the https:// address people use, e.g. https://router.council.example)"
            )
        if self.console_auth == "none":
            if not is_loopback_host(bind[0]):
                raise ValueError(
                    "ROUTER_CONSOLE_AUTH=none is allowed only on loopback"
                    " (ROUTER_CONSOLE=127.0.0.1:PORT); elsewhere sign-in is required"
                )
            return self
        return self._check_oidc()

    def _check_oidc(self) -> ConsoleSettings:
        issuer = urlsplit(self.console_issuer)
        missing = [
            name
            for name, present in (
                ("ROUTER_CONSOLE_ISSUER", bool(self.console_issuer)),
                ("ROUTER_CONSOLE_CLIENT_ID", bool(self.console_client_id)),
                (
                    "ROUTER_CONSOLE_CLIENT_SECRET",
                    self.console_client_secret is not None
                    or self.console_client_secret_file is not None,
                ),
                (
                    "ROUTER_CONSOLE_USERS, ROUTER_CONSOLE_GROUPS or ROUTER_CONSOLE_ADMINS",
                    bool(self.console_users or self.console_groups or self.console_admins),
                ),
            )
            if not present
        ]
        if missing:
            raise ValueError(
                f"the console's sign-in (ROUTER_CONSOLE_AUTH=oidc) needs {', '.join(missing)}"
            )
        local = issuer.hostname is not None and is_loopback_host(issuer.hostname)
        if issuer.scheme != "https" and not (issuer.scheme == "http" and local):
            raise ValueError(
                "ROUTER_CONSOLE_ISSUER must be an https:// URL (http only on loopback)"
            )
        return self

    @property
    def console_bind(self) -> tuple[str, int] | None:
        """Where the console listens; None when it is off."""
        return parse_console_bind(self.console)

    @property
    def console_public_url(self) -> str:
        """The console's address as people reach it, without a trailing slash."""
        if self.console_url:
            return self.console_url.rstrip("/")
        bind = self.console_bind
        host, port = bind if bind is not None else ("127.0.0.1", 0)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def console_user_names(self) -> frozenset[str]:
        return _names(self.console_users)

    @property
    def console_group_names(self) -> frozenset[str]:
        return _names(self.console_groups)

    @property
    def console_admin_names(self) -> frozenset[str]:
        return _names(self.console_admins)

    def console_secret(self) -> str | None:
        """The OIDC client secret, from the variable or its `_FILE` variant."""
        if self.console_client_secret is not None:
            return self.console_client_secret.get_secret_value()
        if self.console_client_secret_file is not None:
            return self.console_client_secret_file.read_text(encoding="utf-8").strip()
        return None

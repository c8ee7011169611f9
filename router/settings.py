"""Settings from ROUTER_* environment variables (SPEC section 7), validated at start-up."""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Endpoint(BaseModel):
    """A parsed inbox or relay address."""

    scheme: Literal["imap", "imaps", "smtp", "smtps", "maildir"]
    host: str = ""
    port: int = 0
    user: str | None = None
    folder: str = "INBOX"
    path: Path | None = None  # for maildir:

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


_DEFAULT_PORTS = {"imap": 143, "imaps": 993, "smtp": 25, "smtps": 465}


def parse_endpoint(value: str, allowed: tuple[str, ...]) -> Endpoint:
    """Parse `imap://user@host:port/FOLDER`, `smtp://host:port` or `maildir:PATH`.

    Raises:
        ValueError: with a message naming what is wrong.
    """
    if value.startswith("maildir:"):
        if "maildir" not in allowed:
            raise ValueError(f"maildir is not allowed here (use one of {', '.join(allowed)})")
        path = value[len("maildir:") :]
        if not path:
            raise ValueError("maildir: needs a path, e.g. maildir:./var/outbox")
        return Endpoint(scheme="maildir", path=Path(path))
    parts = urlsplit(value)
    if parts.password is not None:
        # The value is not quoted back: it holds the password.
        raise ValueError(
            "a password in the URL is not accepted (it would show wherever the setting is"
            " shown); use ROUTER_*_PASSWORD or ROUTER_*_PASSWORD_FILE"
        )
    if parts.scheme not in allowed:
        raise ValueError(f"{value!r}: scheme must be one of {', '.join(allowed)}")
    if not parts.hostname:
        raise ValueError(f"{value!r}: no host")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError(f"{value!r}: bad port") from exc
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return Endpoint(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        folder=folder,
    )


class Settings(BaseSettings):
    """Every setting of the router. Passed in to what needs it, never imported as a global."""

    # Errors never echo the values given: they may hold a password.
    model_config = SettingsConfigDict(
        env_prefix="ROUTER_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    rules_dir: Path = Path("./rules")
    state_dir: Path = Path("./var")
    inbox: str = "smtp://127.0.0.1:2525"
    inbox_password: SecretStr | None = None
    inbox_password_file: Path | None = None
    # Empty: a Maildir in the state directory (`relay_endpoint`), SPEC section 7.
    relay: str = ""
    relay_user: str | None = None
    relay_password: SecretStr | None = None
    relay_password_file: Path | None = None
    from_address: str = "referrals@localhost"
    review_address: str = "review@localhost"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    http: str = "127.0.0.1:9181"
    inbox_ca_file: Path | None = None
    relay_ca_file: Path | None = None
    # Allow plain-text IMAP / unverified SMTP to a host that is not on loopback.
    allow_insecure: bool = False
    # IMAP folders the inbox copy is moved to once settled.
    processed_folder: str = "Processed"
    failed_folder: str = "Failed"
    idle_seconds: int = Field(default=300, ge=5, le=1740)
    imap_batch: int = Field(default=50, ge=1)
    max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_attachments: int = Field(default=20, ge=1)
    parse_timeout_seconds: float = Field(default=20.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    retention_days: int = Field(default=30, ge=0)
    # Comma-separated authserv-ids of the council's own mail servers: only their
    # Authentication-Results headers are believed (router.mail.auth). Empty: the topmost.
    trusted_authserv_ids: str = ""
    shutdown_seconds: float = Field(default=8.0, gt=0)

    # OAuth 2.0 (SPEC section 7, "OAuth 2.0"): how the inbox and the relay authenticate.
    inbox_auth: Literal["password", "oauth2"] = "password"
    # None: `password` when ROUTER_RELAY_USER is set, else `none` (see `relay_auth_method`).
    relay_auth: Literal["none", "password", "oauth2"] | None = None
    oauth_provider: Literal["microsoft", "google", "generic"] = "microsoft"
    oauth_tenant: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: SecretStr | None = None
    oauth_client_secret_file: Path | None = None
    oauth_certificate_file: Path | None = None
    oauth_token_url: str = ""
    oauth_scope: str = ""
    # What to do with mail already in the IMAP folder at the first connection:
    # `new`, `all` or a date YYYY-MM-DD (SPEC section 7, "First connection to a mailbox").
    imap_start: str = "new"
    # The embedded listener off loopback: STARTTLS certificate and client networks (CIDRs).
    inbox_tls_cert_file: Path | None = None
    inbox_tls_key_file: Path | None = None
    inbox_allow: str = ""
    # Empty: SQLite in state_dir; `postgresql://user@host:port/db` for a shared journal.
    journal: str = ""
    journal_password: SecretStr | None = None
    journal_password_file: Path | None = None
    # This router's name among several sharing one journal (empty: host name and PID).
    node_name: str = ""

    @field_validator("from_address", "review_address")
    @classmethod
    def _address(cls, value: str) -> str:
        address = value.strip().lower()
        if "@" not in address or any(c in address for c in " <>,;\r\n"):
            raise ValueError(f"{value!r} is not a bare email address")
        return address

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("imap_start")
    @classmethod
    def _imap_start(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("new", "all"):
            return value
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                date.fromisoformat(value)
                return value
        except ValueError:
            pass
        raise ValueError("ROUTER_IMAP_START must be new, all or a date YYYY-MM-DD")

    @model_validator(mode="after")
    def _oauth(self) -> Settings:
        # SPEC section 7, "OAuth 2.0": what each provider needs, checked at start-up.
        if self.oauth_token_url:
            url = urlsplit(self.oauth_token_url)
            local = (
                url.hostname is not None and Endpoint(scheme="smtp", host=url.hostname).is_loopback
            )
            if url.scheme != "https" and not (url.scheme == "http" and local):
                raise ValueError(
                    "ROUTER_OAUTH_TOKEN_URL must be an https:// URL (http only on loopback)"
                )
        if "oauth2" not in (self.inbox_auth, self.relay_auth_method):
            return self
        secret = self.oauth_client_secret is not None or self.oauth_client_secret_file is not None
        needs = {
            "generic": [("ROUTER_OAUTH_TOKEN_URL", bool(self.oauth_token_url))],
            "microsoft": [("ROUTER_OAUTH_TENANT", bool(self.oauth_tenant or self.oauth_token_url))],
            "google": [("ROUTER_OAUTH_CERTIFICATE_FILE", self.oauth_certificate_file is not None)],
        }[self.oauth_provider]
        if self.oauth_provider != "google":
            needs.append(("ROUTER_OAUTH_CLIENT_ID", bool(self.oauth_client_id)))
            credential = secret or (
                self.oauth_provider == "microsoft" and self.oauth_certificate_file is not None
            )
            needs.append(("ROUTER_OAUTH_CLIENT_SECRET", credential))
        if self.relay_auth_method == "oauth2":
            user = self.relay_user or self.relay_endpoint.user
            needs.append(("ROUTER_RELAY_USER", bool(user)))
        missing = [name for name, present in needs if not present]
        if missing:
            raise ValueError(
                f"OAuth 2.0 with ROUTER_OAUTH_PROVIDER={self.oauth_provider} needs"
                f" {', '.join(missing)}"
            )
        return self

    @model_validator(mode="after")
    def _endpoints(self) -> Settings:
        self.inbox_endpoint  # noqa: B018  (validate now, fail at start-up)
        self.relay_endpoint  # noqa: B018
        self.http_bind  # noqa: B018
        return self

    @property
    def inbox_endpoint(self) -> Endpoint:
        return parse_endpoint(self.inbox, ("imap", "imaps", "smtp"))

    @property
    def relay_endpoint(self) -> Endpoint:
        relay = self.relay.strip() or f"maildir:{self.state_dir / 'outbox'}"
        return parse_endpoint(relay, ("smtp", "smtps", "maildir"))

    @property
    def relay_auth_method(self) -> Literal["none", "password", "oauth2"]:
        """`relay_auth`, or its default: `password` when a relay user is set, else `none`."""
        if self.relay_auth is not None:
            return self.relay_auth
        return "password" if self.relay_user else "none"

    @property
    def authserv_ids(self) -> tuple[str, ...]:
        """`trusted_authserv_ids` as lower-case ids, blanks dropped."""
        ids = (part.strip().lower() for part in self.trusted_authserv_ids.split(","))
        return tuple(part for part in ids if part)

    @property
    def http_bind(self) -> tuple[str, int] | None:
        if not self.http.strip():
            return None
        host, sep, port = self.http.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"ROUTER_HTTP {self.http!r}: expected host:port or empty")
        return host or "127.0.0.1", int(port)

    def secret(self, name: Literal["inbox", "relay"]) -> str | None:
        """The password for the inbox or the relay, from the variable or its `_FILE` variant."""
        value = self.inbox_password if name == "inbox" else self.relay_password
        path = self.inbox_password_file if name == "inbox" else self.relay_password_file
        if value is not None:
            return value.get_secret_value()
        if path is not None:
            return path.read_text(encoding="utf-8").strip()
        return None

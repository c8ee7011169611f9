"""Settings from ROUTER_* environment variables (SPEC section 7), validated at start-up."""

from __future__ import annotations

import ipaddress
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
    relay: str = "maildir:./var/outbox"
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
        return parse_endpoint(self.relay, ("smtp", "smtps", "maildir"))

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

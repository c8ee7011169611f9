"""Sign-in with OpenID Connect (Authlib's code flow, with PKCE) and the two roles.

Who may come in is decided from the ID token's (or the userinfo endpoint's) claims: the
email address (`email`, else `preferred_username` or `upn`, as Entra ID gives it) or a value
of the groups claim, against ROUTER_CONSOLE_USERS, _GROUPS and _ADMINS. Every sign-in and
every refusal is logged with who and why, never with anything of a referral.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

if TYPE_CHECKING:
    from router.settings import Settings

log = structlog.get_logger(__name__)

NO_SIGN_IN_USER = "console (no sign-in, loopback)"


class Role(StrEnum):
    """`viewer` sees everything; `admin` may also reprocess and try messages."""

    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    """The person signed in to this session."""

    email: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def role_for(settings: Settings, email: str, groups: list[str]) -> Role | None:
    """The role of someone with this address and these groups; None: not allowed."""
    names = {email.lower(), *(group.lower() for group in groups)}
    if names & settings.console_admin_names:
        return Role.ADMIN
    if email.lower() in settings.console_user_names or names & settings.console_group_names:
        return Role.VIEWER
    return None


def current_user(request: Request) -> User | None:
    """The signed-in user of the request's session, if any."""
    email, role = request.session.get("user"), request.session.get("role")
    if isinstance(email, str) and role in (Role.VIEWER.value, Role.ADMIN.value):
        return User(email, Role(role))
    return None


class SignIn:
    """The OIDC client and its three routes' handlers: start, callback, sign out."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.oauth = OAuth()
        self.callback_url = f"{settings.console_public_url}/auth/callback"
        if settings.console_auth == "oidc":
            issuer = settings.console_issuer.rstrip("/")
            self.oauth.register(
                "issuer",
                client_id=settings.console_client_id,
                client_secret=settings.console_secret(),
                server_metadata_url=f"{issuer}/.well-known/openid-configuration",
                client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
            )

    async def start(self, request: Request) -> Response:
        """Send the browser to the issuer's sign-in page."""
        client = self.oauth.create_client("issuer")
        response: Response = await client.authorize_redirect(request, self.callback_url)
        return response

    async def callback(self, request: Request) -> tuple[User | None, str]:
        """Finish the code flow; the user when allowed (the session then holds them), else
        None and why (logged)."""
        client = self.oauth.create_client("issuer")
        try:
            token = await client.authorize_access_token(request)
        except OAuthError as exc:
            log.warning("console_denied", reason="sign-in failed", error=exc.error)
            return None, "The sign-in did not complete. Please try again."
        claims: dict[str, Any] = dict(token.get("userinfo") or {})
        if not _email(claims) or self.settings.console_groups_claim not in claims:
            claims |= dict(await client.userinfo(token=token))
        email = _email(claims)
        groups = claims.get(self.settings.console_groups_claim) or []
        groups = [str(group) for group in groups] if isinstance(groups, list) else [str(groups)]
        role = role_for(self.settings, email, groups) if email else None
        if role is None:
            log.warning("console_denied", user=email or "(no email claim)", reason="not allowed")
            return None, "Your account is not allowed to use this console."
        request.session.clear()
        now = time.time()
        request.session.update({"user": email, "role": role.value, "seen": now, "since": now})
        log.info("console_signed_in", user=email, role=role.value)
        return User(email, role), ""

    def sign_out(self, request: Request) -> Response:
        """End the session (the issuer's own session is left to the issuer)."""
        user = current_user(request)
        request.session.clear()
        if user is not None:
            log.info("console_signed_out", user=user.email)
        return RedirectResponse("/sign-in?signed_out=1", status_code=303)

    def no_sign_in(self, request: Request) -> None:
        """ROUTER_CONSOLE_AUTH=none (loopback only): every visitor is an admin."""
        if "user" not in request.session:
            now = time.time()
            request.session.update(
                {"user": NO_SIGN_IN_USER, "role": Role.ADMIN.value, "seen": now, "since": now}
            )


def _email(claims: dict[str, Any]) -> str:
    for key in ("email", "preferred_username", "upn"):
        value = claims.get(key)
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    return ""

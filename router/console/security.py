"""Security headers on every answer, CSRF tokens on every POST, and the session's idle limit.

Sessions are Starlette's signed cookies (itsdangerous); this module only decides what a
request may do with the session it brings.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import structlog
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

CSRF_FIELD = "csrf_token"

HEADERS = {
    # No inline script or style anywhere: the pages work without JavaScript, and what
    # JavaScript there is (govuk-frontend) comes from the console's own /static.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none';"
        " object-src 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class SecurityHeaders:
    """ASGI middleware: the headers above on every response, `no-store` on all but /static."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use), for the forms of a page."""
    session: dict[str, Any] = request.session
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


async def checked_form(request: Request, *, max_part_size: int = 1024 * 1024) -> FormData:
    """The POSTed form, once its CSRF token matches the session's.

    Raises:
        HTTPException: 403 when the token is missing or wrong (logged).
    """
    form = await request.form(max_files=1, max_fields=20, max_part_size=max_part_size)
    given = form.get(CSRF_FIELD)
    expected = request.session.get(CSRF_FIELD)
    if (
        not isinstance(given, str)
        or not isinstance(expected, str)
        or not secrets.compare_digest(given, expected)
    ):
        log.warning(
            "console_denied",
            user=request.session.get("user"),
            path=request.url.path,
            reason="csrf",
        )
        raise HTTPException(403, "This form has expired. Go back, reload the page and try again.")
    return form


# However active, a session signs in again after this long.
SESSION_LIFETIME_SECONDS = 12 * 3600


def idle_expired(session: dict[str, Any], idle_seconds: float, now: float | None = None) -> bool:
    """True when a signed-in session has been idle too long, or has lasted longer than
    `SESSION_LIFETIME_SECONDS` (it is then cleared); else its last activity is now."""
    now = time.time() if now is None else now
    seen, since = session.get("seen"), session.get("since")
    idle = isinstance(seen, int | float) and now - seen > idle_seconds
    old = isinstance(since, int | float) and now - since > SESSION_LIFETIME_SECONDS
    if "user" in session and (idle or old):
        session.clear()
        return True
    if "user" in session:
        session["seen"] = now
    return False

"""The console's Starlette application: middleware, the sign-in gate and the route table."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from router.console.auth import SignIn, User, current_user
from router.console.context import ConsoleContext
from router.console.data import mask_address
from router.console.security import SecurityHeaders, checked_form, csrf_token, idle_expired
from router.core.report_render import duration

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "router_console"
SESSION_MAX_AGE = 12 * 3600  # the cookie's own expiry, renewed at each answer (see security.py)

Handler = Callable[[Request, User], Awaitable[Response]]


class Console:
    """Renders pages for the signed-in user of each request. See `build_app`."""

    def __init__(self, context: ConsoleContext) -> None:
        self.context = context
        self.settings = context.settings
        self.sign_in = SignIn(context.settings)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["when"] = _when
        self.templates.env.filters["masked"] = mask_address
        self.templates.env.filters["duration"] = duration  # as `report` words it
        # A session unused this long is sent back to sign in (tests shorten it while it runs).
        self.idle_seconds = float(context.settings.console_idle_minutes * 60)
        self.clock: Callable[[], float] = time.time  # tests move it on

    def render(
        self, request: Request, name: str, values: dict[str, Any], status: int = 200
    ) -> Response:
        """A page, with the user, the CSRF token and the active section filled in."""
        base = {
            "user": current_user(request),
            "csrf_token": csrf_token(request),
            "auth": self.settings.console_auth,
        }
        return self.templates.TemplateResponse(
            request, name, {**base, **values}, status_code=status
        )

    def page(self, *, admin: bool = False) -> Callable[[Handler], Callable[[Request], Any]]:
        """Wrap a handler: sign-in (or sent to it), idle timeout, and the admin role."""

        def wrap(handler: Handler) -> Callable[[Request], Any]:
            @wraps(handler)
            async def gated(request: Request) -> Response:
                if self.settings.console_auth == "none":
                    self.sign_in.no_sign_in(request)
                if idle_expired(request.session, self.idle_seconds, self.clock()):
                    return RedirectResponse("/sign-in?expired=1", status_code=303)
                user = current_user(request)
                if user is None:
                    return RedirectResponse("/sign-in", status_code=303)
                if admin and not user.is_admin:
                    log.warning(
                        "console_denied", user=user.email, path=request.url.path, reason="viewer"
                    )
                    raise HTTPException(403, "Only an admin can do this.")
                return await handler(request, user)

            return gated

        return wrap

    # --- sign-in -------------------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        if self.settings.console_auth == "none" or current_user(request) is not None:
            return RedirectResponse("/", status_code=303)
        values = {
            "expired": "expired" in request.query_params,
            "signed_out": "signed_out" in request.query_params,
        }
        return self.render(request, "sign_in.html", values)

    async def login(self, request: Request) -> Response:
        if self.settings.console_auth == "none":
            return RedirectResponse("/", status_code=303)
        return await self.sign_in.start(request)

    async def callback(self, request: Request) -> Response:
        user, problem = await self.sign_in.callback(request)
        if user is None:
            return self.render(request, "refused.html", {"problem": problem}, status=403)
        return RedirectResponse("/", status_code=303)

    async def sign_out(self, request: Request) -> Response:
        await checked_form(request)
        return self.sign_in.sign_out(request)

    async def error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 500:
            log.error("console_page_failed", path=request.url.path, error=type(exc).__name__)
        detail = exc.detail if isinstance(exc, HTTPException) else "Something went wrong."
        if status == 404:
            detail = "Page not found."
        return self.render(request, "error.html", {"status": status, "detail": detail}, status)


def build_app(context: ConsoleContext, session_key: str) -> Starlette:
    """The console's ASGI application.

    Args:
        context: what it reads and acts on.
        session_key: the secret that signs session cookies.
    """
    from router.console.actions import Actions
    from router.console.pages import Pages

    console = Console(context)
    pages, actions = Pages(console), Actions(console)
    routes = [
        Route("/", console.page()(pages.overview)),
        Route("/referrals", console.page()(pages.referrals)),
        Route("/referrals/{reference}", console.page()(pages.referral)),
        Route("/referrals/{reference}/reprocess", console.page(admin=True)(actions.confirm)),
        Route(
            "/referrals/{reference}/reprocess",
            console.page(admin=True)(actions.reprocess),
            methods=["POST"],
        ),
        Route("/rules", console.page()(pages.rules)),
        Route("/rules/try", console.page(admin=True)(actions.try_message), methods=["POST"]),
        Route("/statistics", console.page()(pages.statistics)),
        Route("/statistics.csv", console.page()(pages.statistics_csv)),
        Route("/sign-in", console.sign_in_page),
        Route("/login", console.login),
        Route("/auth/callback", console.callback),
        Route("/sign-out", console.sign_out, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=session_key,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE,
            same_site="lax",  # the issuer's redirect back must bring the cookie
            https_only=True,
        ),
    ]
    handlers = {HTTPException: console.error, Exception: console.error}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.console = console
    return app


def _when(value: float | None) -> str:
    """Epoch seconds as `2026-12-07 14:27:08 UTC`."""
    if value is None:
        return "-"
    return f"{datetime.fromtimestamp(value, UTC):%Y-%m-%d %H:%M:%S} UTC"

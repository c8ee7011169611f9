"""A `TokenSource` that caches one provider's token, renews it early and backs off on refusal.

The token is fetched in a worker thread (msal, google-auth and requests block). It is kept
until 80% of its lifetime has passed, then renewed. A failure is logged once per cause, in
one line that names the cause and the setting to check, never the secret or the token; while
the backoff runs, callers get the same error at once instead of hammering the endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import structlog

from router.oauth.base import AccessToken, Cause, OAuthError, TokenFetcher

log = structlog.get_logger(__name__)
# The providers' libraries may log requests and answers at debug, tokens included.
for _library in ("msal", "google.auth", "google.oauth2", "urllib3"):
    logging.getLogger(_library).setLevel(logging.INFO)

RENEW_FRACTION = 0.8  # renew when 80% of the lifetime has passed
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
# A refusal an admin must fix is retried no sooner than this (a fix takes minutes anyway).
REFUSAL_MIN_SECONDS = 30.0


class CachedTokenSource:
    """See `TokenSource`. One per mailbox user (Google tokens are per user).

    Args:
        fetcher: the provider.
        role: what uses the token ("inbox" or "relay"), for logs and /readyz.
        on_change: called after every change of `health()` (the daemon records it).
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        fetcher: TokenFetcher,
        *,
        role: str,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = fetcher.provider
        self.role = role
        self._fetcher = fetcher
        self._on_change = on_change
        self._clock = clock
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._error: OAuthError | None = None  # the token endpoint's last refusal
        self._refusal: OAuthError | None = None  # a mail server's last refusal of the token
        self._retry_at = 0.0
        self._since = time.time()
        self.fetches = 0  # tokens fetched so far, for tests and metrics

    async def token(self) -> AccessToken:
        """See `TokenSource`."""
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._token.renew_at:
                return self._token
            if self._error is not None and now < self._retry_at:
                raise self._error
            try:
                grant = await asyncio.to_thread(self._fetcher.fetch)
            except OAuthError as exc:
                self._fail(exc)
                raise
            now = self._clock()
            lifetime = max(1.0, grant.lifetime)
            self._token = AccessToken(
                grant.value, expires_at=now + lifetime, renew_at=now + RENEW_FRACTION * lifetime
            )
            self.fetches += 1
            self._ok(lifetime)
            return self._token

    def refused(self, by: str) -> None:
        """See `TokenSource`."""
        self._token = None
        if self._refusal is None:
            self._since = time.time()
            cause = Cause.GRAPH_REFUSED if by == "graph" else Cause.TOKEN_REFUSED
            error = OAuthError(cause, f"{by} authentication refused")
            self._log_failure(error, None)
            self._refusal = error
        self._changed()

    def invalidate(self) -> None:
        """See `TokenSource`."""
        self._token = None

    def accepted(self) -> None:
        """See `TokenSource`."""
        if self._refusal is not None:
            self._refusal = None
            log.info("oauth.accepted_again", role=self.role, provider=self.provider)
            self._changed()

    @property
    def ok(self) -> bool:
        """False while the token endpoint or the mail server refuses."""
        return self._error is None and self._refusal is None

    def health(self) -> dict[str, Any]:
        """What /readyz and `status` show: provider, state, cause and setting; nothing secret."""
        state: dict[str, Any] = {"provider": self.provider, "ok": self.ok}
        error = self._error or self._refusal
        if error is not None:
            state.update(
                cause=error.cause.short,
                check=error.cause.setting,
                error=str(error),
                failing_since=round(self._since, 1),
            )
            if self._error is not None:
                state["retry_in_seconds"] = round(max(0.0, self._retry_at - self._clock()), 1)
        elif self._token is not None:
            state["token_expires_in_seconds"] = round(self._token.expires_at - self._clock(), 1)
        return state

    def _fail(self, exc: OAuthError) -> None:
        step = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**self._failures)
        delay = step * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not security)
        if not exc.retryable and exc.cause is not Cause.NETWORK:
            delay = max(delay, REFUSAL_MIN_SECONDS)
        self._failures += 1
        self._retry_at = self._clock() + delay
        same = self._error is not None and self._error.cause is exc.cause
        if not same:
            self._since = time.time()
            self._log_failure(exc, delay)
        else:
            log.debug("oauth.retry", role=self.role, cause=exc.cause.short, retry_seconds=delay)
        self._error = exc
        self._changed()

    def _changed(self) -> None:
        """Tell `on_change`; its failure never leaves `token()` (a token is not the journal's)."""
        try:
            self._on_change()
        except Exception as exc:
            log.warning("oauth.health_not_recorded", role=self.role, error=type(exc).__name__)

    def _log_failure(self, exc: OAuthError, delay: float | None) -> None:
        log.warning(
            "oauth.failed",
            role=self.role,
            provider=self.provider,
            cause=exc.cause.short,
            code=exc.code,
            check=exc.cause.setting,
            error=str(exc),
            retry_seconds=None if delay is None else round(delay, 1),
        )

    def _ok(self, lifetime: float) -> None:
        recovered = self._error is not None
        self._error, self._failures, self._retry_at = None, 0, 0.0
        if recovered:
            log.info("oauth.recovered", role=self.role, provider=self.provider)
        else:
            log.debug("oauth.token", role=self.role, lifetime_seconds=round(lifetime))
        self._changed()

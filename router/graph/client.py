"""Microsoft Graph over HTTP, shared by the graph:// inbox and relay: one request at a time,
with its bearer token, its mailbox's throttling gate, and Graph's errors made into values.

httpx2's async client (httpx's successor, which Authlib uses too) is used directly: the router
needs six endpoints, and the Graph SDK (with its generated models for every Graph resource)
would be a much larger dependency for them.

Every request:

- waits for its mailbox's gate (`MailboxGate`): no request to a mailbox while a `Retry-After`
  Graph gave for it runs, and at most four in flight to it (Graph's mailbox concurrency limit);
- carries `Authorization: Bearer` with a token from the role's `TokenSource`; a 401 drops the
  token and the request is sent once more with a new one; a second 401 is a refusal
  (`TokenSource.refused`), raised as `GraphError`;
- on 429, 503 or 504, closes the gate for `Retry-After` seconds (exponential backoff when
  Graph gives none) and is retried after it, up to three times when the wait is short; a
  longer wait, or the fourth such answer, is raised (`GraphError.retry_after` says how long).
  The caller never retries in a tight loop: the gate holds every request until the time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx2 as httpx  # httpx2: the maintained successor, also what Authlib uses
import structlog

from router.oauth.base import TokenSource
from router.settings import Settings

log = structlog.get_logger(__name__)

MAILBOX_CONCURRENCY = 4  # Graph's limit of requests in flight per app and mailbox
RETRIES = 3  # 429/503/504 answers waited out within one call
MAX_WAIT_SECONDS = 30.0  # a longer Retry-After is raised to the caller instead of waited out
TIMEOUT_SECONDS = 60.0
THROTTLING = frozenset({429, 503, 504})


class GraphError(Exception):
    """Graph answered with an error, or could not be reached.

    Attributes:
        status: the HTTP status, or None when there was no answer (network, timeout).
        code: Graph's error code (`ErrorItemNotFound`, ...) or a short cause.
        detail: Graph's message, cut short; never message content.
        retry_after: seconds Graph asked to wait (throttling), else None.
    """

    def __init__(
        self, status: int | None, code: str, detail: str = "", retry_after: float | None = None
    ) -> None:
        self.status, self.code, self.retry_after = status, code, retry_after
        self.detail = " ".join(detail.split())[:300]
        super().__init__(f"{status or 'no answer'} {code}: {self.detail}".strip(": "))

    @property
    def transient(self) -> bool:
        """Whether trying again later may work (no answer, throttling, a server error)."""
        return self.status is None or self.status in THROTTLING or self.status >= 500


class MailboxGate:
    """One mailbox's throttling state, shared by everything that calls Graph for it."""

    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self._slots = asyncio.Semaphore(limit)
        self.not_before = 0.0  # monotonic: no request before this
        self.throttled = 0  # 429/503/504 answers seen
        self.last_throttled: float | None = None  # epoch seconds

    def hold(self, seconds: float) -> None:
        """No request to the mailbox for `seconds` from now."""
        self.not_before = max(self.not_before, time.monotonic() + seconds)
        self.throttled += 1
        self.last_throttled = time.time()

    @property
    def wait_seconds(self) -> float:
        return max(0.0, self.not_before - time.monotonic())

    async def enter(self) -> None:
        """Wait until the mailbox may be asked again and a slot is free; take the slot."""
        while True:
            await asyncio.sleep(self.wait_seconds)
            await self._slots.acquire()
            if self.wait_seconds <= 0:
                return
            self._slots.release()  # throttled while this one waited for a slot

    def leave(self) -> None:
        self._slots.release()


def make_client(
    settings: Settings,
    tokens: TokenSource,
    gate: MailboxGate,
    on_throttled: Callable[[], None] = lambda: None,
) -> GraphClient:
    """A client for `ROUTER_GRAPH_URL` (the CA file of a private test server: none)."""
    return GraphClient(settings.graph_url, tokens, gate, on_throttled=on_throttled)


class MailboxGates:
    """The gate of each mailbox (inbox and relay on one mailbox share it)."""

    def __init__(self) -> None:
        self._gates: dict[str, MailboxGate] = {}

    def __getitem__(self, mailbox: str) -> MailboxGate:
        return self._gates.setdefault(mailbox.lower(), MailboxGate())


def retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait: Graph's `Retry-After` (in seconds), else exponential backoff."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return float(2**attempt)


def error_of(response: httpx.Response) -> GraphError:
    """A `GraphError` from Graph's error body `{"error": {"code", "message"}}`."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    return GraphError(
        response.status_code,
        str(error.get("code") or response.reason_phrase or "error"),
        str(error.get("message") or ""),
    )


class GraphClient:
    """Requests to Graph for one role (inbox or relay) and one mailbox.

    Args:
        base_url: `ROUTER_GRAPH_URL`.
        tokens: the role's token source (scope `<origin>/.default`).
        gate: the mailbox's gate.
        on_throttled: called after each 429/503/504 (status and metrics).
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        gate: MailboxGate,
        *,
        on_throttled: Callable[[], None] = lambda: None,
        timeout: float = TIMEOUT_SECONDS,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens, self.gate = tokens, gate
        self._on_throttled = on_throttled
        self._timeout, self._verify = timeout, verify
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """The connection pool, opened on first use (again after `close`: an inbox whose
        mailbox lease is lost and regained runs again with the same client)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, verify=self._verify, follow_redirects=False
            )
        return self._client

    async def close(self) -> None:
        """Close the connections (a later request opens new ones)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request (`path` under `base_url`, or a whole URL Graph gave) and return
        its successful answer, read in full.

        Raises:
            GraphError: Graph refused it, throttled it for longer than is waited out here,
                or could not be reached.
            OAuthError: no token could be had.
        """
        url = path if path.startswith(("https://", "http://")) else self.base_url + path
        renewed = False
        for attempt in range(RETRIES + 1):
            response = await self._send(method, url, json, content, headers, params)
            if response.status_code == 401 and not renewed:
                self.tokens.invalidate()  # expired or revoked: once more with a new token
                renewed = True
                log.info("graph.reauthenticate", reason="401")
                continue
            if response.status_code == 401:
                self.tokens.refused("graph")
                raise error_of(response)
            if response.status_code in THROTTLING:
                seconds = retry_after(response, attempt)
                self.gate.hold(seconds)
                self._on_throttled()
                log.info("graph.throttled", status=response.status_code, retry_after=seconds)
                if seconds <= MAX_WAIT_SECONDS and attempt < RETRIES:
                    continue  # the gate holds this request (and every other) until then
                error = error_of(response)
                error.retry_after = seconds
                raise error
            if response.status_code >= 400:
                raise error_of(response)
            self.tokens.accepted()
            return response
        raise GraphError(None, "retries", "throttled on every attempt")  # not reached

    async def _send(
        self,
        method: str,
        url: str,
        json: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        if self.gate.wait_seconds > MAX_WAIT_SECONDS:  # the caller comes back later
            raise GraphError(429, "throttled", "Retry-After runs", self.gate.wait_seconds)
        token = await self.tokens.token()  # before the gate: no wait between its check and the send
        await self.gate.enter()
        try:
            sent = {**(headers or {}), "Authorization": f"Bearer {token.value}"}
            return await self._http.request(
                method, url, json=json, content=content, headers=sent, params=params
            )
        except httpx.HTTPError as exc:
            raise GraphError(None, type(exc).__name__, "Graph could not be reached") from None
        finally:
            self.gate.leave()

    async def upload(self, url: str, chunk: bytes, start: int, total: int) -> httpx.Response:
        """PUT one range to an upload session's URL (which carries its own authorization:
        Microsoft says not to send the bearer token there).

        Raises:
            GraphError: refused or unreachable.
        """
        end = start + len(chunk) - 1
        headers = {"Content-Range": f"bytes {start}-{end}/{total}"}
        await self.gate.enter()
        try:
            response = await self._http.put(url, content=chunk, headers=headers)
        except httpx.HTTPError as exc:
            raise GraphError(None, type(exc).__name__, "Graph could not be reached") from None
        finally:
            self.gate.leave()
        if response.status_code >= 400:
            raise error_of(response)
        return response

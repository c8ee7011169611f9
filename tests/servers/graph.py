"""A loopback Microsoft Graph v1.0 server for tests, written from Microsoft's documentation.

It serves, under `/v1.0`, the endpoints the router uses, as Microsoft documents them:

- bearer tokens from the loopback token endpoint (tests/servers/token.py), checked for
  signature, expiry and audience (the Graph origin) and for the application permissions in
  their `roles` (Mail.ReadWrite to read and move, Mail.Send to send): 401
  `InvalidAuthenticationToken` or 403 `ErrorAccessDenied` otherwise; `revoke_tokens()` makes
  every token issued so far be refused (as after a credential change);
- `GET /users/{m}/mailFolders[?$filter=displayName eq '...']`, `.../mailFolders/{id}` (ids or
  well-known names), `.../childFolders`, `POST` of both (201; 409 `ErrorFolderExists`);
- `GET /users/{m}/mailFolders/{id}/messages/delta` with `$select`, `$expand` of the
  PidTagMessageSize extended property and `Prefer: odata.maxpagesize`: the folder's messages,
  then `@odata.nextLink` pages and a final `@odata.deltaLink`; a delta link gives what entered
  the folder since (and `@removed` entries for what left it); `expire_delta_links()` makes
  every token handed out so far answer 410 `SyncStateNotFound`;
- `GET /users/{m}/messages/{id}` and `.../$value` (the MIME), `POST .../move` (201, the message
  with a new id; the old id is 404 `ErrorItemNotFound` afterwards), `DELETE` (204);
- `POST /users/{m}/sendMail` with `Content-Type: text/plain` and the MIME base64-encoded: 202;
  400 for a body that is not base64 or a message without recipients, 403 `ErrorSendAsDenied`
  when From is another address the mailbox may not send as, 413 over the 4 MB request limit;
- `POST /users/{m}/messages` (a draft from base64 MIME, 201), `.../attachments/
  createUploadSession` (201, an `uploadUrl` that takes `PUT`s of at most 4 MB with
  `Content-Range` and no `Authorization` header; 200 with `nextExpectedRanges`, then 201),
  `POST .../send` (202);
- throttling: `throttle(n, retry_after)` answers the next n requests 429 with `Retry-After`;
  a request to a mailbox before its `Retry-After` has passed is answered 429 again and counted
  in `early`; a fifth request in flight to one mailbox is answered 429 (the mailbox
  concurrency limit of 4) and counted in `over_concurrency`;
- every error body is Graph's `{"error": {"code", "message", "innerError"}}`.

What it does not model: batching (`$batch`), change notifications, any `$filter` but
`displayName eq '...'` on folders, `$orderby`, `$search`, JSON (non-MIME) message bodies,
attachments under 3 MB posted directly, immutable ids (`Prefer: IdType`), per-app request
budgets over time (only on-demand 429s and the concurrency limit), the Exchange sending limits,
national clouds' differences, TLS (it listens on plain HTTP on loopback), and the exact
wording of Microsoft's error messages (codes are Microsoft's).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.servers.graph_routes import CROWDED, EARLY, GRAPH, ROLES, error
from tests.servers.graph_sending import ROUTES
from tests.servers.graph_store import DeltaTokens, Mailbox, Sent
from tests.servers.token import TokenServer

MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAILBOX_CONCURRENCY = 4
TRANSIT_SECONDS = 0.05  # loopback: an answer has reached the client by then


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    mailbox: str | None
    status: int
    at: float  # time.monotonic()
    token: str | None = None
    query: str = ""


@dataclass
class GraphServer:
    """The server and its state. `start()`, use `base_url` as ROUTER_GRAPH_URL, `stop()` after.

    Attributes:
        tokens: the token endpoint whose tokens are accepted.
        send_as: mailbox -> other From addresses it may send as.
        latency: seconds each request takes (to let concurrency show).
    """

    tokens: TokenServer
    send_as: dict[str, set[str]] = field(default_factory=dict)
    latency: float = 0.0
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    early: list[Seen] = field(default_factory=list)  # requests sent before Retry-After passed
    over_concurrency: list[Seen] = field(default_factory=list)
    delta: DeltaTokens = field(default_factory=DeltaTokens)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    revoked: set[str] = field(default_factory=set)  # `jti` of tokens refused
    refusing: bool = False  # every token refused (see `refuse_every_token`)
    _throttles: list[tuple[int, str]] = field(default_factory=list)  # (retry after, path part)
    _not_before: dict[str, tuple[float, float]] = field(default_factory=dict)  # (since, until)
    _in_flight: dict[str, int] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _port: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    # -- what tests do --------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1.0"

    def mailbox(self, address: str) -> Mailbox:
        """The mailbox, created on first use (a licensed or shared mailbox that exists)."""
        with self.lock:
            return self.mailboxes.setdefault(address.lower(), Mailbox(address))

    def deliver(self, address: str, mime: bytes, folder: str = "inbox") -> str:
        """Put a message in a folder (as Exchange delivery does); returns its id."""
        box = self.mailbox(address)
        with self.lock:
            target = box.folder(folder)
            assert target is not None, folder
            message_id = box.add_message(target.id, mime).id
        self.notify()
        return message_id

    def folder_messages(self, address: str, display_name: str) -> list[bytes]:
        """The MIME of every message in the top-level folder of that name ([] if none)."""
        box = self.mailbox(address)
        with self.lock:
            for folder in box.children(box.root):
                if folder.display_name.lower() == display_name.lower():
                    return [m.mime for m in box.in_folder(folder.id)]
        return []

    def throttle(self, count: int, retry_after: int, path_part: str = "") -> None:
        """Answer the next `count` requests whose path contains `path_part` with 429."""
        with self.lock:
            self._throttles.extend([(retry_after, path_part)] * count)

    def expire_delta_links(self) -> None:
        """Every delta and skip token handed out so far is answered 410 from now on."""
        with self.lock:
            self.delta.expire()

    def refuse_every_token(self) -> None:
        """Answer every request 401 from now on, as Graph does for a token it cannot validate
        (issued for another resource or tenant, or an application without the permission)."""
        with self.lock:
            self.refusing = True

    def revoke_tokens(self) -> None:
        """Refuse every token issued so far (401), as after a credential change."""
        with self.lock:
            self.revoked.update(str(claims["jti"]) for claims in self.tokens.issued)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        """Wait, without polling, until `predicate()` holds (checked after each request)."""
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "graph server: condition not met"

    def wait_disconnected(self, timeout: float = 10.0) -> None:
        """Wait until every client connection has closed and the requests on it have been
        answered. A client killed mid-request leaves what it had sent to be carried out, as
        Graph would: a sendMail that had arrived is sent even though nobody reads the 202."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._disconnected(), self._loop).result(timeout)

    async def _disconnected(self) -> None:
        assert self._runner is not None and self._runner.server is not None
        # Each connection's task (aiohttp's RequestHandler) reads its requests, answers them
        # and ends when the connection is closed.
        tasks = [handler._task_handler for handler in self._runner.server.connections]
        if running := [task for task in tasks if task is not None]:
            await asyncio.wait(running)

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> GraphServer:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True, name="graph").start()
        assert ready.wait(10), "graph server did not start"
        self.tokens.resources.add(self.origin)
        return self

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app[GRAPH] = self
        for method, path, handler in ROUTES:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    # -- every request -------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        mailbox = request.match_info.get("user", "").lower() or None
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or None
        key = mailbox or ""
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        arrived = time.monotonic()
        try:
            response = await self._answer(request, handler, mailbox, arrived)
        finally:
            self._in_flight[key] -= 1
        seen = Seen(
            request.method,
            request.path,
            mailbox,
            response.status,
            time.monotonic(),
            token,
            request.query_string,
        )
        with self.lock:
            self.seen.append(seen)
            if response.get(EARLY):
                self.early.append(seen)
            if response.get(CROWDED):
                self.over_concurrency.append(seen)
        self.notify()
        return response

    async def _answer(
        self, request: web.Request, handler: Any, mailbox: str | None, arrived: float
    ) -> web.StreamResponse:
        if request.path.startswith("/upload/"):
            return await handler(request)  # the upload URL carries its own authorization
        if self.latency:
            await asyncio.sleep(self.latency)
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        if mailbox is not None and mailbox not in self.mailboxes:
            return error(404, "ErrorInvalidUser", f"The requested user '{mailbox}' is invalid.")
        throttled = self._throttled(request, mailbox or "", arrived)
        if throttled is not None:
            return throttled
        if (request.content_length or 0) > MAX_REQUEST_BYTES:
            return error(413, "RequestBodyTooLarge", "The request body is too large (4 MB).")
        return await handler(request)

    def _authenticate(self, request: web.Request) -> web.Response | None:
        import jwt

        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return error(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = self.tokens.verify(header[7:].strip(), audience=self.origin)
        except jwt.ExpiredSignatureError:
            return error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        except jwt.InvalidTokenError:
            return error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if self.refusing:
            return error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if claims.get("jti") in self.revoked:
            return error(401, "InvalidAuthenticationToken", "Access token has been revoked.")
        request[ROLES] = set(claims.get("roles", []))
        return None

    def _throttled(self, request: web.Request, mailbox: str, arrived: float) -> web.Response | None:
        now = time.monotonic()
        with self.lock:
            since, not_before = self._not_before.get(mailbox, (0.0, 0.0))
            if now < not_before:
                response = _too_many(max(1, round(not_before - now)), "ApplicationThrottled")
                # Sent after the client was told to wait (not merely in flight then, nor in the
                # moment the answer took to reach it): the client's fault.
                response[EARLY] = arrived > since + TRANSIT_SECONDS
                return response
            for index, (seconds, part) in enumerate(self._throttles):
                if part in request.path:
                    del self._throttles[index]
                    self._not_before[mailbox] = (now, now + seconds)
                    return _too_many(seconds, "ApplicationThrottled")
        if self._in_flight.get(mailbox, 0) > MAILBOX_CONCURRENCY:
            response = _too_many(1, "ApplicationThrottled", "MailboxConcurrency")
            response[CROWDED] = True
            return response
        return None


def _too_many(seconds: int, code: str, limit: str = "request") -> web.Response:
    response = error(429, code, f"Application is over its {limit} limit.")
    response.headers["Retry-After"] = str(seconds)
    return response


@pytest.fixture
def graph_server(token_server: TokenServer) -> Iterator[GraphServer]:
    """A started loopback Graph whose tokens come from `token_server`."""
    server = GraphServer(token_server).start()
    try:
        yield server
    finally:
        server.stop()

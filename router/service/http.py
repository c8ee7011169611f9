"""The operations endpoint: Prometheus `/metrics`, `/healthz` and `/readyz` over minimal HTTP/1.1.

It speaks just enough HTTP for Prometheus, curl, a Docker HEALTHCHECK and a load balancer:
one GET per connection, answered and closed. Bodies never carry personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router.core.loop_thread import LoopThread
from router.journal.records import JournalUnavailable
from router.logs import log_loop_exception
from router.send.health import Check, RelayHealth, age
from router.service.checks import JournalChecks

if TYPE_CHECKING:
    from router.decide.worker import AnalysisSandbox
    from router.journal.protocol import Journal
    from router.metrics import Metrics
    from router.oauth.sources import OAuthSources
    from router.send.probe import RelayProbe
    from router.service.supervise import Supervisor


class InboxState(Protocol):
    """An inbox as the endpoint sees it."""

    @property
    def state(self) -> str: ...


class Operated(Protocol):
    """What the endpoint reads from the daemon it serves (the daemon is one)."""

    journal: Journal
    metrics: Metrics
    inbox: InboxState | None
    relay_health: RelayHealth
    relay_probe: RelayProbe
    oauth: OAuthSources
    supervisor: Supervisor
    sandbox: AnalysisSandbox

    def refresh_gauges(self) -> None: ...


log = structlog.get_logger(__name__)

# Inbox states in which mail can arrive (SmtpInbox: listening; ImapInbox: connected, idle).
READY_INBOX_STATES = frozenset(
    {"listening", "connected", "idle", "standby"}
)  # standby: another node watches the mailbox
# A relay whose transient failures have gone on this long without a success is "not ready".
RELAY_GRACE_SECONDS = 300.0
# A journal that cannot take a tiny write within this long is "not ready".
JOURNAL_TIMEOUT_SECONDS = 3.0
# A stored message still undecided after this long means the pipeline is not keeping up
# (analysis takes at most ROUTER_PARSE_TIMEOUT_SECONDS a try, three tries): "not ready".
UNDECIDED_GRACE_SECONDS = 600.0
# The daemon's event loop not turning for this long (a blocking call) is "not healthy".
LOOP_STALL_SECONDS = 5.0
_REQUEST_TIMEOUT_SECONDS = 5.0
# Connections served at once; more are answered 503 at once and closed, so a flood of idle
# connections cannot hold the endpoint's memory or keep a health check waiting.
MAX_CONNECTIONS = 64
_MAX_REQUEST_HEAD = 8192
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


@dataclass(frozen=True)
class Response:
    """What one request gets back."""

    status: int
    body: bytes
    content_type: str = "application/json"


Route = Callable[[], Awaitable[Response]]


class OpsServer:
    """The HTTP endpoint of one daemon. `start`, then `stop`.

    `relay_grace` and `checks`' bounds may be changed while it runs (tests shorten them).
    Both health routes answer from state kept in memory, within milliseconds.
    """

    def __init__(self, daemon: Operated, host: str, port: int) -> None:
        self.daemon = daemon
        self.host = host.strip("[]")  # "[::1]:9181" names an IPv6 address
        self.requested_port = port
        self.relay_grace = RELAY_GRACE_SECONDS
        self.journal_timeout = JOURNAL_TIMEOUT_SECONDS  # for the gauges of /metrics
        # The journal's checks run in a thread of their own: /readyz reads their verdicts.
        self.checks = JournalChecks(
            daemon.journal,
            timeout=JOURNAL_TIMEOUT_SECONDS,
            undecided_grace=UNDECIDED_GRACE_SECONDS,
        )
        self.routes: dict[str, Route] = {
            "/metrics": self.metrics,
            "/healthz": self.healthz,
            "/readyz": self.readyz,
        }
        self.loop_stall = LOOP_STALL_SECONDS
        self.last_beat = time.monotonic()
        self._heartbeat: asyncio.TimerHandle | None = None
        self._thread = LoopThread("router-http", log_loop_exception)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.max_connections = MAX_CONNECTIONS

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen, in a thread of its own: the endpoint answers (and says what is wrong)
        even while the daemon's event loop is stuck.

        Raises:
            OSError: the address cannot be bound; the message names the HTTP endpoint.
        """
        self._thread.start()
        try:
            self._server = await self._thread.run(
                lambda: asyncio.start_server(
                    self._handle, self.host, self.requested_port, limit=_MAX_REQUEST_HEAD
                )
            )
        except OSError as exc:
            await self._thread.stop()
            raise OSError(
                exc.errno, f"HTTP endpoint {self.host}:{self.requested_port}: {exc.strerror}"
            ) from exc
        self._beat()
        self.checks.start()
        log.info("http_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening, close open connections, end the endpoint's thread."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.checks.stop()
        server, self._server = self._server, None
        if server is None:
            return

        async def close() -> None:
            server.close()
            for writer in list(self._connections):
                writer.close()
            await server.wait_closed()

        await self._thread.run(close)
        await self._thread.stop()

    def _beat(self) -> None:
        """Runs on the daemon's loop every second: how long since shows whether it is stuck."""
        self.last_beat = time.monotonic()
        self._heartbeat = asyncio.get_running_loop().call_later(1.0, self._beat)

    # --- routes -------------------------------------------------------------------------

    async def metrics(self) -> Response:
        """Prometheus text format, with the gauges brought up to date from the journal.

        A journal that does not answer in time (locked, or its database down) leaves the
        gauges as last read: the counters still answer, and /healthz says what is wrong.
        """
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self.daemon.refresh_gauges), self.journal_timeout
            )
        except TimeoutError:
            log.warning("gauges_not_refreshed", seconds=self.journal_timeout)
        except (sqlite3.Error, OSError, JournalUnavailable) as exc:
            log.warning("gauges_not_refreshed", error=type(exc).__name__)
        body = generate_latest(self.daemon.metrics.registry)
        return Response(200, body, CONTENT_TYPE_LATEST)

    async def healthz(self) -> Response:
        """Alive: the event loop turns and no supervised loop has given up. Nothing here
        waits on the journal, the database, the relay or the mailbox: an orchestrator that
        restarts on it must not restart every node while the database is down."""
        return _verdict({"event_loop": self.loop_check(), "tasks": self.alive_check()})

    async def readyz(self) -> Response:
        """Ready to take and deliver mail: journal writable, loops running, inbox connected,
        relay reached, analysis worker started, and no stored message waiting too long for
        its decision. The journal's verdicts come from `JournalChecks`, never waited for."""
        inbox = self.daemon.inbox
        state = inbox.state if inbox is not None else "none"
        inbox_detail = {"state": state}
        if getattr(inbox, "failure", None):  # why an IMAP inbox is not connected
            inbox_detail["reason"] = inbox.failure  # type: ignore[union-attr]
        detail = getattr(inbox, "detail", None)  # a graph:// inbox: last delta, throttling
        if callable(detail):
            inbox_detail.update(detail())
        health, probe = self.daemon.relay_health, self.daemon.relay_probe
        relay = health.check(self.relay_grace)
        probe_ok = probe.ok or probe.overtaken(health.last_success)
        checks = {
            "event_loop": self.loop_check(),
            "journal": self.checks.journal_check(),
            "tasks": self.tasks_check(),
            "inbox": Check(state in READY_INBOX_STATES, inbox_detail),
            # The start-up probe (router.send.probe) fails it too until the relay works.
            "relay": Check(relay.ok and probe_ok, {**relay.detail, **probe.detail()}),
            "undecided": self.checks.undecided_check(),
            "analysis_worker": self.worker_check(),
        }
        oauth = self.daemon.oauth  # OAuth 2.0: the cause and the setting to check (router/oauth)
        if oauth.sources:
            checks["oauth"] = Check(oauth.ok, oauth.health())
        return _verdict(checks)

    def worker_check(self) -> Check:
        """OK once the analysis worker has started (warm, from a preloaded forkserver), so the
        first referral is not kept waiting for it, and unless its last start failed."""
        sandbox = self.daemon.sandbox
        if sandbox.start_error is not None:
            return Check(False, {"state": "failed to start", "error": sandbox.start_error})
        state = "started" if sandbox.booted else "starting"
        return Check(sandbox.booted, {"state": state, "replaced": sandbox.replaced})

    def loop_check(self) -> Check:
        """OK unless the daemon's event loop has not turned for `loop_stall` seconds."""
        stalled = round(max(0.0, time.monotonic() - self.last_beat - 1.0), 1)
        return Check(stalled < self.loop_stall, {"stalled_seconds": stalled})

    def alive_check(self) -> Check:
        """OK unless a supervised loop has ended for good (the supervisor restarts a failing
        loop, with backoff, for as long as the daemon runs: failing is not giving up)."""
        supervisor = self.daemon.supervisor
        ended = sorted(
            name
            for name, task in supervisor.tasks.items()
            if task.done() and not supervisor.stop_event.is_set()
        )
        return Check(not ended, {"ended": ended} if ended else {})

    def tasks_check(self) -> Check:
        """OK unless a supervised loop failed and has not finished a round since."""
        supervisor = self.daemon.supervisor
        now = supervisor.clock()
        failing = {
            name: {
                "error": health.error,
                "where": health.where,
                "restarts": health.restarts,
                "failing_for_seconds": age(health.failing_since, now),
            }
            for name, health in supervisor.failing().items()
        }
        return Check(not failing, {"failing": failing} if failing else {})

    # --- HTTP ---------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections:
            with contextlib.suppress(ConnectionError):  # the client may be gone already
                await _write(writer, _plain(503, "too many connections; try again"))
            writer.close()
            return
        self._connections.add(writer)
        try:
            response = await self._respond(reader)
            await _write(writer, response)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or never finished its request: nothing to answer
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> Response:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT_SECONDS)
        except (asyncio.LimitOverrunError, ValueError):
            return _plain(400, "request head too long")
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _plain(400, "bad request line")
        method, target = parts[0], parts[1].split("?", 1)[0]
        route = self.routes.get(target)
        if route is None:
            return _plain(404, f"not found; try {', '.join(self.routes)}")
        if method != "GET":
            return _plain(405, "only GET")
        try:
            return await route()
        except Exception as exc:  # a scrape must never take the daemon down
            log.exception("http_route_failed", path=target, error=type(exc).__name__)
            return _plain(500, "internal error; see the daemon's log")


def _verdict(checks: dict[str, Check]) -> Response:
    ok = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if ok else "failing",
        "checks": {name: {"ok": check.ok, **check.detail} for name, check in checks.items()},
    }
    return Response(200 if ok else 503, json.dumps(body, indent=2).encode() + b"\n")


def _plain(status: int, text: str) -> Response:
    return Response(status, text.encode() + b"\n", "text/plain; charset=utf-8")


async def _write(writer: asyncio.StreamWriter, response: Response) -> None:
    head = (
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n"
    )
    if response.status == 405:
        head += "Allow: GET\r\n"
    writer.write(head.encode("latin-1") + b"\r\n" + response.body)
    await writer.drain()

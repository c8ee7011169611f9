"""Serves the console with uvicorn on an event loop of its own thread (ROUTER_CONSOLE), so it
answers while the daemon's loop is busy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import uvicorn

from router.console.app import Console, build_app
from router.console.context import ConsoleContext, console_context
from router.core.loop_thread import LoopThread
from router.logs import log_loop_exception

if TYPE_CHECKING:
    from router.core.rules.model import Rules
    from router.journal.protocol import Journal
    from router.settings import Settings

log = structlog.get_logger(__name__)

SESSION_KEY_FILE = "console-session.key"
_START_SECONDS = 10.0


def session_key(state_dir: Path) -> str:
    """The key that signs session cookies: kept in the state directory (mode 0600), so a
    restart does not sign everyone out; made on first use."""
    path = state_dir / SESSION_KEY_FILE
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(key + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key


class ConsoleServer:
    """`start` serves the console in its own thread; `stop` ends it."""

    def __init__(self, context: ConsoleContext, host: str, port: int) -> None:
        app = build_app(context, session_key(context.settings.state_dir))
        self.console: Console = app.state.console  # its pages and settings
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # the router's own logging; uvicorn's access log is off
            access_log=False,
            proxy_headers=True,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=3,  # SIGTERM stops the router within 10 s
        )
        self.server = uvicorn.Server(config)
        self.host, self.requested_port = host, port
        self._thread = LoopThread("router-console", log_loop_exception)
        self._serving: asyncio.Future[None] | None = None

    @property
    def port(self) -> int:
        """The port bound (useful when 0 was asked for)."""
        servers = getattr(self.server, "servers", [])
        if servers and servers[0].sockets:
            return int(servers[0].sockets[0].getsockname()[1])
        return self.requested_port

    async def start(self) -> None:
        """Listen, in the console's thread.

        Raises:
            OSError: the address cannot be bound; the message names the console.
        """
        self._thread.start()
        loop = self._thread.loop
        assert loop is not None
        self._serving = asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self.server.serve(), loop)
        )
        for _ in range(int(_START_SECONDS / 0.01)):
            if self.server.started or self._serving.done():
                break
            await asyncio.sleep(0.01)
        if not self.server.started:
            await self._thread.stop()
            raise OSError(f"console {self.host}:{self.requested_port}: cannot listen there")
        log.info("console_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop serving and end the thread."""
        self.server.should_exit = True
        if self._serving is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, SystemExit):
                await asyncio.wait_for(asyncio.shield(self._serving), 5.0)
        await self._thread.stop()


async def start_console(
    settings: Settings,
    journal: Journal,
    *,
    rules: Callable[[], Rules],
    rules_loaded_at: Callable[[], float],
    wake: Callable[[], object],
) -> ConsoleServer:
    """Serve the console on `settings.console_bind` for a daemon (see `ConsoleContext`).

    Raises:
        OSError: the address cannot be bound.
    """
    bind = settings.console_bind
    assert bind is not None
    context = console_context(
        settings, journal, rules=rules, rules_loaded_at=rules_loaded_at, wake=wake
    )
    server = ConsoleServer(context, *bind)
    await server.start()
    return server

"""Analyse files for `route` exactly as the daemon does: in its worker, under its limits.

The daemon reads each message in a worker process with `ROUTER_PARSE_TIMEOUT_SECONDS` and a
memory bound (`router.decide.worker`); a dry run that read in-process could hang on a document the
daemon would give up on, and so disagree with it. `DryRun` uses the same sandbox: a message
that overruns gives the same `needs_review` decision, saying why.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from router.core.analysis import Analysis, unread_analysis
from router.core.routing import RoutingEngine
from router.decide import forkserver
from router.decide.worker import AnalysisFailed, AnalysisSandbox
from router.settings import Settings


class DryRun:
    """Analyses messages one by one in a sandbox worker; use as a context manager."""

    def __init__(self, settings: Settings, engine: RoutingEngine) -> None:
        self.settings = settings
        self.engine = engine
        # Workers fork from a server that has the readers imported already: a fresh worker
        # per run (and after each overrun) then starts in a fraction of a second.
        forkserver.preload()
        self.sandbox = AnalysisSandbox(timeout=settings.parse_timeout_seconds)
        self._runner = asyncio.Runner()

    def analyse(self, raw: bytes) -> Analysis:
        """The analysis of one message, or a `needs_review` one when reading it failed."""
        return self._runner.run(self._analyse(raw))

    async def _analyse(self, raw: bytes) -> Analysis:
        settings = self.settings
        try:
            return await self.sandbox.analyse(
                raw,
                self.engine,
                router_from=settings.from_address,
                envelope_recipients=(),
                max_attachments=settings.max_attachments,
                trusted_authserv_ids=tuple(settings.authserv_ids),
            )
        except AnalysisFailed as exc:
            return unread_analysis(
                raw,
                self.engine,
                str(exc),
                router_from=settings.from_address,
                trusted_authserv_ids=settings.authserv_ids,
            )

    def close(self) -> None:
        """Stop the worker and the event loop."""
        self.sandbox.close()
        self._runner.close()

    def __enter__(self) -> DryRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

"""Analyse files for `route` exactly as the daemon does: under its worker's limits.

The daemon reads each message in a worker process with `ROUTER_PARSE_TIMEOUT_SECONDS` and a
memory bound (`router.decide.worker`); a dry run that read in-process could hang on a document
the daemon would give up on, and so disagree with it. A message that overruns gives the same
`needs_review` decision, saying why. Two ways, the same limits:

- `DryRun(..., one_shot=True)`, for the `route` and `rules test` commands: each file is read
  in a child forked directly from the command (`router.decide.oneshot`), so one small file
  answers in a fraction of a second (no forkserver to start, no warm-up read). The first
  file's child imports only the reader its attachments need; before the second file the
  command imports all the readers once, so the children of a long list share them.
- `DryRun(...)`, for a long-running, many-threaded process (the console): the daemon's
  sandbox, whose worker forks from a forkserver rather than from the threaded process.
"""

from __future__ import annotations

import asyncio
import importlib
from types import TracebackType

from router.core.analysis import Analysis, unread_analysis
from router.core.routing import RoutingEngine
from router.decide import forkserver
from router.decide.bounds import AnalysisFailed
from router.settings import Settings


class DryRun:
    """Analyses messages one by one under the worker's limits; use as a context manager."""

    def __init__(
        self, settings: Settings, engine: RoutingEngine, *, one_shot: bool = False
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.one_shot = one_shot
        self._analysed = 0
        self._runner: asyncio.Runner | None = None
        if not one_shot:
            from router.decide.worker import AnalysisSandbox

            # Workers fork from a server that has the readers imported already: a fresh
            # worker per run (and after each overrun) then starts in a fraction of a second.
            forkserver.preload()
            self.sandbox = AnalysisSandbox(timeout=settings.parse_timeout_seconds)
            self._runner = asyncio.Runner()

    def analyse(self, raw: bytes) -> Analysis:
        """The analysis of one message, or a `needs_review` one when reading it failed."""
        try:
            return self._read(raw)
        except AnalysisFailed as exc:
            settings = self.settings
            return unread_analysis(
                raw,
                self.engine,
                str(exc),
                router_from=settings.from_address,
                trusted_authserv_ids=settings.authserv_ids,
            )

    def _read(self, raw: bytes) -> Analysis:
        settings = self.settings
        if self._runner is not None:
            return self._runner.run(
                self.sandbox.analyse(
                    raw,
                    self.engine,
                    router_from=settings.from_address,
                    envelope_recipients=(),
                    max_attachments=settings.max_attachments,
                    trusted_authserv_ids=tuple(settings.authserv_ids),
                )
            )
        from router.decide.oneshot import analyse_forked

        if self._analysed == 1:
            for module in forkserver.PRELOAD:  # shared by the children of the files to come
                importlib.import_module(module)
        self._analysed += 1
        return analyse_forked(
            raw,
            self.engine,
            timeout=settings.parse_timeout_seconds,
            router_from=settings.from_address,
            max_attachments=settings.max_attachments,
            trusted_authserv_ids=tuple(settings.authserv_ids),
        )

    def close(self) -> None:
        """Stop the sandbox's worker and event loop (a one-shot child is gone already)."""
        if self._runner is not None:
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

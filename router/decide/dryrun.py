"""Analyse files for `route` exactly as the daemon does: under its worker's limits.

The daemon reads each message in a worker process with `ROUTER_PARSE_TIMEOUT_SECONDS` and a
memory bound (`router.decide.worker`); a dry run that read in-process could hang on a document
the daemon would give up on, and so disagree with it. `DryRun` reads each file in a child
forked directly from the command (`router.decide.oneshot`) under the same limits: a message
that overruns gives the same `needs_review` decision, saying why, and one small file answers
in a fraction of a second (no forkserver to start, no warm-up read).

The first file's child imports only the reader its attachments need; before the second file
the command imports all the readers once, so the children of a long list share them.
"""

from __future__ import annotations

import importlib
from types import TracebackType

from router.core.analysis import Analysis, unread_analysis
from router.core.routing import RoutingEngine
from router.decide import forkserver
from router.decide.bounds import AnalysisFailed
from router.decide.oneshot import analyse_forked
from router.settings import Settings


class DryRun:
    """Analyses messages one by one, each in its own forked child; use as a context manager."""

    def __init__(self, settings: Settings, engine: RoutingEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._analysed = 0

    def analyse(self, raw: bytes) -> Analysis:
        """The analysis of one message, or a `needs_review` one when reading it failed."""
        settings = self.settings
        if self._analysed == 1:
            for module in forkserver.PRELOAD:  # shared by the children of the files to come
                importlib.import_module(module)
        self._analysed += 1
        try:
            return analyse_forked(
                raw,
                self.engine,
                timeout=settings.parse_timeout_seconds,
                router_from=settings.from_address,
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
        """Nothing to stop: each child has exited (or been killed) before `analyse` returns."""

    def __enter__(self) -> DryRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

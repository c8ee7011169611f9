"""Runs the analysis of each email in a worker process with a time limit and a memory bound.

A hostile PDF (a looping xref, a decompression bomb) can make a parser spin or swell; here it
can only stall or kill its worker, which is replaced, while the daemon's event loop carries on
serving IMAP IDLE and SMTP.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from router.analysis import Analysis, analyse
from router.routing import RoutingEngine
from router.rules.model import Rules

log = structlog.get_logger(__name__)


class AnalysisFailed(Exception):
    """The worker could not analyse a message: it timed out, ran out of memory or died."""


_ENGINE: dict[str, RoutingEngine] = {}


def _limit_memory(max_bytes: int) -> None:
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    from router.logs import configure_logging

    configure_logging("warning", "json")


def _analyse_in_worker(
    raw: bytes,
    rules: Rules,
    review_address: str,
    router_from: str,
    envelope: tuple[str, ...],
    max_attachments: int,
    trusted_authserv_ids: tuple[str, ...],
) -> Analysis:
    engine = _ENGINE.get(rules.version)
    if engine is None or engine.review_address != review_address:
        _ENGINE.clear()
        engine = _ENGINE[rules.version] = RoutingEngine(rules, review_address=review_address)
    return analyse(
        raw,
        engine,
        router_from=router_from,
        envelope_recipients=envelope,
        max_attachments=max_attachments,
        trusted_authserv_ids=trusted_authserv_ids,
    )


class AnalysisSandbox:
    """A one-process pool that is torn down and rebuilt whenever a task overruns."""

    def __init__(self, *, timeout: float, memory_bytes: int = 1536 * 1024 * 1024) -> None:
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self._pool: ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_limit_memory,
                initargs=(self.memory_bytes,),
            )
        return self._pool

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def analyse(
        self,
        raw: bytes,
        engine: RoutingEngine,
        *,
        router_from: str,
        envelope_recipients: tuple[str, ...],
        max_attachments: int,
        trusted_authserv_ids: tuple[str, ...] = (),
    ) -> Analysis:
        """Analyse one email in the worker.

        Raises:
            AnalysisFailed: on timeout, memory exhaustion or a dead worker.
        """
        loop = asyncio.get_running_loop()
        task = functools.partial(
            _analyse_in_worker,
            raw,
            engine.rules,
            engine.review_address,
            router_from,
            envelope_recipients,
            max_attachments,
            tuple(trusted_authserv_ids),
        )
        if self._pool is not None and not self._worker_alive():
            log.warning("sandbox_worker_replaced", reason="worker died while idle")
            self._discard_pool()
        try:
            future = loop.run_in_executor(self._ensure_pool(), task)
        except BrokenProcessPool:
            # The idle worker died between two messages (killed, out of memory): the pool
            # refuses new work. That is no fault of this message: replace the worker.
            log.warning("sandbox_worker_replaced", reason="worker died while idle")
            self._discard_pool()
            future = loop.run_in_executor(self._ensure_pool(), task)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            self._discard_pool()
            raise AnalysisFailed(
                f"reading the message took longer than {self.timeout:g} s"
            ) from None
        except MemoryError:
            self._discard_pool()
            raise AnalysisFailed("reading the message ran out of memory") from None
        except BrokenProcessPool:
            self._discard_pool()
            raise AnalysisFailed("the reader process died") from None

    def _worker_alive(self) -> bool:
        processes = getattr(self._pool, "_processes", None) or {}
        return all(process.is_alive() for process in processes.values())

    def worker_pids(self) -> list[int]:
        """The process ids of the live worker(s); empty before the first analysis."""
        processes = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in processes.values() if p.pid is not None and p.is_alive()]

    def close(self) -> None:
        self._discard_pool()

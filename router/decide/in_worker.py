"""What runs inside the analysis worker process (`router.decide.worker` runs the process):
its start (the memory bound, quiet logs, exit when the daemon dies), its warm-up on the
bundled sample referral, and its work on one email: the analysis, and the attachments
written as the MIME parts a forward is built from."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import select
import signal
import threading
from dataclasses import dataclass

from router.core.analysis import Analysis, analyse
from router.core.compose import Enclosures, attachments_for, enclose
from router.core.routing import RoutingEngine
from router.core.rules.model import Rules
from router.models import Outcome

_PR_SET_PDEATHSIG = 1
_WATCH_STACK = 256 * 1024
_WARM_FROM = "warm-up@router.invalid"


@dataclass(frozen=True)
class Worked:
    """What the worker returns for one email: the analysis (attachment bytes left out) and
    the parts a forward is built from."""

    analysis: Analysis
    enclosures: Enclosures


_ENGINE: dict[str, RoutingEngine] = {}


def start_worker(max_bytes: int, daemon_pid: int) -> None:
    """Worker initializer: memory bound, quiet logs, and exit when the daemon dies."""
    _die_with(daemon_pid)  # first: its thread's stack must fit under the bound below
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    from router.logs import configure_logging

    configure_logging("warning", "json")


def _die_with(daemon_pid: int) -> None:
    """Exit when `daemon_pid` ends. The worker's parent is the forkserver, which lives as long
    as any worker does, so the worker watches the daemon itself (a pidfd); the parent-death
    signal covers the forkserver being killed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        watched = os.pidfd_open(daemon_pid)
    except ProcessLookupError:
        os._exit(0)

    def watch() -> None:
        select.select([watched], [], [])
        os._exit(0)

    previous = threading.stack_size(_WATCH_STACK)
    try:
        threading.Thread(target=watch, name="daemon-watch", daemon=True).start()
    finally:
        threading.stack_size(previous)


def warm(rules: Rules | None, review_address: str) -> int:
    """A new worker's first task: read the bundled sample referral with the current rules,
    so that what the first real message would otherwise do once (the routing engine, lazily
    imported parts of the readers, compiled patterns) is done before any message waits."""
    if rules is not None:
        from router.sample import sample_email

        work_in_worker(sample_email(), rules, review_address, _WARM_FROM, (), 10, ())
    # What is alive now (the parsers' modules, the routing engine) lives as long as the
    # worker: out of the garbage collector's sight, each analysis' collections only look at
    # what it made. The young generations are collected first: a full collection would
    # take long enough for a message waiting on a replaced worker to notice.
    gc.collect(1)
    gc.freeze()
    return os.getpid()


def work_in_worker(
    raw: bytes,
    rules: Rules,
    review_address: str,
    router_from: str,
    envelope: tuple[str, ...],
    max_attachments: int,
    trusted_authserv_ids: tuple[str, ...],
) -> Worked:
    engine = _ENGINE.get(rules.version)
    if engine is None or engine.review_address != review_address:
        _ENGINE.clear()
        engine = _ENGINE[rules.version] = RoutingEngine(rules, review_address=review_address)
    analysis = analyse(
        raw,
        engine,
        router_from=router_from,
        envelope_recipients=envelope,
        max_attachments=max_attachments,
        trusted_authserv_ids=trusted_authserv_ids,
    )
    wanted = {
        index
        for decision in analysis.decisions
        if decision.outcome is not Outcome.IGNORED
        for index in attachments_for(decision, analysis.readings)
    }
    enclosures = enclose(analysis.message, raw, indexes=wanted)
    # The bytes travel back once, as parts; the analysis keeps only what deciding needs.
    light = [a.model_copy(update={"data": b""}) for a in analysis.message.attachments]
    message = analysis.message.model_copy(update={"attachments": light})
    return Worked(Analysis(message, analysis.readings, analysis.decisions), enclosures)

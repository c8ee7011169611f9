"""Analyse one email in a directly forked child, under the worker's time and memory limits.

For one-shot commands (`route`, `rules test`): the daemon's sandbox (`router.decide.worker`)
keeps a warm worker forked from a forkserver, which pays off over thousands of referrals but
costs a one-file command a second or more (a fresh interpreter importing the readers, then a
warm-up read). Here the command's own process forks: the child starts with everything the
parent has imported, imports only the reader its attachments need, sets the same memory
bound (`RLIMIT_AS`) and dies with the parent; the parent waits at most the time limit, then
kills it. A document that overruns or exhausts memory gives the same `AnalysisFailed`, with
the same wording, as in the daemon.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Sequence

from router.core.analysis import Analysis, analyse
from router.core.routing import RoutingEngine
from router.decide.bounds import WORKER_MEMORY_BYTES, AnalysisFailed

_PR_SET_PDEATHSIG = 1
_CHUNK = 1 << 16


def analyse_forked(
    raw: bytes,
    engine: RoutingEngine,
    *,
    timeout: float,
    router_from: str,
    max_attachments: int,
    trusted_authserv_ids: Sequence[str] = (),
    memory_bytes: int = WORKER_MEMORY_BYTES,
) -> Analysis:
    """The analysis of one email, read in a forked child (attachment bytes left out).

    Raises:
        AnalysisFailed: the child overran `timeout`, ran out of memory or died.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(
            write_end,
            memory_bytes,
            raw,
            engine,
            router_from,
            max_attachments,
            tuple(trusted_authserv_ids),
        )
    os.close(write_end)
    try:
        payload = _collect(read_end, pid, timeout)
    finally:
        os.close(read_end)
    # Our own child's answer, trusted as the daemon trusts its worker's (the process pool
    # unpickles those too).
    kind, result = pickle.loads(payload) if payload else ("died", None)  # noqa: S301
    if kind == "ok":
        assert isinstance(result, Analysis)
        return result
    if kind == "memory":
        raise AnalysisFailed("reading the message ran out of memory")
    if kind == "error":
        raise AnalysisFailed(f"the reader failed: {result}")
    raise AnalysisFailed("the reader process died")


def _child(
    out: int,
    memory_bytes: int,
    raw: bytes,
    engine: RoutingEngine,
    router_from: str,
    max_attachments: int,
    trusted_authserv_ids: tuple[str, ...],
) -> None:
    """Set the limits, analyse, write the pickled outcome to `out` and exit."""
    status = 0
    try:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if memory_bytes > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        from router.logs import configure_logging

        configure_logging("warning", "json")
        try:
            analysis = analyse(
                raw,
                engine,
                router_from=router_from,
                max_attachments=max_attachments,
                trusted_authserv_ids=trusted_authserv_ids,
            )
            light = [a.model_copy(update={"data": b""}) for a in analysis.message.attachments]
            message = analysis.message.model_copy(update={"attachments": light})
            outcome: tuple[str, object] = (
                "ok",
                Analysis(message, analysis.readings, analysis.decisions),
            )
        except MemoryError:
            outcome = ("memory", None)
        except Exception as exc:  # reported to the parent by class only, never content
            outcome = ("error", type(exc).__name__)
        data = pickle.dumps(outcome)
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _collect(read_end: int, pid: int, timeout: float) -> bytes:
    """Everything the child writes before it exits; kills it when `timeout` passes."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([read_end], [], [], max(left, 0))
        if not readable:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AnalysisFailed(f"reading the message took longer than {timeout:g} s")
        chunk = os.read(read_end, _CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    return b"".join(chunks)

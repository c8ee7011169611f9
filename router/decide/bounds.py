"""What both ways of reading a message in a child process share: the memory bound and the
failure they report. Kept apart from `router.decide.worker` so that a one-shot command
(`router.decide.oneshot`) does not import the process pool it does not use."""

from __future__ import annotations

# Address space a reader process may use (RLIMIT_AS).
WORKER_MEMORY_BYTES = 1536 * 1024 * 1024


class AnalysisFailed(Exception):
    """The worker could not analyse a message: it timed out, ran out of memory or died."""


class WorkerUnavailable(Exception):
    """No worker could be started to read messages (a replacement failed to start too): the
    router cannot decide anything now, and no message is to blame for it."""

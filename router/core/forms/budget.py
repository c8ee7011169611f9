"""A hard bound on the processor time one attachment's reading may take.

The readers check soft limits between pages (`limits.PDF_TEXT_SECONDS`), but a single call
into pypdf (an object stream of 65,000 objects, one page of megabytes of drawing operators)
can run for many seconds. `cpu_budget` arms the process's profiling timer (`ITIMER_PROF`,
processor time, so it does not disturb timers on the wall clock such as pytest-timeout's
SIGALRM) and raises `ReadingOverrun` from whatever the reader is doing when the budget is
spent. `ReadingOverrun` is a `BaseException`, so the `except Exception` blocks of the
parsers cannot swallow it; `router.core.forms.read` turns it into an UNREADABLE reading.

Only the main thread can take signals: elsewhere (and when a budget is already armed) the
budget does nothing, and the worker's own time limit still holds.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class ReadingOverrun(BaseException):
    """The attachment's reading used up its processor-time budget."""


_armed = False
# After the budget is spent the timer fires again at this interval of processor time: an
# exception raised where Python ignores exceptions (a `__del__`, a garbage-collector
# callback) is lost, and the next one lands in the reader.
_REPEAT_SECONDS = 0.05


def _overrun(signum: int, frame: FrameType | None) -> None:
    if _armed:  # a signal delivered as the budget was being put away is ignored
        raise ReadingOverrun


@contextmanager
def cpu_budget(seconds: float) -> Iterator[None]:
    """Raise `ReadingOverrun` inside the block once it has used `seconds` of processor time."""
    global _armed
    if _armed or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGPROF, _overrun)
    _armed = True
    signal.setitimer(signal.ITIMER_PROF, seconds, _REPEAT_SECONDS)
    try:
        yield
    finally:
        try:
            _armed = False
            signal.setitimer(signal.ITIMER_PROF, 0)
        finally:
            signal.signal(signal.SIGPROF, previous)

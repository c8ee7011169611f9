"""Group commit: what several threads want committed at once goes in one transaction.

Each thread queues its item; the first to find no commit running becomes the leader and
commits everything queued so far in one go, then hands the lead to the first thread that
queued meanwhile (so no caller waits for batches after its own). The others wait on their
own event. Every caller returns only after the transaction holding its item committed, and
a failed transaction raises its error in every caller whose item it held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Waiter(Generic[Item, Result]):
    item: Item
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to commit the next batch, not with a result
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Batches concurrent callers' items into one commit each time (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Waiter[Item, Result]] = []
        self._committing = False
        # Counts for tests and measurements, with a condition notified when they change.
        self.changed = threading.Condition(self._lock)
        self.submitted = 0  # items handed to `submit`
        self.commits = 0  # transactions run
        self.items = 0  # items they held

    def submit(self, item: Item, commit: Callable[[Sequence[Item]], Sequence[Result]]) -> Result:
        """Have `item` committed, with whatever else is queued, by `commit`.

        Args:
            item: what this caller wants committed.
            commit: commits a batch in one transaction; returns one result per item, in order.

        Returns:
            This item's result.

        Raises:
            What `commit` raised for the batch that held this item.
        """
        waiter: _Waiter[Item, Result] = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            leading = not self._committing
            self._committing = True
            self.submitted += 1
            self.changed.notify_all()
        if not leading:
            waiter.done.wait()
            if waiter.lead:  # the previous leader handed over: commit what is queued now
                waiter.done.clear()
                leading = True
        if leading:
            self._lead(commit)
            waiter.done.wait()  # this item was in the batch just committed
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]  # set with done, when no error

    def _lead(self, commit: Callable[[Sequence[Item]], Sequence[Result]]) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            results = commit([waiter.item for waiter in batch])
            if len(results) != len(batch):
                raise RuntimeError("a group commit must give one result per item")
        except BaseException as error:
            for waiter in batch:
                waiter.error = error
        else:
            for waiter, result in zip(batch, results, strict=True):
                waiter.result = result
        with self._lock:
            self.commits += 1
            self.items += len(batch)
            self.changed.notify_all()
            if self._queue:
                successor = self._queue[0]
                successor.lead = True
                successor.done.set()
            else:
                self._committing = False
        for waiter in batch:
            waiter.done.set()

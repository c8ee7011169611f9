"""One owner for a local journal: a second `serve` on a state directory in use refuses to start."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from router.journal.files import FILE_MODE

LOCK_FILE = "serve.lock"


class StateDirInUse(Exception):
    """Another live process holds the state directory (its PID is in the message)."""


class OwnerLock:
    """An exclusive `flock` on `<state dir>/serve.lock`, with the holder's PID written in it.

    The kernel drops the lock when the holder exits however it exits (SIGKILL included), so
    a stale file never blocks a restart. Admin commands do not take it: they work beside
    the running daemon.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or say who has it.

        Raises:
            StateDirInUse: another process holds it.
            OSError: the state directory cannot be written.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateDirInUse(
                f"the state directory {self.path.parent} is in use by process {holder}"
                " (another `referral-router serve`); stop it first or use another"
                " ROUTER_STATE_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Let go (the file stays; its PID is only read while the lock is held)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

"""The Maildir relay: outgoing mail written as files, for a try-out without a mail server."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from router.send.relay import TransientDeliveryError

log = structlog.get_logger(__name__)


class MaildirRelay:
    """Writes each message as one file into a Maildir's `new/`. See `Relay`.

    The bytes are written unchanged (they already carry To and Cc): no envelope
    headers are added, so what a reader finds is exactly what would have been sent.
    """

    def __init__(self, path: Path) -> None:
        """Create `path/{cur,new,tmp}` (mode 0700) when absent.

        Raises:
            OSError: the directory cannot be created.
        """
        self._path = path
        self._ensure_dirs()

    def describe(self) -> str:
        """See `Relay`."""
        return f"maildir:{self._path}"

    async def close(self) -> None:
        """See `Relay`. Nothing to release."""

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str | None:
        """See `Relay`."""
        try:
            name = await asyncio.to_thread(self._write, message)
        except OSError as exc:
            raise TransientDeliveryError(None, f"cannot write to {self._path}: {exc}") from exc
        log.debug("relay.sent", relay=self.describe(), file=name, recipients=len(recipients))
        return f"written to the Maildir as {name}"

    def _ensure_dirs(self) -> None:
        # The folder itself private too when we create it (mkdir's parents get 0755).
        self._path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in ("cur", "new", "tmp"):
            (self._path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def _write(self, message: bytes) -> str:
        """Write to tmp/, fsync, rename into new/, fsync new/. Returns the file name."""
        self._ensure_dirs()
        name = _unique_name(len(message))
        tmp_path = self._path / "tmp" / name
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(message)
                file.flush()
                os.fsync(file.fileno())
            os.rename(tmp_path, self._path / "new" / name)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self._path / "new", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return name


def _unique_name(size: int) -> str:
    """A Maildir file name: `seconds.MmicrosPpidRrandom.host,S=size`."""
    now = time.time()
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    micros = int((now % 1) * 1_000_000)
    return f"{int(now)}.M{micros}P{os.getpid()}R{secrets.token_hex(8)}.{host},S={size}"

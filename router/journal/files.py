"""Durable file writes: temporary file, fsync, rename, fsync the directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_dir(path: Path) -> Path:
    """Create `path` (and parents) private to the service user; fix the mode if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Write `data` to `path` so that after return it survives a crash or power cut.

    The bytes go to a temporary file in `tmp_dir` (default: the same folder), are fsynced,
    renamed into place atomically, and the folder is fsynced so the rename itself is durable.

    Raises:
        OSError: when the disk refuses (full, read-only, permissions).
    """
    folder = tmp_dir or path.parent
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if folder != path.parent:
        fsync_dir(folder)

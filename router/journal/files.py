"""Durable file writes: temporary file, fsync, rename, fsync the directory (once per batch)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
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
    write_all_durably([(path, data)], tmp_dir=tmp_dir)


def write_all_durably(
    files: Sequence[tuple[Path, bytes]], *, tmp_dir: Path | None = None, sync_folders: bool = True
) -> None:
    """Write several files so that after return all of them survive a power cut, with one
    fsync per file and one per destination folder (not one per file).

    Every temporary file is written and fdatasynced (for a new file that includes its size),
    then each is renamed into place, then each destination folder is fsynced once, which
    makes all the renames into it durable. The temporary folder is not fsynced: a rename
    out of it is made durable by the destination's fsync (one filesystem journal
    transaction on ext4/xfs); at worst a power cut leaves a stale temporary file, which the
    orphan sweep deletes (`orphans.remove_orphans`).

    With `sync_folders=False` the folders are not fsynced: the caller does it (`fsync_dir`)
    once for several calls, before anything depends on the names.

    Raises:
        OSError: when the disk refuses; no temporary file is left, and the files already
            renamed into place are the caller's to remove (see `Blobs.unstage`).
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            folder = tmp_dir or path.parent
            tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            staged.append((tmp, path))
            _write_synced(tmp, data)
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    if sync_folders:
        for folder in dict.fromkeys(path.parent for _, path in staged):
            fsync_dir(folder)


def _write_synced(tmp: Path, data: bytes) -> None:
    """Create `tmp` private and write `data` to it, on disk when this returns."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fdatasync(fd)
    finally:
        os.close(fd)

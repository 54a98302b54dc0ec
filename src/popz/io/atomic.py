"""Atomic file writes: a file appears complete under its name or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is synced and renamed to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    The temporary name starts with a dot and ends in ``.tmp`` so readers never
    mistake it for output; temporaries of ``path`` left by a killed process are
    removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
    finally:
        if tmp.exists():
            tmp.unlink()


def _remove_stale(path: Path) -> None:
    """Remove temporary files of ``path`` left by processes that no longer run (a killed run's debris)."""
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{prefix}*.tmp*"):  # also helpers' names built on the temporary one (x.tmp.hdf5)
        try:
            pid = int(stale.name[len(prefix) :].split(".tmp", 1)[0])
        except ValueError:
            continue
        if not _running(pid):
            stale.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True

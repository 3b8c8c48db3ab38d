"""Claiming a run directory for writing: one writer at a time (a lock), and a replacement built beside the old run.

* :class:`RunLock`: an exclusive ``fcntl.flock`` on ``.<name>.lock`` next to the run directory, held while a
  process trains into it; a second writer gets a one-line ``BlockingIOError``. The lock file is removed on release.
* :class:`RunPlacement`: where a new run is written. Replacing an existing run (``force``), the new run is built in
  a hidden sibling ``.<name>.new-XXXX`` and swapped in by :meth:`RunPlacement.commit` (after its first update and
  a saved model); until then the old run is untouched, and a failure deletes only the sibling. Siblings and
  temporary files left by a killed process are cleaned the next time the run is claimed.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from mmrl.atomic import temporary_dir
from mmrl.training.run_dir import (
    CHECKPOINTS_DIR,
    clean_temporary_files,
    is_leftover,
    is_run_dir,
    prepare_run_dir,
    write_run_marker,
)

__all__ = ["RunLock", "RunPlacement"]


class RunLock:
    """Exclusive lock on the run directory ``run_path`` (its parent is created if missing).

    Raises:
        BlockingIOError: From :meth:`acquire` when another process holds the lock (one line, with its pid).
    """

    def __init__(self, run_path: Path) -> None:
        self.run_path = Path(run_path)
        self.path = self.run_path.parent / f".{self.run_path.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (non-blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise BlockingIOError(
                    f"run directory {self.run_path} is being written by another mmrl process (pid {holder}); wait "
                    "for it to finish, or choose another --run-dir"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the holder released and removed the file between our open and flock: retry
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file and release the lock (no-op if not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def recover_siblings(run_path: Path) -> None:
    """Clean what a killed process left around ``run_path`` (call it holding the lock): an old run moved aside
    but not yet replaced is moved back; unfinished replacements and temporary files are deleted."""
    parent = run_path.parent
    if not parent.is_dir():
        return
    for entry in parent.glob(f".{glob.escape(run_path.name)}.replaced-*"):
        moved = entry / run_path.name
        if not run_path.exists() and moved.is_dir():
            os.replace(moved, run_path)
        shutil.rmtree(entry, ignore_errors=True)
    for entry in parent.glob(f".{glob.escape(run_path.name)}.new-*"):
        shutil.rmtree(entry, ignore_errors=True)
    if run_path.is_dir() and is_run_dir(run_path):
        clean_temporary_files(run_path)


class RunPlacement:
    """Where a new run is written (call with the :class:`RunLock` held, after the settings are validated).

    Args:
        final: The run directory asked for.
        force: Replace an existing run there.
    """

    def __init__(self, final: Path, force: bool) -> None:
        self.final = Path(final)
        self.staging: Path | None = None
        self.committed = False
        self.on_commit: list[Callable[[Path], None]] = []
        if force and self.final.is_dir() and not is_leftover(self.final) and is_run_dir(self.final):
            self.staging = temporary_dir(self.final.parent, f".{self.final.name}.new-", "")
            (self.staging / CHECKPOINTS_DIR).mkdir()
            write_run_marker(self.staging)
        else:
            prepare_run_dir(self.final, force=force)

    @property
    def path(self) -> Path:
        """The folder files are written to now: the staging sibling until :meth:`commit`, then the run directory."""
        return self.staging if self.staging is not None and not self.committed else self.final

    @property
    def replacing(self) -> bool:
        """Whether an old run waits to be replaced by :meth:`commit`."""
        return self.staging is not None and not self.committed

    def commit(self) -> None:
        """Swap the new run in for the old one (no-op when nothing is staged or already committed)."""
        if not self.replacing:
            return
        assert self.staging is not None
        trash = temporary_dir(self.final.parent, f".{self.final.name}.replaced-", "")
        os.replace(self.final, trash / self.final.name)
        os.replace(self.staging, self.final)
        self.committed = True
        shutil.rmtree(trash, ignore_errors=True)
        for listener in self.on_commit:
            listener(self.final)

    def abandon(self) -> None:
        """Delete the staged run if it was never committed (the old run stays as it was)."""
        if self.replacing:
            assert self.staging is not None
            shutil.rmtree(self.staging, ignore_errors=True)

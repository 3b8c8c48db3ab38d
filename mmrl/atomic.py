"""Atomic file writes: every file mmrl writes goes to a temporary name in the same folder, is flushed to disk,
then moved into place with :func:`os.replace`. A crash leaves either the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fresh_name(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}{secrets.token_hex(6)}{suffix}"


def temporary_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty file with a fresh name in ``folder``, mode ``0o666`` less the umask (as ``open()`` gives;
    ``tempfile.mkstemp`` would give ``0o600``)."""
    while True:
        path = _fresh_name(folder, prefix, suffix)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return path


def temporary_dir(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty directory with a fresh name in ``folder``, mode ``0o777`` less the umask (as ``mkdir``
    gives; ``tempfile.mkdtemp`` would give ``0o700``)."""
    while True:
        path = _fresh_name(folder, prefix, suffix)
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``, on error delete it.

    The file written gets the mode of the file it replaces, or for a new file ``0o666`` less the process umask (as
    with a plain ``open()``), so run directories stay readable to the group where the umask allows it.

    Args:
        path: Final destination.
        suffix: Suffix of the temporary file (some writers, e.g. ``np.savez`` or SB3's ``save``, append or
            require a specific extension). Defaults to the destination's own suffix.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(final.parent, f".{final.name}.", (final.suffix if suffix is None else suffix) + ".tmp")
    umask_mode = tmp.stat().st_mode & 0o7777  # 0o666 less the umask
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            # a replaced file keeps its mode; a new one gets the umask's, like open(), even where the writer
            # replaced the temporary file by one of its own (safetensors writes 0o600 files)
            mode = final.stat().st_mode & 0o7777 if final.is_file() else umask_mode
            if tmp.stat().st_mode & 0o7777 != mode:
                os.chmod(tmp, mode)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON to ``path``."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable: {obj!r}")

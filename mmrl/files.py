"""Reading a small text file named by a user or a file, bounded: regular files only, size checked before reading.

``/dev/zero``, FIFOs, sockets and directories are refused at once (a FIFO is opened non-blocking, so a missing
writer cannot hang the reader), and the file is read only up to the cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["read_bytes_capped", "read_text_capped"]


def read_bytes_capped(
    path: str | Path, max_bytes: int, what: str, variable: str, error: type[Exception] = ValueError
) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them.

    Args:
        path: The file.
        max_bytes: The size limit.
        what: What the file is, for messages (``"level file"``).
        variable: The environment variable that raises the limit, named in the message.
        error: Exception class raised for a non-regular or oversized file.

    Raises:
        FileNotFoundError: No such file.
        IsADirectoryError: ``path`` is a directory.
        error: ``path`` is not a regular file, or is larger than ``max_bytes``.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: is a directory, expected a {what}") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"{path}: is a directory, expected a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file (a device, FIFO or socket); a {what} must be a plain file")
        if info.st_size > max_bytes:
            raise error(
                f"{path}: {what} of {info.st_size:,} bytes is over the limit of {max_bytes:,}; set {variable} to "
                "allow more"
            )
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew while being read
        raise error(f"{path}: {what} is over the limit of {max_bytes:,} bytes; set {variable} to allow more")
    return data


def read_text_capped(
    path: str | Path, max_bytes: int, what: str, variable: str, error: type[Exception] = ValueError
) -> str:
    """:func:`read_bytes_capped` decoded as UTF-8 (the error for other encodings names no content)."""
    data = read_bytes_capped(path, max_bytes, what, variable, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None

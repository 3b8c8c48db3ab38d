"""Test hygiene shared by every test module."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _python_default_sigint() -> Iterator[None]:
    """Every test starts with Python's own Ctrl-C handler.

    mmrl leaves a process that ignores SIGINT ignoring it (``mmrl/training/interrupts.py``); a library used by an
    earlier test in the same xdist worker (Ray's in-process start) can leave SIGINT ignored, which would make the
    Ctrl-C tests depend on which tests ran before them.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield

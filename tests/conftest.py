"""Test hygiene shared by every test module."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True, scope="session")
def _sb3_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """SB3 models that tests train directly log under pytest's temporary tree.

    Without a ``tensorboard_log``, SB3's ``learn`` creates an empty ``SB3-<time>`` folder in the system temporary
    directory on every call (``mmrl train`` sets its own logger and creates none); with ``SB3_LOGDIR`` set they
    share one folder that pytest cleans up.
    """
    previous = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3_logs"))
    yield
    if previous is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = previous

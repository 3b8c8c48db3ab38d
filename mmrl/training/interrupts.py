"""Ctrl-C during training: stop cleanly after the current step, and never in the middle of writing a file.

* :class:`GracefulInterrupt` (around ``model.learn``): the first SIGINT asks training to end after the current step,
  the second raises ``KeyboardInterrupt`` at once.
* :func:`sigint_deferred` (around checkpoint and best-model writes): signals that arrive during the write are
  handed to the handler once the files are complete.
* :func:`sigint_ignored` (around the final save): the signal is ignored.

All three act in the main thread only (Python delivers signals there) and leave a process that ignores SIGINT
ignoring it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["GracefulInterrupt", "sigint_deferred", "sigint_ignored"]


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while the final model is written (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold the Ctrl-Cs that arrive while files are written; hand them to the SIGINT handler once they are complete.

    A ``KeyboardInterrupt`` raised in the middle of ``torch.save`` leaves its zip writer inconsistent, and the
    writer's cleanup then raises ``RuntimeError`` instead: the interrupt would be lost and the run would crash.
    Main thread only; inside :func:`sigint_ignored` the signal stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield
        return
    received: list[Any] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    for frame in received:  # replayed in order: GracefulInterrupt counts them, Python's default handler raises
        if callable(previous):
            previous(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt


class GracefulInterrupt:
    """Ctrl-C during training: the first one ends training after the current step, the second one at once.

    Used as a context manager around ``model.learn`` (main thread only; a process that ignores SIGINT keeps
    ignoring it). The first SIGINT only sets :attr:`requested`; :class:`~mmrl.training.callbacks.PeriodicCallback`
    asks after every step and ends training there, first completing the step as SB3 would have
    (:func:`~mmrl.training.callbacks.complete_interrupted_step`: the model's last observation, DQN's replay buffer),
    so the env, the model and the step count agree when the final model and checkpoint are written. A second
    SIGINT raises ``KeyboardInterrupt`` (checkpoint writes hold it until they are complete, see
    :func:`sigint_deferred`).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving (Ctrl-C again to stop at once)", file=sys.stderr)

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

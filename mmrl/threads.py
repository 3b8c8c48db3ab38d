"""How many CPU threads torch uses while mmrl trains, evaluates and pre-trains.

mmrl's networks are small (tens of thousands to a few million multiply-adds per observation) and run on batches
of 16-256 observations. On such work a second torch thread saves little, and when other processes share the cores
(a laptop, a CI runner, two seeds side by side) torch's default of one thread per core oversubscribes them: on 2
cores with two other CPU-bound processes, PPO ran at 80-182 steps/s with 2 threads against about 1,700 with one.
So mmrl's policy is **one torch thread per process unless you ask for more**:

* ``mmrl train`` / :func:`mmrl.train`: the ``torch_threads`` config key (presets, ``--set torch_threads=N``);
  unset means :data:`DEFAULT_TORCH_THREADS`, and ``0`` leaves the process's count (torch's default) as it is;
* :func:`mmrl.evaluate`, ``mmrl pretrain`` and ``mmrl demo`` use the same default.

The count is set only while mmrl's work runs and restored afterwards, so calling mmrl never changes the threads
of the rest of your program. For your own SB3 code, call ``torch.set_num_threads(1)`` yourself (README does).

Example::

    from mmrl.threads import torch_threads

    with torch_threads(4):  # a large network on an otherwise idle 8-core machine
        model.learn(100_000)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

__all__ = ["DEFAULT_TORCH_THREADS", "default_threads", "resolve_threads", "torch_threads"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

DEFAULT_TORCH_THREADS = 1
"""Torch threads per mmrl process when nothing else is asked for."""


def resolve_threads(count: int | None) -> int | None:
    """The thread count to set for a requested ``count``: None means the default, 0 means "leave it" (None)."""
    if count is None:
        return DEFAULT_TORCH_THREADS
    return count or None


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Runs the block with ``torch.set_num_threads(count)`` and restores the previous count.

    Args:
        count: Threads to use; None or 0 leaves the count unchanged (use :func:`resolve_threads` first to apply
            mmrl's default).
    """
    if not count:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    if previous == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def default_threads(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorates a public entry point (evaluation, pre-training) to run on :data:`DEFAULT_TORCH_THREADS` threads."""

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with torch_threads(DEFAULT_TORCH_THREADS):
            return function(*args, **kwargs)

    return wrapper

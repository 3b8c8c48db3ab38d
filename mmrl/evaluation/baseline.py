"""The reference point of an evaluation: the uniformly random policy on the same seeds (the paired difference
between two evaluations of the same episodes is in :mod:`mmrl.evaluation.stats`).

Every number mmrl prints about a policy comes with the random policy's figure on the same seeds, so "success 45 %"
can be read at once: on ``mmrl/Level-Corridor-v0`` a random walk already succeeds 45 % of the time.

Example::

    from mmrl.evaluation.baseline import random_baseline

    summary = random_baseline(venv, episodes=100, seed=1_000_000)  # {"success_rate": ..., "mean_return": ...}
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from mmrl.evaluation.runner import run_episodes
from mmrl.evaluation.stats import paired_difference

__all__ = ["RandomPolicy", "paired_difference", "random_baseline"]


class RandomPolicy:
    """Uniformly random actions with SB3's ``predict`` interface, seeded for reproducible baselines.

    Args:
        action_space: The (single-env) action space to sample from.
        seed: Seed of the policy's own generator (the episodes are seeded by the runner).
    """

    def __init__(self, action_space: Any, seed: int = 0) -> None:
        self.action_space = copy.deepcopy(action_space)  # its own generator: the env's space is left as it was
        self.action_space.seed(seed)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """One random action per env of the batch (``deterministic`` is ignored: the policy is random)."""
        first = next(iter(observation.values())) if isinstance(observation, dict) else observation
        return np.array([self.action_space.sample() for _ in range(len(first))]), None


def random_baseline(venv: Any, episodes: int, seed: int) -> dict[str, Any]:
    """The random policy's summary on ``episodes`` episodes of ``venv`` seeded ``seed, seed + 1, ...`` (the
    seeding rule of :func:`~mmrl.evaluation.runner.run_episodes`, so the episodes are the evaluated policy's).

    Returns:
        ``{"success_rate", "mean_return", "episodes", "seed", "deterministic": False}`` (``success_rate`` None
        when the env reports no ``is_success``).
    """
    results = run_episodes(RandomPolicy(venv.action_space, seed), venv, episodes, seed, deterministic=True)
    summary = results.summary()
    return {
        "success_rate": summary["success_rate"],
        "mean_return": summary["mean_return"],
        "episodes": int(episodes),
        "seed": int(seed),
        "deterministic": False,
    }

"""The episode runner: plays a policy on a VecEnv for a number of episodes; used by training's periodic evaluation,
``mmrl evaluate``, videos and the benchmark scripts.

Seeding rule: episode ``i`` is seeded ``seed + i``, whatever the number of parallel envs. The envs run in batches
of ``venv.num_envs`` episodes (batch ``b`` reseeds the envs with ``seed + b * num_envs`` and resets them); an env
whose episode is over keeps stepping until its batch ends, but its later episodes are not counted. The policy's own
sampling (global and model RNGs) is seeded with ``seed`` only when ``deterministic`` is False, so a greedy
evaluation never touches the caller's random state (training is not perturbed by its periodic evaluations).

Recurrent policies (their ``predict`` returns a state) get their state back at every step, and
``episode_start`` marks the envs that were just reset; the state starts empty at every batch::

    results = run_episodes(model, venv, episodes=20, seed=1_000_000)
    results.summary()   # {"mean_return", "std_return", "success_rate", "episodes", "mean_length"}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.checks import check_int

__all__ = ["MISSION_KEY", "EpisodeResults", "MissionTable", "run_episodes", "seed_policy"]

#: Key of the instruction tokens in the observation.
MISSION_KEY = "mission"
_SHUFFLE_TRIES = 16


@dataclass
class EpisodeResults:
    """Per-episode results of :func:`run_episodes`, in episode order."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[bool | None] = field(default_factory=list)
    """``info["is_success"]`` at the episode's last step, None where the env reports none."""
    missions: list[str] = field(default_factory=list)
    """The true instruction of each episode (``""`` where the env reports none)."""
    shown_missions: list[str] | None = None
    """The instruction each episode was shown instead, with a :class:`MissionTable` (else None)."""

    def summary(self) -> dict[str, Any]:
        """``{"mean_return", "std_return", "success_rate", "episodes", "mean_length"}`` (``success_rate`` is None
        when no episode reports ``is_success``)."""
        known = [float(s) for s in self.successes if s is not None]
        return {
            "mean_return": float(np.mean(self.returns)),
            "std_return": float(np.std(self.returns)),
            "success_rate": float(np.mean(known)) if known else None,
            "episodes": len(self.returns),
            "mean_length": float(np.mean(self.lengths)),
        }


class MissionTable:
    """True instruction (text and tokens) of the episode seeded ``s``, and the instruction shown instead of it when
    missions are shuffled: that of the next seed ``s + 1, s + 2, ...`` whose text differs (``s + 1`` if none does
    within a few tries). Independent of the number of parallel environments.

    Args:
        env: A single env of the evaluated kind (reset with each seed asked for; closed by the caller).
        key: Observation key of the instruction tokens.
    """

    def __init__(self, env: gym.Env, key: str = MISSION_KEY) -> None:
        if not isinstance(env.observation_space, spaces.Dict) or key not in env.observation_space.spaces:
            raise ValueError(
                f"shuffle_missions needs a Dict observation with a {key!r} key, got {env.observation_space}"
            )
        self.env = env
        self.key = key
        self._cache: dict[int, tuple[str, np.ndarray]] = {}

    def true(self, seed: int) -> tuple[str, np.ndarray]:
        """Text and tokens of the instruction of the episode seeded ``seed``."""
        if seed not in self._cache:
            observation, info = self.env.reset(seed=seed)
            self._cache[seed] = (str(info.get("mission", "")), np.array(observation[self.key], copy=True))
        return self._cache[seed]

    def shown(self, seed: int) -> tuple[str, np.ndarray]:
        """Text and tokens shown to the episode seeded ``seed`` when missions are shuffled."""
        text = self.true(seed)[0]
        for offset in range(1, _SHUFFLE_TRIES + 1):
            candidate = self.true(seed + offset)
            if candidate[0] != text:
                return candidate
        return self.true(seed + 1)


def seed_policy(model: Any, seed: int) -> None:
    """Seed the global RNGs (Python, NumPy, torch) and the model's own generators, for sampled actions."""
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(seed)
    if hasattr(model, "set_random_seed"):
        model.set_random_seed(seed)


def run_episodes(
    model: Any,
    venv: Any,
    episodes: int,
    seed: int,
    deterministic: bool = True,
    missions: MissionTable | None = None,
    on_batch_start: Callable[[int], None] | None = None,
) -> EpisodeResults:
    """Run ``episodes`` episodes of ``model`` on ``venv`` (seeding rule in the module docstring).

    Args:
        model: Anything with SB3's ``predict(observation, state=None, episode_start=None, deterministic=True)``.
        venv: An SB3-style VecEnv (``seed``, ``reset``, ``step``, ``num_envs``), already wrapped as the model needs.
        episodes: Number of episodes (>= 1).
        seed: Seed of episode 0.
        deterministic: Greedy actions (True) or sampled ones (then the policy is seeded with ``seed``).
        missions: Show each episode the instruction of another one (:class:`MissionTable`); success is still
            judged on the true instruction.
        on_batch_start: Called with the first episode index of each batch, after its reset.

    Returns:
        The :class:`EpisodeResults`; memory grows with the episodes run, nothing is allocated up front.
    """
    episodes = check_int("episodes", episodes, 1)
    if not deterministic:
        seed_policy(model, seed)
    n_envs = int(venv.num_envs)
    results = EpisodeResults(shown_missions=[] if missions is not None else None)
    for start in range(0, episodes, n_envs):
        count = min(n_envs, episodes - start)
        venv.seed(seed + start)
        observations = venv.reset()
        if on_batch_start is not None:
            on_batch_start(start)
        reset_infos = getattr(venv.unwrapped, "reset_infos", None) or [{} for _ in range(n_envs)]
        batch_missions = [str(reset_infos[i].get("mission", "")) for i in range(count)]
        shown_tokens = None
        if missions is not None:
            pairs = [missions.shown(seed + start + i) for i in range(n_envs)]
            shown_tokens = np.stack([tokens for _, tokens in pairs])
            batch_missions = [missions.true(seed + start + i)[0] for i in range(count)]
            assert results.shown_missions is not None
            results.shown_missions.extend(pairs[i][0] for i in range(count))
        returns = np.zeros(count)
        lengths = np.zeros(count, dtype=np.int64)
        successes: list[bool | None] = [None] * count
        running = np.zeros(n_envs, dtype=bool)
        running[:count] = True
        state: Any = None
        episode_starts = np.ones(n_envs, dtype=bool)
        while running.any():
            if shown_tokens is not None:
                observations = dict(observations)
                observations[MISSION_KEY] = shown_tokens.astype(observations[MISSION_KEY].dtype)
            if state is None:
                actions, state = model.predict(observations, deterministic=deterministic)
            else:
                actions, state = model.predict(
                    observations, state=state, episode_start=episode_starts, deterministic=deterministic
                )
            observations, rewards, dones, infos = venv.step(np.asarray(actions))
            episode_starts = np.asarray(dones, dtype=bool)
            for i in np.flatnonzero(running):
                returns[i] += float(rewards[i])
                lengths[i] += 1
                if dones[i]:
                    running[i] = False
                    success = infos[i].get("is_success")
                    successes[i] = None if success is None else bool(success)
        results.returns.extend(float(r) for r in returns)
        results.lengths.extend(int(n) for n in lengths)
        results.successes.extend(successes)
        results.missions.extend(batch_missions)
    return results

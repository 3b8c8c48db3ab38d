"""Gymnasium ``VectorEnv`` of mmrl's environments (``gymnasium.make_vec("mmrl/...", num_envs=N)``).

Auto-reset happens on the next step (Gymnasium's default). Seeded with ``seed``, world ``i`` reproduces a single
environment reset with ``seed + i``, episode for episode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mmrl.envs.batch_helpers import batch_like, frames
from mmrl.envs.fixed_level import FixedLevelEnv
from mmrl.envs.goto import GoToEnv
from mmrl.envs.grid_env import GridEnv
from mmrl.envs.pickup import OpenEnv, PickUpEnv
from mmrl.envs.registration import resolve_max_steps
from mmrl.envs.sequence import SequenceEnv
from mmrl.envs.visual_query import VisualQueryEnv


class GridVectorEnv(VectorEnv):
    """Gymnasium ``VectorEnv`` over ``num_envs`` worlds (next-step auto-reset, Gymnasium's default).

    Args:
        env: A single :class:`~mmrl.envs.grid_env.GridEnv` whose task and observation options are copied.
        num_envs: Number of worlds.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, env: GridEnv, num_envs: int) -> None:
        self.prototype = env
        self.batch = batch_like(env, num_envs)
        self.num_envs = num_envs
        self.single_observation_space = self.batch.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = env.render_mode
        self._autoreset_N = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if seed is not None:
            if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
                seeds: list[int | None] = [int(seed) + i for i in range(self.num_envs)]
            elif isinstance(seed, (list, tuple, np.ndarray)):
                seeds = [None if s is None else int(s) for s in seed]
            else:
                raise TypeError(
                    f"seed must be None, an int (world i gets seed + i) or a list of {self.num_envs} ints, "
                    f"got {type(seed).__name__}: {seed!r}"
                )
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds (one per world), got {len(seeds)}: {seed!r}")
            for i, world_seed in enumerate(seeds):
                if world_seed is not None:
                    self.batch.seed_world(i, world_seed)
        self.batch.reset_worlds(range(self.num_envs))
        self._autoreset_N[:] = False
        return self.batch.observe(), self._info()

    def step(self, actions):
        actions_N = self.batch.validate_actions(actions)
        reset_indices = np.flatnonzero(self._autoreset_N)
        stepping = ~self._autoreset_N
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        success = np.zeros(self.num_envs, dtype=bool)
        # worlds that finished last step are reset instead of stepped (their action is ignored)
        snapshot = self.batch.world.to_arrays() if len(reset_indices) else None
        result = self.batch.step(actions_N)
        if snapshot is not None:
            for name, array in snapshot.items():
                getattr(self.batch.world, name)[reset_indices] = array[reset_indices]
            self.batch.reset_worlds(reset_indices)
        reward[stepping] = result.reward_N[stepping]
        terminated[stepping] = result.terminated_N[stepping]
        truncated[stepping] = result.truncated_N[stepping]
        success[stepping] = result.success_N[stepping]
        self._autoreset_N = terminated | truncated
        info = self._info()
        if self._autoreset_N.any():
            info["is_success"] = success
            info["_is_success"] = self._autoreset_N.copy()
        return self.batch.observe(), reward, terminated, truncated, info

    def _info(self) -> dict[str, Any]:
        return {"mission": np.array(self.batch.world.missions, dtype=object), "_mission": np.ones(self.num_envs, bool)}

    def render(self) -> tuple[np.ndarray, ...] | None:
        return tuple(frames(self.batch))

    def get_state(self) -> dict:
        return {**self.batch.get_state(), "autoreset": self._autoreset_N.copy()}

    def set_state(self, state: dict) -> None:
        self.batch.set_state(state)
        self._autoreset_N[...] = state["autoreset"]


def vector_entry_point(env_class: type[GridEnv]) -> Callable[..., GridVectorEnv]:
    """A ``vector_entry_point`` for Gymnasium's registry that batches ``env_class``.

    ``gymnasium.make_vec(id, num_envs, max_episode_steps=T)`` sets the environment's ``max_steps`` to ``T`` (the
    engine truncates there, as with ``max_steps=T``); giving both with different values raises ``ValueError``.
    """

    def make(num_envs: int = 1, max_episode_steps: int | None = None, **kwargs) -> GridVectorEnv:
        # Gymnasium passes max_episode_steps to vector entry points; here it is the engine's max_steps.
        return GridVectorEnv(env_class(**resolve_max_steps(kwargs, max_episode_steps)), num_envs)

    make.__name__ = f"make_{env_class.__name__}_vector"
    return make


make_goto = vector_entry_point(GoToEnv)
make_pickup = vector_entry_point(PickUpEnv)
make_open = vector_entry_point(OpenEnv)
make_sequence = vector_entry_point(SequenceEnv)
make_visual_query = vector_entry_point(VisualQueryEnv)
make_fixed_level = vector_entry_point(FixedLevelEnv)

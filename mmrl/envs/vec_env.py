"""Stable-Baselines3 ``VecEnv`` of mmrl's environments: N worlds stepped by one batched NumPy call.

Auto-reset happens in the same step; the last observation is in ``infos[i]["terminal_observation"]``.
Seeded with ``seed``, world ``i`` reproduces a single environment reset with ``seed + i``, episode for episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from mmrl.envs.batch_helpers import batch_like, frames, select
from mmrl.envs.grid_env import GridEnv

#: Attributes and methods of a single env that hold per-world state, with what to use on the batch instead.
PER_WORLD_NAMES = {
    name: hint
    for names, hint in (
        (("get_state", "set_state"), "Use venv.get_state() / venv.set_state() (every world at once)."),
        (("reset", "step"), "Use venv.reset() / venv.step(actions)."),
        (("render",), "Use venv.get_images() or venv.render()."),
        (("np_random", "np_random_seed", "_np_random"), "Seed the worlds with venv.seed(seed)."),
        (("batch", "_needs_reset", "_last_reward"), "Use the batch's own venv.batch."),
    )
    for name in names
}


class GridVecEnv(VecEnv):
    """Stable-Baselines3 ``VecEnv`` over ``n_envs`` worlds of the environment ``env`` describes.

    Args:
        env: A single :class:`~mmrl.envs.grid_env.GridEnv` whose task and observation options are copied.
        n_envs: Number of worlds.
    """

    def __init__(self, env: GridEnv, n_envs: int) -> None:
        self.prototype = env
        self.batch = batch_like(env, n_envs)
        super().__init__(n_envs, self.batch.observation_space, env.action_space)
        self.render_mode = env.render_mode
        self._actions: np.ndarray | None = None

    @property
    def unwrapped_env(self) -> GridEnv:
        return self.prototype

    def reset(self):
        for i, seed in enumerate(self._seeds):
            if seed is not None:
                self.batch.seed_world(i, seed)
        self._reset_seeds()
        self.batch.reset_worlds(range(self.num_envs))
        self.reset_infos = [{"mission": mission} for mission in self.batch.world.missions]
        return self.batch.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self.batch.validate_actions(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        result = self.batch.step(self._actions)
        self._actions = None
        dones = result.terminated_N | result.truncated_N
        obs = self.batch.observe()
        infos: list[dict[str, Any]] = [{"mission": mission} for mission in self.batch.world.missions]
        done_indices = np.flatnonzero(dones)
        if len(done_indices):
            for i in done_indices:
                infos[i]["terminal_observation"] = select(obs, int(i))
                infos[i]["is_success"] = bool(result.success_N[i])
                infos[i]["TimeLimit.truncated"] = bool(result.truncated_N[i] and not result.terminated_N[i])
            self.batch.reset_worlds(done_indices)
            fresh = self.batch.observe(done_indices)
            if isinstance(obs, dict):
                for key in obs:
                    obs[key][done_indices] = fresh[key]
            else:
                obs[done_indices] = fresh
            for i in done_indices:
                infos[i]["mission"] = self.batch.world.missions[i]
        return obs, result.reward_N.copy(), dones, infos

    def close(self) -> None:
        pass

    def get_images(self) -> Sequence[np.ndarray | None]:
        return frames(self.batch)

    def render(self, mode: str | None = None) -> np.ndarray | None:
        return super().render(mode=mode or "rgb_array")

    def _indices_list(self, indices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """``attr_name`` of each world: ``"mission"`` per world, shared attributes (``tokenizer``,
        ``action_names``, ...) from the environment the worlds copy.

        Raises:
            AttributeError: ``attr_name`` is per-world state the batch does not keep per env (see
                :data:`PER_WORLD_NAMES`).
        """
        indices_list = self._indices_list(indices)
        if attr_name == "mission":
            return [self.batch.world.missions[i] for i in indices_list]
        self._check_shared(attr_name)
        value = getattr(self.prototype, attr_name)
        return [value for _ in indices_list]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        self._check_shared(attr_name)
        setattr(self.prototype, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        self._check_shared(method_name)
        method = getattr(self.prototype, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices_list(indices)]

    @staticmethod
    def _check_shared(name: str) -> None:
        if name in PER_WORLD_NAMES:
            raise AttributeError(
                f"{name!r} is per-world state: the batched GridVecEnv has no separate env per world to ask. "
                f"{PER_WORLD_NAMES[name]}"
            )

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._indices_list(indices)]

    def get_state(self) -> dict:
        """The worlds' arrays, instructions and RNG states, for exact resume."""
        return self.batch.get_state()

    def set_state(self, state: dict) -> None:
        self.batch.set_state(state)


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    *,
    start_index: int = 0,
    monitor_dir: str | None = None,
    wrapper_class: Callable[..., gym.Env] | None = None,
    vec_env_cls: type[VecEnv] | None = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
    **unexpected: Any,
) -> VecEnv:
    """A Stable-Baselines3 ``VecEnv`` of ``n_envs`` copies of ``env_id``.

    mmrl's environments (``mmrl/...``) become one batched :class:`GridVecEnv` (no per-env wrappers, no
    ``Monitor``). Any other id, or an mmrl id with any of Stable-Baselines3's per-env options (``vec_env_cls``,
    ``wrapper_class``, ``monitor_dir``, ...), goes through Stable-Baselines3's ``make_vec_env`` (a
    ``DummyVecEnv`` of ``Monitor``-wrapped single environments unless ``vec_env_cls`` says otherwise); mmrl ids
    are then given as ``"mmrl:mmrl/..."`` so that worker processes import mmrl and find the registration. Both
    paths give the same episodes (same length, ``info["is_success"]`` on the last step).

    Args:
        env_id: A registered Gymnasium id.
        n_envs: Number of environments.
        seed: Environment ``i`` is seeded ``seed + i`` at the first reset.
        env_kwargs: Keyword arguments of the environment constructor (``max_episode_steps`` is taken as the
            environment's ``max_steps``).
        start_index, monitor_dir, wrapper_class, vec_env_cls, vec_env_kwargs, monitor_kwargs, wrapper_kwargs:
            Stable-Baselines3's ``make_vec_env`` options; giving any of them selects its path.

    Raises:
        TypeError: An unknown keyword argument.
        ValueError: Unknown ``env_id`` or a bad ``n_envs``.
    """
    from mmrl.envs.registration import check_env_id, resolve_max_steps

    if unexpected:
        raise TypeError(
            f"make_vec_env() got unexpected keyword argument(s) {', '.join(sorted(unexpected))}; it accepts "
            f"env_kwargs (constructor arguments, e.g. env_kwargs={{{next(iter(sorted(unexpected)))!r}: ...}}) and "
            f"Stable-Baselines3's options {', '.join(SB3_OPTIONS)}"
        )
    if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    check_env_id(env_id)
    spec = gym.spec(env_id)
    sb3_options: dict[str, Any] = {
        "start_index": start_index,
        "monitor_dir": monitor_dir,
        "wrapper_class": wrapper_class,
        "vec_env_cls": vec_env_cls,
        "vec_env_kwargs": vec_env_kwargs,
        "monitor_kwargs": monitor_kwargs,
        "wrapper_kwargs": wrapper_kwargs,
    }
    uses_sb3_options = start_index != 0 or any(
        value is not None for name, value in sb3_options.items() if name != "start_index"
    )
    kwargs = dict(env_kwargs or {})
    if env_id.startswith("mmrl/"):  # the engine's max_steps is the one time limit, on both paths below
        kwargs = resolve_max_steps(kwargs, kwargs.pop("max_episode_steps", None))
    if env_id.startswith("mmrl/") and not uses_sb3_options:
        env = gym.make(env_id, **kwargs).unwrapped
        assert isinstance(env, GridEnv)
        venv: VecEnv = GridVecEnv(env, n_envs)
    else:
        from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

        importable_id = f"mmrl:{spec.id}" if spec.id.startswith("mmrl/") else spec.id
        venv = sb3_make_vec_env(importable_id, n_envs=n_envs, env_kwargs=kwargs, **sb3_options)
    if seed is not None:
        venv.seed(seed)
    return venv


#: Stable-Baselines3 ``make_vec_env`` options that :func:`make_vec_env` accepts (and passes on).
SB3_OPTIONS = (
    "start_index",
    "monitor_dir",
    "wrapper_class",
    "vec_env_cls",
    "vec_env_kwargs",
    "monitor_kwargs",
    "wrapper_kwargs",
)

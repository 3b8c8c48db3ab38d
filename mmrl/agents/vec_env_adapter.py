"""Gymnasium envs and vector envs seen through SB3's ``VecEnv`` API, for :class:`~mmrl.agents.QLearning`.

:func:`wrap_env` turns whatever a user passes (an env id, a Gymnasium ``Env`` or ``VectorEnv``, an SB3 ``VecEnv``)
into an SB3 ``VecEnv``; :class:`GymnasiumVecEnvAdapter` does it for Gymnasium vector envs, whatever their autoreset
mode. :func:`select_observation`, :func:`stack_observations` and :func:`add_batch_axis` move single observations of
any (Dict / Tuple) space in and out of batches.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

__all__ = [
    "GymEnvLike",
    "GymnasiumVecEnvAdapter",
    "add_batch_axis",
    "infos_to_list",
    "select_observation",
    "stack_observations",
    "wrap_env",
]

#: What :func:`wrap_env` accepts: an env id, a Gymnasium env or vector env, or an SB3 ``VecEnv``.
GymEnvLike = gym.Env | gym.vector.VectorEnv | VecEnv | str


def infos_to_list(info: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium vector infos (dict of arrays with ``_key`` masks) -> SB3 infos (one dict per env)."""
    per_env: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if isinstance(key, str) and key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        present = range(num_envs) if mask is None else np.flatnonzero(mask).tolist()
        if isinstance(value, dict):
            nested = infos_to_list(value, num_envs)
            for i in present:
                per_env[i][key] = nested[i]
        else:
            for i in present:
                per_env[i][key] = value[i]
    return per_env


def select_observation(space: spaces.Space, batch: Any, index: int) -> Any:
    """Observation ``index`` of a batched observation of ``space``."""
    if isinstance(space, spaces.Dict):
        return {key: select_observation(sub, batch[key], index) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(select_observation(sub, value, index) for sub, value in zip(space.spaces, batch, strict=True))
    return np.array(batch[index], copy=True)


def stack_observations(space: spaces.Space, observations: list[Any]) -> Any:
    """Batch single observations of ``space`` along a new leading axis."""
    if isinstance(space, spaces.Dict):
        return {key: stack_observations(sub, [obs[key] for obs in observations]) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(
            stack_observations(sub, [obs[position] for obs in observations])
            for position, sub in enumerate(space.spaces)
        )
    return np.stack([np.asarray(obs) for obs in observations])


def add_batch_axis(space: spaces.Space, observation: Any) -> Any:
    """A single observation of ``space`` as a batch of one."""
    if isinstance(space, spaces.Dict):
        return {key: add_batch_axis(sub, observation[key]) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(add_batch_axis(sub, value) for sub, value in zip(space.spaces, observation, strict=True))
    return np.asarray(observation)[None]


class GymnasiumVecEnvAdapter(VecEnv):
    """Present a Gymnasium ``VectorEnv`` with the SB3 ``VecEnv`` API.

    Per autoreset mode (https://farama.org/Vector-Autoreset-Mode):

    * ``SAME_STEP``: exactly SB3 semantics. After a step in which copy ``i`` finished, observation ``i`` is the
      first of its next episode and ``infos[i]["terminal_observation"]`` (from Gymnasium's ``final_obs``, with
      ``final_info`` merged into ``infos[i]``) the last of the finished one.
    * ``DISABLED``: finished copies are reset at once with ``reset(options={"reset_mask": dones})``, giving SB3
      semantics too.
    * ``NEXT_STEP`` (Gymnasium's default): the env itself resets a finished copy on the *following* call, ignoring
      its action and returning reward 0. The adapter passes this through: observation ``i`` of the finishing step
      is the last one (also in ``infos[i]["terminal_observation"]``) and the following step of copy ``i`` is
      flagged in :attr:`autoreset_mask` (and ``infos[i]["autoreset_step"] = True``) so that learners skip it; it
      still counts as a timestep. Only Gymnasium's own vector envs are known to support ``reset_mask``, so it is
      not relied on in this mode.

    In every mode ``infos[i]["TimeLimit.truncated"]`` tells truncation from termination.

    Args:
        venv: The Gymnasium vector env.
    """

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        self.venv = venv
        #: The same env, for the methods Gymnasium's concrete vector envs have (``get_attr``, ``set_attr``,
        #: ``call``, a list of seeds in ``reset``) but its ``VectorEnv`` base class does not declare.
        self._concrete: Any = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.autoreset_mode = AutoresetMode(venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self._actions: np.ndarray | None = None
        #: Copies whose last step was a NEXT_STEP auto-reset (no real transition happened).
        self.autoreset_mask = np.zeros(venv.num_envs, dtype=bool)
        self._finished_last_step = np.zeros(venv.num_envs, dtype=bool)

    def reset(self) -> VecEnvObs:
        """Reset all copies (with the seeds/options set by :meth:`seed` / :meth:`set_options`, if any)."""
        seeds = None if all(seed is None for seed in self._seeds) else list(self._seeds)
        options = self._options[0] if self._options and self._options[0] else None
        observations, info = self._concrete.reset(seed=seeds, options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = infos_to_list(info, self.num_envs)
        self.autoreset_mask[:] = False
        self._finished_last_step[:] = False
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        """Store actions for :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step, then convert to SB3 semantics (see the class docstring)."""
        observations, rewards, terminated, truncated, info = self.venv.step(self._actions)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        infos = infos_to_list(info, self.num_envs)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self.autoreset_mask = self._finished_last_step
            self._finished_last_step = dones.copy()
            for i in np.flatnonzero(self.autoreset_mask).tolist():
                infos[i]["autoreset_step"] = True
        if dones.any():
            finished = np.flatnonzero(dones).tolist()
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                final_infos = infos_to_list(info.get("final_info", {}), self.num_envs)
                for i in finished:
                    infos[i].pop("final_obs", None)
                    infos[i].pop("final_info", None)
                    infos[i].update(final_infos[i])
                    infos[i]["terminal_observation"] = info["final_obs"][i]
            else:
                for i in finished:
                    infos[i]["terminal_observation"] = select_observation(self.observation_space, observations, i)
            if self.autoreset_mode == AutoresetMode.DISABLED:
                observations, reset_info = self.venv.reset(options={"reset_mask": dones})
                reset_infos = infos_to_list(reset_info, self.num_envs)
                for i in finished:
                    self.reset_infos[i] = reset_infos[i]
            for i in finished:
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return observations, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        """Close the wrapped vector env."""
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attribute of each sub-env (``VectorEnv.get_attr``)."""
        values = self._concrete.get_attr(attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on all sub-envs (Gymnasium cannot address a subset)."""
        if indices is not None:
            raise NotImplementedError("Gymnasium vector envs set attributes on all sub-envs at once")
        self._concrete.set_attr(attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method on each sub-env (``VectorEnv.call``)."""
        results = self._concrete.call(method_name, *method_args, **method_kwargs)
        return [results[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Whether sub-envs are wrapped by ``wrapper_class`` (only knowable for ``SyncVectorEnv``)."""
        envs = getattr(self.venv, "envs", None)
        if envs is None:
            return [False for _ in self._get_indices(indices)]
        return [is_wrapped(envs[i], wrapper_class) for i in self._get_indices(indices)]


def wrap_env(env: GymEnvLike) -> VecEnv:
    """Turn an env id, a Gymnasium env, a Gymnasium vector env or an SB3 ``VecEnv`` into an SB3 ``VecEnv``.

    A single Gymnasium env is wrapped in SB3's ``Monitor`` (for episode statistics) and ``DummyVecEnv``.
    """
    if isinstance(env, str):
        env = gym.make(env)
    if isinstance(env, VecEnv):
        return env
    if isinstance(env, gym.vector.VectorEnv):
        return GymnasiumVecEnvAdapter(env)
    if isinstance(env, gym.Env):
        monitored = env if is_wrapped(env, Monitor) else Monitor(env)
        return DummyVecEnv([lambda: monitored])
    raise TypeError(f"expected an env id, a gymnasium Env/VectorEnv or an SB3 VecEnv, got {type(env).__name__}")

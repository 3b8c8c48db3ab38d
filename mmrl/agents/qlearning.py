"""Tabular Q-learning (Watkins) in NumPy, with the surface of an SB3 model.

Update rule, for a transition ``(s, a, r, s')`` (Watkins 1989; Watkins & Dayan 1992; Sutton & Barto 2018, eq. 6.8)::

    Q(s, a) <- Q(s, a) + alpha * [r + gamma * (1 - terminated) * max_a' Q(s', a') - Q(s, a)]

With ``double_q=True`` two tables are kept and each transition updates one of them, chosen by a fair coin, with
the other table evaluating the first one's greedy action (van Hasselt 2010, "Double Q-learning", NeurIPS)::

    Q_A(s, a) <- Q_A(s, a) + alpha * [r + gamma * (1 - terminated) * Q_B(s', argmax_a' Q_A(s', a')) - Q_A(s, a)]

Behaviour: epsilon-greedy on ``Q`` (``Q_A + Q_B`` for Double Q) with seeded random tie-breaking while learning;
:meth:`QLearning.predict` is greedy with deterministic tie-breaking (lowest action index) and returns the default
action (the action space's first action) for observations it has never seen.

Design decisions:

* **Vectorised updates.** Each call to the vectorised env gives N transitions that are applied with NumPy fancy
  indexing. Targets are computed from the table as it was before the batch (like a synchronous / "batch" update).
  When several transitions of one batch share a ``(s, a)`` pair they are applied with *sequential semantics*: the
  result is exactly that of applying them one after the other in env-index order,
  ``Q <- (1 - alpha)^k Q + sum_j alpha (1 - alpha)^(k - 1 - j) target_j``. Unlike summing the TD errors
  (``np.add.at``), this can never overshoot when ``k * alpha > 1`` (common with hundreds of envs in a 16-state
  FrozenLake), and unlike averaging them it learns as much from k samples as a single-env learner would.
  The order is deterministic (a stable sort on ``s * n_actions + a``). Consequence: a pair seen k times in one
  batch moves by ``1 - (1 - alpha)^k`` of the way to its (weighted) target, so with many envs in lockstep and
  noisy rewards prefer a small ``alpha`` (or a decaying schedule).
* **Terminal vs truncated.** No bootstrap when an episode terminates; on truncation (SB3's
  ``infos[i]["TimeLimit.truncated"]``) the target bootstraps from ``infos[i]["terminal_observation"]``, never from
  the first observation of the next episode that the auto-resetting env returns. Gymnasium vector envs go
  through :class:`GymnasiumVecEnvAdapter`: ``final_obs`` in ``SAME_STEP`` mode, a masked reset in ``DISABLED``
  mode; in ``NEXT_STEP`` mode (Gymnasium's default) the step in which a finished copy resets is no transition
  and is skipped (it still counts in ``num_timesteps``).
* **States.** ``Discrete`` observations index the table directly; every other observation space goes through
  :class:`~mmrl.agents.state_indexer.StateIndexer` (stable BLAKE2b-128 digests, table grows on demand up to
  ``max_states`` and raises :class:`~mmrl.agents.state_indexer.StateCapacityError` beyond).
* **Save format.** ``save("model")`` writes ONE file, ``model.npz`` (a suffix is added only when the path has
  none). It is a regular NumPy ``.npz`` archive (a zip) holding the arrays (``q_table`` [and ``q_table_b``],
  ``visit_counts``, the RNG states as ``uint64`` words, the step counters and, for hashed states,
  ``state_digests``) plus a ``metadata.json`` member with the JSON metadata (format and package version,
  algorithm, observation/action spaces, hyperparameters and schedules, state-index description, the shape and
  dtype of every array). One file means one atomic ``os.replace``: a reader never sees a table with the metadata of
  another save. Inspect with ``unzip -p model.npz metadata.json``. Loading reads arrays with
  ``allow_pickle=False`` and raises ``ValueError`` naming the file for corrupted, truncated or foreign files.
* **Schedules** are functions of the absolute step counter (:mod:`mmrl.agents.schedules`). The exploration
  schedule built from ``exploration_fraction`` is fixed at the first ``learn`` call (or any call with
  ``reset_num_timesteps=True``) to span ``exploration_fraction * total_timesteps`` steps, and kept by
  ``learn(..., reset_num_timesteps=False)``, so resumed training continues the same curve.

References:
    Watkins (1989), "Learning from Delayed Rewards", PhD thesis, Cambridge; Watkins & Dayan (1992),
    "Q-learning", Machine Learning 8; van Hasselt (2010), "Double Q-learning", NeurIPS; Sutton & Barto (2018),
    *Reinforcement Learning: An Introduction*, 2nd ed., sections 6.5, 6.7; Raffin et al. (2021),
    "Stable-Baselines3", JMLR 22 (the model/callback/VecEnv interface reproduced here).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import numbers
import os
import sys
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import configure_logger, safe_mean
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize, unwrap_vec_normalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from mmrl.agents.schedules import ConstantSchedule, Schedule, make_schedule, schedule_from_dict
from mmrl.agents.state_indexer import (
    DiscreteStateIndexer,
    StateIndexer,
    batch_size_of,
    make_state_indexer,
)
from mmrl.atomic import atomic_path
from mmrl.spaces_json import space_from_json, space_to_json
from mmrl.version import __version__

__all__ = ["GymnasiumVecEnvAdapter", "QLearning"]

ALGORITHM_NAME = "QLearning"
FILE_FORMAT = "mmrl.agents.QLearning"
FILE_FORMAT_VERSION = 1
METADATA_MEMBER = "metadata.json"
DEFAULT_SUFFIX = ".npz"
_INITIAL_HASHED_ROWS = 1024

GymEnvLike = gym.Env | gym.vector.VectorEnv | VecEnv | str


def _normalised_json(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True))


# ------------------------------------------------------------------------------------ Gymnasium vector env adapter
def _infos_to_list(info: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium vector infos (dict of arrays with ``_key`` masks) -> SB3 infos (one dict per env)."""
    per_env: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if isinstance(key, str) and key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        present = range(num_envs) if mask is None else np.flatnonzero(mask).tolist()
        if isinstance(value, dict):
            nested = _infos_to_list(value, num_envs)
            for i in present:
                per_env[i][key] = nested[i]
        else:
            for i in present:
                per_env[i][key] = value[i]
    return per_env


def _select(space: spaces.Space, batch: Any, index: int) -> Any:
    """Observation ``index`` of a batched observation of ``space``."""
    if isinstance(space, spaces.Dict):
        return {key: _select(sub, batch[key], index) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_select(sub, value, index) for sub, value in zip(space.spaces, batch, strict=True))
    return np.array(batch[index], copy=True)


def _stack(space: spaces.Space, observations: list[Any]) -> Any:
    """Batch single observations of ``space`` along a new leading axis."""
    if isinstance(space, spaces.Dict):
        return {key: _stack(sub, [obs[key] for obs in observations]) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_stack(sub, [obs[position] for obs in observations]) for position, sub in enumerate(space.spaces))
    return np.stack([np.asarray(obs) for obs in observations])


def _add_batch_axis(space: spaces.Space, observation: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return {key: _add_batch_axis(sub, observation[key]) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_add_batch_axis(sub, value) for sub, value in zip(space.spaces, observation, strict=True))
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
        observations, info = self.venv.reset(seed=seeds, options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = _infos_to_list(info, self.num_envs)
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
        infos = _infos_to_list(info, self.num_envs)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self.autoreset_mask = self._finished_last_step
            self._finished_last_step = dones.copy()
            for i in np.flatnonzero(self.autoreset_mask).tolist():
                infos[i]["autoreset_step"] = True
        if dones.any():
            finished = np.flatnonzero(dones).tolist()
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                final_infos = _infos_to_list(info.get("final_info", {}), self.num_envs)
                for i in finished:
                    infos[i].pop("final_obs", None)
                    infos[i].pop("final_info", None)
                    infos[i].update(final_infos[i])
                    infos[i]["terminal_observation"] = info["final_obs"][i]
            else:
                for i in finished:
                    infos[i]["terminal_observation"] = _select(self.observation_space, observations, i)
            if self.autoreset_mode == AutoresetMode.DISABLED:
                observations, reset_info = self.venv.reset(options={"reset_mask": dones})
                reset_infos = _infos_to_list(reset_info, self.num_envs)
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
        values = self.venv.get_attr(attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on all sub-envs (Gymnasium cannot address a subset)."""
        if indices is not None:
            raise NotImplementedError("Gymnasium vector envs set attributes on all sub-envs at once")
        self.venv.set_attr(attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method on each sub-env (``VectorEnv.call``)."""
        results = self.venv.call(method_name, *method_args, **method_kwargs)
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


# ------------------------------------------------------------------------------------------------- table updates
def sequential_update(
    table: np.ndarray, rows: np.ndarray, actions: np.ndarray, targets: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``table[rows, actions]`` towards ``targets`` with step ``alpha``, duplicates applied in batch order.

    The result equals ``for i in range(len(rows)): table[rows[i], actions[i]] += alpha * (targets[i] -
    table[rows[i], actions[i]])`` (targets are fixed beforehand), computed without a Python loop:
    for a pair that occurs ``k`` times, ``Q <- (1 - alpha)^k Q + sum_j alpha (1 - alpha)^(k - 1 - j) target_j``.

    Args:
        table: ``(n_rows, n_actions)`` C-contiguous float table, updated in place.
        rows, actions: ``(batch,)`` int64 indices.
        targets: ``(batch,)`` float targets.
        alpha: Step size in [0, 1].

    Returns:
        ``(unique_flat_indices, counts)``: the distinct flat indices ``row * n_actions + action`` updated and
        how often each occurred, for visit counting.
    """
    if not table.flags.c_contiguous:
        raise ValueError("sequential_update needs a C-contiguous table (it updates a flat view in place)")
    flat = table.reshape(-1)
    keys = rows * table.shape[1] + actions
    batch = keys.size
    if batch == 1:
        flat[keys] += alpha * (targets - flat[keys])
        return keys, np.ones(1, dtype=np.int64)
    # A stable sort on uint16 keys is a radix sort (linear time), several times faster than on int64.
    sort_keys = keys.astype(np.uint16) if table.size <= np.iinfo(np.uint16).max + 1 else keys
    order = np.argsort(sort_keys, kind="stable")
    sorted_keys = keys[order]
    is_group_start = np.empty(batch, dtype=bool)
    is_group_start[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=is_group_start[1:])
    if is_group_start.all():
        flat[keys] += alpha * (targets - flat[keys])
        return keys, np.ones(batch, dtype=np.int64)
    starts = np.flatnonzero(is_group_start)
    group = np.cumsum(is_group_start) - 1
    counts = np.diff(np.append(starts, batch))
    later_duplicates = counts[group] - 1 - (np.arange(batch) - starts[group])
    decay = 1.0 - alpha
    weighted_targets = alpha * decay**later_duplicates * targets[order]
    sums = np.bincount(group, weights=weighted_targets, minlength=starts.size)
    unique_keys = sorted_keys[starts]
    flat[unique_keys] = decay**counts * flat[unique_keys] + sums
    return unique_keys, counts


def _greedy(q_values: np.ndarray) -> np.ndarray:
    """Greedy actions with deterministic tie-breaking (lowest index)."""
    return np.argmax(q_values, axis=1)


def _rng_state_to_array(rng: np.random.Generator) -> np.ndarray:
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"only PCG64 generators can be saved, got {state['bit_generator']}")
    mask = (1 << 64) - 1
    words = [
        state["state"]["state"] >> 64,
        state["state"]["state"] & mask,
        state["state"]["inc"] >> 64,
        state["state"]["inc"] & mask,
        state["has_uint32"],
        state["uinteger"],
    ]
    return np.asarray(words, dtype="<u8")


def _rng_from_array(words: np.ndarray) -> np.random.Generator:
    if words.shape != (6,) or words.dtype != np.dtype("<u8"):
        raise ValueError(f"RNG state must be 6 uint64 words, got {words.shape} {words.dtype}")
    values = [int(word) for word in words]
    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (values[0] << 64) | values[1], "inc": (values[2] << 64) | values[3]},
        "has_uint32": values[4],
        "uinteger": values[5],
    }
    return generator


class _TqdmProgressBar(BaseCallback):
    """Plain ``tqdm`` progress bar over the timesteps of one ``learn`` call."""

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.locals["total_timesteps"] - self.model.num_timesteps, unit="step")

    def _on_step(self) -> bool:
        self._bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self._bar.refresh()
        self._bar.close()


# ------------------------------------------------------------------------------------------ argument checks
_SCHEDULE_HELP = (
    "a mmrl.agents.schedules.Schedule of the absolute step counter (ConstantSchedule(value), "
    "LinearSchedule(initial, final, duration) or ExponentialSchedule(initial, final, half_life))"
)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _schedule_bounds(schedule: Schedule) -> list[float]:
    """Values that bound a schedule's range: the endpoints of the built-in kinds, else its value at step 0."""
    values = [getattr(schedule, name) for name in ("value", "initial", "final") if hasattr(schedule, name)]
    return [float(value) for value in values] or [float(schedule(0))]


def _check_learning_rate(learning_rate: Any) -> Schedule:
    """The step-size schedule for ``learning_rate`` (a float in (0, 1] or a :class:`Schedule` within [0, 1]).

    Raises:
        TypeError: For a callable that is not a :class:`Schedule` (SB3's progress functions) or a non-number.
        ValueError: For a value outside (0, 1] or a schedule leaving [0, 1].
    """
    if isinstance(learning_rate, Schedule):
        bounds = _schedule_bounds(learning_rate)
        if not all(0.0 <= value <= 1.0 for value in bounds) or max(bounds) <= 0.0:
            raise ValueError(
                f"learning_rate schedule {learning_rate!r} must stay within [0, 1] and not be 0 throughout (the "
                f"step size alpha of the update), its values reach {bounds}; use e.g. LinearSchedule(0.5, 0.05, "
                f"duration)"
            )
        return learning_rate
    if callable(learning_rate):
        raise TypeError(
            f"learning_rate must be a float in (0, 1] or {_SCHEDULE_HELP}, got the callable {learning_rate!r}. "
            "SB3-style functions of the remaining progress are not accepted (QLearning's schedules count absolute "
            "steps, so that resumed training continues them and save() can store them as JSON): pass e.g. "
            "learning_rate=LinearSchedule(initial=0.5, final=0.05, duration=total_timesteps)"
        )
    if not _is_real(learning_rate):
        raise TypeError(
            f"learning_rate must be a float in (0, 1] or {_SCHEDULE_HELP}, got {learning_rate!r} of type "
            f"{type(learning_rate).__name__}; pass e.g. learning_rate=0.1"
        )
    if not 0.0 < learning_rate <= 1.0:
        raise ValueError(
            f"learning_rate must be in (0, 1] (the step size alpha: a negative one moves Q away from its targets, "
            f"one above 1 overshoots them), got {learning_rate}; pass e.g. learning_rate=0.1"
        )
    return ConstantSchedule(float(learning_rate))


def _check_unit_interval(name: str, value: Any, meaning: str) -> float:
    """``value`` as a float if it is a real number in [0, 1]; else ``TypeError`` / ``ValueError``."""
    if not _is_real(value):
        raise TypeError(
            f"{name} must be a float in [0, 1] ({meaning}), got {value!r} of type {type(value).__name__}; pass a "
            f"number such as {name}=0.1"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] ({meaning}), got {value}; pass a value in [0, 1]")
    return float(value)


def _check_exploration_schedule(schedule: Any) -> None:
    if isinstance(schedule, str):
        if schedule not in ("linear", "exponential", "constant"):
            raise ValueError(
                f"exploration_schedule must be 'linear', 'exponential', 'constant' or {_SCHEDULE_HELP}, got "
                f"{schedule!r}"
            )
        return
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"exploration_schedule must be 'linear', 'exponential', 'constant' or {_SCHEDULE_HELP}, got "
            f"{schedule!r}; SB3-style functions of the remaining progress are not accepted"
        )
    bounds = _schedule_bounds(schedule)
    if not all(0.0 <= value <= 1.0 for value in bounds):
        raise ValueError(
            f"exploration_schedule {schedule!r} must stay within [0, 1] (it gives the probability epsilon of a "
            f"random action), its values reach {bounds}"
        )


# ---------------------------------------------------------------------------------------------------- the agent
class QLearning:
    """Tabular Q-learning (optionally Double Q-learning) with an SB3-like interface.

    Args:
        env: Env id, Gymnasium ``Env`` (wrapped in ``Monitor`` + ``DummyVecEnv``), Gymnasium ``VectorEnv``
            (adapted, see :class:`GymnasiumVecEnvAdapter`) or SB3 ``VecEnv`` such as
            :class:`~mmrl.agents.tabular_vec_env.TabularVecEnv`. May be None only with ``observation_space`` and
            ``action_space`` given (e.g. for prediction only).
        learning_rate: Step size alpha, a float in (0, 1] or a :class:`~mmrl.agents.schedules.Schedule` of the
            absolute step counter with values in [0, 1]. SB3-style callables of the remaining progress are
            rejected (``TypeError``): use ``LinearSchedule(initial, final, duration)`` instead.
        gamma: Discount factor in [0, 1].
        exploration_initial_eps: Epsilon at step 0, in [0, 1].
        exploration_final_eps: Epsilon after ``exploration_fraction`` of the first ``learn`` call, in [0, 1].
        exploration_fraction: Fraction of ``total_timesteps`` over which epsilon decays, in [0, 1].
        exploration_schedule: ``"linear"`` (SB3 DQN's), ``"exponential"``, ``"constant"`` (stays at
            ``exploration_initial_eps``), or a :class:`~mmrl.agents.schedules.Schedule` on absolute steps with
            values in [0, 1] (then the three parameters above are ignored).
        double_q: Use Double Q-learning (two tables).
        initial_q_value: Value of unvisited table entries (optimistic initialisation if > 0).
        max_states: Cap on the rows of a hashed (non-``Discrete``) state table.
        seed: Seed of the agent's random streams, of the env (via ``VecEnv.seed``) and of the action space.
        verbose: 0 silent, 1 log to stdout through the SB3 logger.
        tensorboard_log: Folder for tensorboard logs (SB3 convention), or None.
        observation_space, action_space: Spaces when ``env`` is None.

    Raises:
        TypeError: If the action space is not ``Discrete``, the observation space is unsupported, or a
            hyperparameter has the wrong type (e.g. a plain function as ``learning_rate``).
        ValueError: If a hyperparameter is out of range (``learning_rate`` outside (0, 1], a probability or
            ``gamma`` outside [0, 1]).
    """

    algorithm_name = ALGORITHM_NAME

    def __init__(
        self,
        env: GymEnvLike | None,
        learning_rate: float | Schedule = 0.1,
        gamma: float = 0.99,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_fraction: float = 0.1,
        exploration_schedule: str | Schedule = "linear",
        double_q: bool = False,
        initial_q_value: float = 0.0,
        max_states: int = 1_000_000,
        seed: int | None = None,
        verbose: int = 0,
        tensorboard_log: str | None = None,
        *,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
    ) -> None:
        gamma = _check_unit_interval("gamma", gamma, "the discount factor")
        lr_schedule = _check_learning_rate(learning_rate)
        exploration_initial_eps = _check_unit_interval(
            "exploration_initial_eps", exploration_initial_eps, "the probability of a random action at step 0"
        )
        exploration_final_eps = _check_unit_interval(
            "exploration_final_eps", exploration_final_eps, "the probability of a random action after the decay"
        )
        exploration_fraction = _check_unit_interval(
            "exploration_fraction", exploration_fraction, "the fraction of the first learn() call spent decaying"
        )
        _check_exploration_schedule(exploration_schedule)
        self.env: VecEnv | None = None
        if env is not None:
            self.env = wrap_env(env)
            observation_space, action_space = self.env.observation_space, self.env.action_space
        if observation_space is None or action_space is None:
            raise ValueError("give an env, or both observation_space and action_space")
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"QLearning needs a Discrete action space, got {action_space}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.n_actions = int(action_space.n)
        self._action_start = int(action_space.start)
        self.n_envs = self.env.num_envs if self.env is not None else 1

        self.gamma = float(gamma)
        self.learning_rate = learning_rate
        self.lr_schedule: Schedule = lr_schedule
        self.exploration_initial_eps = float(exploration_initial_eps)
        self.exploration_final_eps = float(exploration_final_eps)
        self.exploration_fraction = float(exploration_fraction)
        self.exploration_schedule_kind = exploration_schedule if isinstance(exploration_schedule, str) else "custom"
        self.exploration_schedule: Schedule | None = (
            exploration_schedule if isinstance(exploration_schedule, Schedule) else None
        )
        self.double_q = bool(double_q)
        self.initial_q_value = float(initial_q_value)
        self.max_states = int(max_states)
        self.seed = seed
        self.verbose = verbose
        self.tensorboard_log = tensorboard_log

        self.indexer: DiscreteStateIndexer | StateIndexer = make_state_indexer(observation_space, self.max_states)
        initial_rows = (
            self.indexer.n_states
            if isinstance(self.indexer, DiscreteStateIndexer)
            else min(_INITIAL_HASHED_ROWS, self.max_states)
        )
        self._q_tables: list[np.ndarray] = [
            np.full((initial_rows, self.n_actions), self.initial_q_value, dtype=np.float64)
            for _ in range(2 if self.double_q else 1)
        ]
        self._visit_counts = np.zeros((initial_rows, self.n_actions), dtype=np.int64)

        self.num_timesteps = 0
        self._episode_num = 0
        self._total_timesteps = 0
        self._num_timesteps_at_start = 0
        self._start_time = time.time_ns()
        self.exploration_rate = self.exploration_initial_eps
        self.learning_rate_value = self.lr_schedule(0)
        self._last_obs: Any = None
        self._last_rows: np.ndarray | None = None
        self.ep_info_buffer: deque[dict[str, Any]] = deque(maxlen=100)
        self.ep_success_buffer: deque[float] = deque(maxlen=100)
        self.replay_buffer = None
        self._logger: Logger | None = None
        self._custom_logger = False
        self.set_random_seed(seed)

    # ------------------------------------------------------------------------------------------- SB3-like plumbing
    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed the exploration and prediction generators, the action space and (at its next reset) the env."""
        learn_seed, predict_seed = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(learn_seed)
        self._predict_rng = np.random.default_rng(predict_seed)
        if seed is None:
            return
        self.action_space.seed(seed)
        if self.env is not None:
            self.env.seed(seed)

    @property
    def logger(self) -> Logger:
        """The SB3 logger (configured at ``learn`` unless set with :meth:`set_logger`)."""
        if self._logger is None:
            self._logger = configure_logger(self.verbose, None, "", True)
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        """Use ``logger`` (e.g. from ``stable_baselines3.common.logger.configure``) instead of the default."""
        self._logger = logger
        self._custom_logger = True

    def get_env(self) -> VecEnv | None:
        """The training env as an SB3 ``VecEnv`` (None if not set)."""
        return self.env

    def get_vec_normalize_env(self) -> VecNormalize | None:
        """The ``VecNormalize`` wrapper of the training env, if any (SB3 callbacks ask for it)."""
        return unwrap_vec_normalize(self.env) if self.env is not None else None

    def set_env(self, env: GymEnvLike, force_reset: bool = True) -> None:
        """Replace the training env; its spaces must equal the model's.

        Raises:
            ValueError: If the observation or action space differs.
        """
        vec_env = wrap_env(env)
        self._check_spaces(vec_env.observation_space, vec_env.action_space, where="set_env")
        self.env = vec_env
        self.n_envs = vec_env.num_envs
        if force_reset or self._last_obs is None:
            self._last_obs = None
            self._last_rows = None

    def _check_spaces(self, observation_space: spaces.Space, action_space: spaces.Space, where: str) -> None:
        for name, expected, given in (
            ("observation", self.observation_space, observation_space),
            ("action", self.action_space, action_space),
        ):
            if _normalised_json(space_to_json(given)) != _normalised_json(space_to_json(expected)):
                raise ValueError(f"{where}: {name} space {given} differs from the model's {expected}")

    def _init_callback(self, callback: Any, progress_bar: bool) -> BaseCallback | None:
        if callback is None and not progress_bar:
            return None
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if callback is None:
            callback = CallbackList([])
        elif not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, _TqdmProgressBar()])
        callback.init_callback(self)  # type: ignore[arg-type]
        return callback

    def _setup_learn(self, total_timesteps: int, reset_num_timesteps: bool, tb_log_name: str) -> int:
        if self.env is None:
            raise ValueError("no env: pass one to QLearning(...), QLearning.load(..., env=...) or set_env()")
        self._start_time = time.time_ns()
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._episode_num = 0
            self.ep_info_buffer.clear()
            self.ep_success_buffer.clear()
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if self.exploration_schedule is None or (reset_num_timesteps and self.exploration_schedule_kind != "custom"):
            self.exploration_schedule = make_schedule(
                self.exploration_schedule_kind,
                self.exploration_initial_eps,
                self.exploration_final_eps,
                round(self.exploration_fraction * total_timesteps),
            )
        if reset_num_timesteps or self._last_obs is None:
            self._last_obs = self.env.reset()
            self._last_rows = self._rows(self._last_obs, add=True)
        if not self._custom_logger:
            self._logger = configure_logger(self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps)
        return total_timesteps

    # ----------------------------------------------------------------------------------------------------- tables
    def _rows(self, observations: Any, add: bool) -> np.ndarray:
        rows = self.indexer.index(observations, add=add)
        if add and self.indexer.n_states > self._visit_counts.shape[0]:
            self._grow(self.indexer.n_states)
        return rows

    def _grow(self, needed_rows: int) -> None:
        capacity = self._visit_counts.shape[0]
        new_capacity = min(self.max_states, max(needed_rows, 2 * capacity))
        extra = new_capacity - capacity
        self._q_tables = [
            np.concatenate([table, np.full((extra, self.n_actions), self.initial_q_value)]) for table in self._q_tables
        ]
        self._visit_counts = np.concatenate([self._visit_counts, np.zeros((extra, self.n_actions), dtype=np.int64)])

    @property
    def n_states(self) -> int:
        """Number of table rows in use."""
        return self.indexer.n_states

    @property
    def q_table(self) -> np.ndarray:
        """``(n_states, n_actions)`` action values (copy). For Double Q, the mean of the two tables."""
        if self.double_q:
            return (self._q_tables[0][: self.n_states] + self._q_tables[1][: self.n_states]) / 2.0
        return self._q_tables[0][: self.n_states].copy()

    @property
    def q_tables(self) -> tuple[np.ndarray, ...]:
        """The raw table(s) (copies): one, or ``(Q_A, Q_B)`` for Double Q."""
        return tuple(table[: self.n_states].copy() for table in self._q_tables)

    @property
    def visit_counts(self) -> np.ndarray:
        """``(n_states, n_actions)`` number of updates of each pair (copy)."""
        return self._visit_counts[: self.n_states].copy()

    def _behaviour_values(self, rows: np.ndarray) -> np.ndarray:
        if self.double_q:
            return self._q_tables[0][rows] + self._q_tables[1][rows]
        return self._q_tables[0][rows]

    def _explore_actions(self, rows: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy with seeded random tie-breaking among greedy actions.

        One uniform ``u`` per env decides both whether to explore (``u < epsilon``) and, if so, which action
        (``floor(u / epsilon * n_actions)``, uniform given ``u < epsilon``).
        """
        q_values = self._behaviour_values(rows)
        is_best = q_values == q_values.max(axis=1, keepdims=True)
        if np.count_nonzero(is_best) == rows.size:
            actions = np.argmax(q_values, axis=1)
        else:
            actions = np.argmax(np.where(is_best, self._rng.random(q_values.shape), -1.0), axis=1)
        if epsilon > 0.0:
            if epsilon > 1.0:  # a custom Schedule left [0, 1]: sampling would skip the high actions
                raise ValueError(f"exploration rate {epsilon} is above 1; the exploration schedule must stay in [0, 1]")
            uniforms = self._rng.random(rows.size)
            explore = uniforms < epsilon
            if explore.any():
                random_actions = np.minimum(
                    (uniforms[explore] * (self.n_actions / epsilon)).astype(np.int64), self.n_actions - 1
                )
                actions[explore] = random_actions
        return actions

    def _td_targets(self, rewards: np.ndarray, next_rows: np.ndarray, bootstrap: np.ndarray, table: int) -> np.ndarray:
        if self.double_q:
            chooser, evaluator = self._q_tables[table], self._q_tables[1 - table]
            next_actions = _greedy(chooser[next_rows])
            next_values = evaluator[next_rows, next_actions]
        else:
            next_values = self._q_tables[0][next_rows].max(axis=1)
        return rewards + self.gamma * np.where(bootstrap, next_values, 0.0)

    def _update(
        self, rows: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_rows: np.ndarray, bootstrap: np.ndarray
    ) -> None:
        alpha = self.learning_rate_value
        visits = self._visit_counts.reshape(-1)
        if not self.double_q:
            targets = self._td_targets(rewards, next_rows, bootstrap, 0)
            unique_keys, counts = sequential_update(self._q_tables[0], rows, actions, targets, alpha)
            visits[unique_keys] += counts
        else:
            update_a = self._rng.random(rows.size) < 0.5
            targets = np.where(
                update_a,
                self._td_targets(rewards, next_rows, bootstrap, 0),
                self._td_targets(rewards, next_rows, bootstrap, 1),
            )
            for table, selected in ((0, update_a), (1, ~update_a)):
                if selected.any():
                    unique_keys, counts = sequential_update(
                        self._q_tables[table], rows[selected], actions[selected], targets[selected], alpha
                    )
                    visits[unique_keys] += counts

    # ------------------------------------------------------------------------------------------------------ learn
    def learn(
        self,
        total_timesteps: int,
        callback: BaseCallback | list[BaseCallback] | Callable[..., bool] | None = None,
        log_interval: int = 100,
        tb_log_name: str = ALGORITHM_NAME,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> QLearning:
        """Learn for ``total_timesteps`` environment transitions (rounded up to a multiple of ``n_envs``).

        Args:
            total_timesteps: Transitions to collect in this call.
            callback: SB3 callback(s) (``init_callback``, ``on_training_start``, ``on_rollout_start``,
                ``on_step`` after every vectorised step with ``locals`` holding ``new_obs``, ``actions``,
                ``rewards``, ``dones``, ``infos``, ``total_timesteps``; ``on_rollout_end``,
                ``on_training_end``). Training stops when ``on_step`` returns False.
            log_interval: Dump logs every this many finished episodes (only if the logger has outputs).
            tb_log_name: Tensorboard run name.
            reset_num_timesteps: If False, continue the step counter, the schedules and the current episodes.
            progress_bar: Show a ``tqdm`` progress bar.

        Returns:
            self.
        """
        total_timesteps = self._setup_learn(total_timesteps, reset_num_timesteps, tb_log_name)
        callback = self._init_callback(callback, progress_bar)
        if callback is not None:
            callback.on_training_start(locals(), globals())
            callback.on_rollout_start()
        env = self.env
        assert env is not None
        logging_enabled = bool(self.logger.output_formats)
        innermost = env.unwrapped
        next_step_adapter = (
            innermost
            if isinstance(innermost, GymnasiumVecEnvAdapter) and innermost.autoreset_mode == AutoresetMode.NEXT_STEP
            else None
        )
        episodes_at_last_dump = self._episode_num
        while self.num_timesteps < total_timesteps:
            self.exploration_rate = self.exploration_schedule(self.num_timesteps)
            self.learning_rate_value = self.lr_schedule(self.num_timesteps)
            rows = self._last_rows
            actions = self._explore_actions(rows, self.exploration_rate)
            env.step_async(actions + self._action_start)
            new_obs, rewards, dones, infos = env.step_wait()
            self.num_timesteps += env.num_envs
            new_rows = self._rows(new_obs, add=True)
            any_done = bool(np.any(dones))
            next_rows, bootstrap = self._bootstrap_rows(new_rows, dones, infos) if any_done else (new_rows, True)
            rewards_float = np.asarray(rewards, dtype=np.float64)
            if next_step_adapter is not None and next_step_adapter.autoreset_mask.any():
                real = ~next_step_adapter.autoreset_mask  # NEXT_STEP auto-reset steps are no transitions
                if real.any():
                    bootstrap = np.broadcast_to(bootstrap, real.shape)[real]
                    self._update(rows[real], actions[real], rewards_float[real], next_rows[real], bootstrap)
            else:
                self._update(rows, actions, rewards_float, next_rows, bootstrap)
            self._last_obs, self._last_rows = new_obs, new_rows
            if any_done:
                self._record_episodes(dones, infos)
            if callback is not None:
                callback.update_locals(locals())
                if not callback.on_step():
                    break
            if logging_enabled and self._episode_num - episodes_at_last_dump >= log_interval:
                episodes_at_last_dump = self._episode_num
                self.dump_logs()
        if callback is not None:
            callback.on_rollout_end()
            callback.on_training_end()
        return self

    def _bootstrap_rows(self, new_rows: np.ndarray, dones: np.ndarray, infos: list[dict]) -> tuple[np.ndarray, Any]:
        """Rows to bootstrap from and whether to bootstrap, for a step in which some episode finished: from
        ``new_obs`` while the episode runs, from the terminal observation on truncation, not at all on termination."""
        finished = np.flatnonzero(dones).tolist()
        truncated = [
            i for i in finished if infos[i].get("TimeLimit.truncated", False) and "terminal_observation" in infos[i]
        ]
        bootstrap = ~np.asarray(dones, dtype=bool)
        next_rows = new_rows
        if truncated:
            next_rows = new_rows.copy()
            terminal = _stack(self.observation_space, [infos[i]["terminal_observation"] for i in truncated])
            next_rows[truncated] = self._rows(terminal, add=True)
            bootstrap[truncated] = True
        return next_rows, bootstrap

    def _record_episodes(self, dones: np.ndarray, infos: list[dict]) -> None:
        finished = np.flatnonzero(dones)
        self._episode_num += finished.size
        # Only the most recent episodes can stay in the (maxlen 100) buffers.
        for i in finished[-self.ep_info_buffer.maxlen :].tolist():
            episode = infos[i].get("episode")
            if episode is not None:
                self.ep_info_buffer.append(episode)
            success = infos[i].get("is_success")
            if success is not None:
                self.ep_success_buffer.append(float(success))

    def dump_logs(self) -> None:
        """Record and dump SB3-style statistics (``rollout/ep_rew_mean``, ``rollout/exploration_rate``, ...)."""
        elapsed = max((time.time_ns() - self._start_time) / 1e9, sys.float_info.epsilon)
        logger = self.logger
        logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        if self.ep_info_buffer:
            logger.record("rollout/ep_rew_mean", safe_mean([info["r"] for info in self.ep_info_buffer]))
            logger.record("rollout/ep_len_mean", safe_mean([info["l"] for info in self.ep_info_buffer]))
        if self.ep_success_buffer:
            logger.record("rollout/success_rate", safe_mean(list(self.ep_success_buffer)))
        logger.record("rollout/exploration_rate", self.exploration_rate)
        logger.record("train/learning_rate", self.learning_rate_value)
        logger.record("train/n_states", self.n_states)
        logger.record("time/fps", int((self.num_timesteps - self._num_timesteps_at_start) / elapsed))
        logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        logger.dump(step=self.num_timesteps)

    # ---------------------------------------------------------------------------------------------------- predict
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Greedy action(s) for one observation or a batch (SB3 signature; ``state``/``episode_start`` unused).

        Ties go to the lowest action; observations never seen in training get the first action. With
        ``deterministic=False`` a random action replaces the greedy one with probability ``exploration_rate``.

        Returns:
            ``(actions, None)``: a 0-d array for a single observation, ``(batch,)`` for a batch.
        """
        batch = batch_size_of(self.observation_space, observation)
        batched = observation if batch is not None else _add_batch_axis(self.observation_space, observation)
        rows = self._rows(batched, add=False)
        actions = np.zeros(rows.size, dtype=np.int64)
        known = rows >= 0
        if known.any():
            actions[known] = _greedy(self._behaviour_values(rows[known]))
        if not deterministic:
            explore = self._predict_rng.random(rows.size) < self.exploration_rate
            actions = np.where(explore, self._predict_rng.integers(self.n_actions, size=rows.size), actions)
        actions = actions + self._action_start
        return (actions if batch is not None else actions.reshape(())), None

    # ------------------------------------------------------------------------------------------------- save/load
    def _metadata(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "algorithm": ALGORITHM_NAME,
            "mmrl_version": __version__,
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "hyperparameters": {
                "learning_rate": self.lr_schedule.to_dict(),
                "gamma": self.gamma,
                "exploration_initial_eps": self.exploration_initial_eps,
                "exploration_final_eps": self.exploration_final_eps,
                "exploration_fraction": self.exploration_fraction,
                "exploration_schedule_kind": self.exploration_schedule_kind,
                "double_q": self.double_q,
                "initial_q_value": self.initial_q_value,
                "max_states": self.max_states,
                "seed": self.seed,
            },
            "schedules": {
                "exploration": None if self.exploration_schedule is None else self.exploration_schedule.to_dict(),
                "learning_rate": self.lr_schedule.to_dict(),
                "exploration_rate": self.exploration_rate,
                "learning_rate_value": self.learning_rate_value,
            },
            "state_index": self.indexer.describe(),
            "n_states": self.n_states,
            "n_actions": self.n_actions,
            "num_timesteps": self.num_timesteps,
            "episode_num": self._episode_num,
            "update_rule": "sequential-within-batch",
            "arrays": {name: {"shape": list(array.shape), "dtype": array.dtype.str} for name, array in arrays.items()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to one ``.npz`` file (arrays + ``metadata.json`` member), written atomically.

        Args:
            path: Destination; ``".npz"`` is appended when it has no suffix.

        Returns:
            The path written.
        """
        path = Path(path)
        if path.suffix == "":
            path = path.with_suffix(DEFAULT_SUFFIX)
        n_states = self.n_states
        arrays: dict[str, np.ndarray] = {"q_table": self._q_tables[0][:n_states]}
        if self.double_q:
            arrays["q_table_b"] = self._q_tables[1][:n_states]
        arrays["visit_counts"] = self._visit_counts[:n_states]
        arrays["rng_state"] = _rng_state_to_array(self._rng)
        arrays["predict_rng_state"] = _rng_state_to_array(self._predict_rng)
        arrays["counters"] = np.asarray([self.num_timesteps, self._episode_num], dtype=np.int64)
        arrays["schedule_values"] = np.asarray([self.exploration_rate, self.learning_rate_value], dtype=np.float64)
        arrays.update(self.indexer.to_arrays())
        arrays.update(_last_obs_arrays(self.observation_space, self._last_obs))
        arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
        metadata = self._metadata(arrays)
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(METADATA_MEMBER, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        env: GymEnvLike | None = None,
        device: str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **overrides: Any,
    ) -> QLearning:
        """Load a model saved by :meth:`save` (SB3's ``load`` signature).

        Args:
            path: File written by :meth:`save` (``".npz"`` is tried when ``path`` does not exist and has no suffix).
            env: Env to attach (its spaces must equal the saved ones); None for prediction only.
            device, print_system_info: Accepted for SB3 compatibility and ignored (NumPy runs on the CPU).
            force_reset: With ``False`` and an ``env``, keep the last observations saved with the model, so that
                ``learn(..., reset_num_timesteps=False)`` continues the episodes in flight (the caller restores
                the env's own state; the env must have as many copies as the saved one); with ``True`` (the
                default) the env is reset at the first ``learn``.
            custom_objects: Constructor arguments to replace, like ``overrides``.
            **overrides: Constructor arguments to override (e.g. ``verbose``, ``tensorboard_log``).

        Raises:
            FileNotFoundError: If the file does not exist.
            TypeError: If an override (or ``custom_objects`` key) is not a constructor argument, or has the wrong
                type; if ``env`` is not an env.
            ValueError: If the file is corrupted, truncated, not a QLearning file, or made for other spaces
                than ``env``'s (the message names the file), or if an override is out of range.
        """
        replacements = {**(custom_objects or {}), **overrides}
        _check_override_names(cls, replacements)
        path = Path(path)
        if not path.exists() and path.suffix == "":
            path = path.with_suffix(DEFAULT_SUFFIX)
        if not path.exists():
            raise FileNotFoundError(f"no QLearning file at {path}")
        metadata, arrays = _read_archive(path)
        with _file_errors(path):
            observation_space, action_space, arguments = _saved_arguments(metadata)
            # Built from the file's values alone first, so that a bad saved value is reported as the file's fault.
            model = cls(None, observation_space=observation_space, action_space=action_space, **arguments)
        if replacements:  # the caller's values: their errors are the caller's
            model = cls(
                None, observation_space=observation_space, action_space=action_space, **{**arguments, **replacements}
            )
        with _file_errors(path):
            model._restore(metadata, arrays)
            last_obs = _last_obs_from_arrays(arrays, observation_space) if env is not None and not force_reset else None
        if env is None:
            return model
        vec_env = wrap_env(env)
        try:
            model._check_spaces(vec_env.observation_space, vec_env.action_space, where="load")
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        model.env = vec_env
        model.n_envs = vec_env.num_envs
        if last_obs is not None:
            with _file_errors(path):
                saved_envs = batch_size_of(observation_space, last_obs)
            if saved_envs != model.n_envs:
                raise ValueError(
                    f"{path}: the saved last observations are for {saved_envs} env copies, the given env has "
                    f"{model.n_envs}; pass an env with {saved_envs} copies to continue the saved episodes, or "
                    f"force_reset=True to start new ones"
                )
            with _file_errors(path):
                model._last_rows = model._rows(last_obs, add=True)
            model._last_obs = last_obs
        return model

    def _restore(self, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Puts the saved tables, state index, random generators, counters and schedules into a fresh model."""
        exploration = metadata["schedules"]["exploration"]
        if exploration is not None:
            self.exploration_schedule = schedule_from_dict(exploration)
        n_states, n_actions = int(metadata["n_states"]), int(metadata["n_actions"])
        if n_actions != self.n_actions:
            raise ValueError(f"n_actions {n_actions} does not match the action space {self.action_space}")
        expected_tables = ["q_table", "q_table_b"] if self.double_q else ["q_table"]
        for name in [*expected_tables, "visit_counts"]:
            array = arrays.get(name)
            if array is None:
                raise ValueError(f"missing array {name!r}")
            if array.shape != (n_states, n_actions):
                raise ValueError(f"array {name!r} has shape {array.shape}, expected {(n_states, n_actions)}")
        if any(not np.issubdtype(arrays[name].dtype, np.floating) for name in expected_tables):
            raise ValueError("Q-tables must be floating point")
        self.indexer.load_arrays(arrays, n_states)
        capacity = max(n_states, self._visit_counts.shape[0])
        self._q_tables = [
            np.concatenate(
                [arrays[name].astype(np.float64), np.full((capacity - n_states, n_actions), self.initial_q_value)]
            )
            for name in expected_tables
        ]
        self._visit_counts = np.concatenate(
            [arrays["visit_counts"].astype(np.int64), np.zeros((capacity - n_states, n_actions), dtype=np.int64)]
        )
        for name in ("rng_state", "predict_rng_state", "counters", "schedule_values"):
            if name not in arrays:
                raise ValueError(f"missing array {name!r}")
        self._rng = _rng_from_array(arrays["rng_state"])
        self._predict_rng = _rng_from_array(arrays["predict_rng_state"])
        counters = arrays["counters"]
        if counters.shape != (2,) or counters.dtype.kind not in "iu" or counters.min() < 0:
            raise ValueError(f"array 'counters' must be 2 non-negative integers, got {counters!r}")
        self.num_timesteps, self._episode_num = int(counters[0]), int(counters[1])
        if self.num_timesteps != metadata["num_timesteps"]:
            raise ValueError("step counter in the arrays and in the metadata disagree")
        values = arrays["schedule_values"]
        if values.shape != (2,):
            raise ValueError(f"array 'schedule_values' must have 2 entries, got shape {values.shape}")
        self.exploration_rate, self.learning_rate_value = float(values[0]), float(values[1])


#: Constructor arguments that ``load`` takes from the file (or the env) and never as overrides.
_NOT_OVERRIDABLE = frozenset({"self", "env", "observation_space", "action_space"})


def _check_override_names(cls: type[QLearning], overrides: dict[str, Any]) -> None:
    """Raises ``TypeError`` for override names that are not constructor arguments (a typo in the caller's call)."""
    accepted = [name for name in inspect.signature(cls.__init__).parameters if name not in _NOT_OVERRIDABLE]
    unknown = [name for name in overrides if name not in accepted]
    if unknown:
        raise TypeError(
            f"{cls.__name__}.load() got unexpected keyword argument(s) {', '.join(map(repr, unknown))} (in the "
            f"overrides or custom_objects); constructor arguments that can be overridden: {', '.join(accepted)}. "
            f"Check the spelling, or leave the argument out"
        )


@contextlib.contextmanager
def _file_errors(path: Path) -> Iterator[None]:
    """Turns errors raised while reading a saved file's content into ``ValueError``s naming the file.

    ``KeyError``, ``TypeError``, ``AttributeError`` and ``IndexError`` mean that the metadata does not have the
    structure :meth:`QLearning.save` writes; a ``ValueError`` gets the path prepended.
    """
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(f"{path}: malformed QLearning file: {error!r}") from error
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {error}") from error


def _saved_arguments(metadata: dict[str, Any]) -> tuple[spaces.Space, spaces.Space, dict[str, Any]]:
    """The observation space, action space and constructor arguments stored in a file's metadata."""
    hyper = metadata["hyperparameters"]
    observation_space = space_from_json(metadata["observation_space"])
    action_space = space_from_json(metadata["action_space"])
    exploration = metadata["schedules"]["exploration"]
    kind = hyper["exploration_schedule_kind"]
    arguments: dict[str, Any] = {
        "learning_rate": schedule_from_dict(hyper["learning_rate"]),
        "gamma": hyper["gamma"],
        "exploration_initial_eps": hyper["exploration_initial_eps"],
        "exploration_final_eps": hyper["exploration_final_eps"],
        "exploration_fraction": hyper["exploration_fraction"],
        "exploration_schedule": schedule_from_dict(exploration) if kind == "custom" else kind,
        "double_q": hyper["double_q"],
        "initial_q_value": hyper["initial_q_value"],
        "max_states": hyper["max_states"],
        "seed": hyper["seed"],
    }
    return observation_space, action_space, arguments


_LAST_OBS = "last_obs"


def _member_name(key: Any) -> str:
    """A Dict key as one component of an array name: percent-encoded, dots included, so names stay unambiguous
    (plain keys such as ``image`` are unchanged, as in files written before Tuple support)."""
    return quote(str(key), safe="").replace(".", "%2E")


def _last_obs_arrays(space: spaces.Space, last_obs: Any) -> dict[str, np.ndarray]:
    """The batched last observations as named arrays, walking ``space``: ``last_obs`` for a leaf space,
    ``last_obs.<key>`` for a Dict member and ``last_obs.<position>`` for a Tuple member (nested:
    ``last_obs.<key>.<position>``). :func:`_last_obs_from_arrays` rebuilds the same structure."""
    if last_obs is None:
        return {}
    arrays: dict[str, np.ndarray] = {}

    def walk(subspace: spaces.Space, value: Any, name: str) -> None:
        if isinstance(subspace, spaces.Dict):
            for key, member in subspace.spaces.items():
                walk(member, value[key], f"{name}.{_member_name(key)}")
        elif isinstance(subspace, spaces.Tuple):
            for position, member in enumerate(subspace.spaces):
                walk(member, value[position], f"{name}.{position}")
        else:
            arrays[name] = np.asarray(value)

    walk(space, last_obs, _LAST_OBS)
    return arrays


def _last_obs_from_arrays(arrays: dict[str, np.ndarray], space: spaces.Space) -> Any:
    """The last observations saved by :func:`_last_obs_arrays`, as ``space``'s structure (``None`` if none).

    Raises:
        ValueError: If some members of the structure are saved and others are missing.
    """
    prefix = f"{_LAST_OBS}."
    if not any(name == _LAST_OBS or name.startswith(prefix) for name in arrays):
        return None
    if isinstance(space, spaces.Tuple) and _LAST_OBS in arrays and f"{prefix}0" not in arrays:
        # Files written before Tuple support stacked same-shaped members into one array.
        stacked = arrays[_LAST_OBS]
        if stacked.ndim == 0 or stacked.shape[0] != len(space.spaces):
            raise ValueError(f"array {_LAST_OBS!r} of shape {stacked.shape} does not fit the observation space {space}")
        arrays = {f"{prefix}{position}": stacked[position] for position in range(len(space.spaces))}

    def member_name(name: str, key: Any, member: spaces.Space) -> str:
        encoded, raw = f"{name}.{_member_name(key)}", f"{name}.{key}"
        # Earlier files named the leaves of a top-level Dict by the raw key (different only for keys with '.', ...).
        legacy = encoded not in arrays and raw in arrays and not isinstance(member, spaces.Dict | spaces.Tuple)
        return raw if legacy else encoded

    def build(subspace: spaces.Space, name: str) -> Any:
        if isinstance(subspace, spaces.Dict):
            return {key: build(member, member_name(name, key, member)) for key, member in subspace.spaces.items()}
        if isinstance(subspace, spaces.Tuple):
            return tuple(build(member, f"{name}.{position}") for position, member in enumerate(subspace.spaces))
        if name not in arrays:
            raise ValueError(f"array {name!r} of the saved last observations is missing")
        return arrays[name]

    return build(space, _LAST_OBS)


def _read_archive(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate the metadata and arrays of a saved file (never unpickles)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if METADATA_MEMBER not in names:
                raise ValueError(f"{path}: not a QLearning file (no {METADATA_MEMBER} member)")
            try:
                metadata = json.loads(archive.read(METADATA_MEMBER).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise ValueError(f"{path}: {METADATA_MEMBER} is not valid JSON ({error})") from error
            if not isinstance(metadata, dict):
                raise ValueError(
                    f"{path}: not a QLearning file ({METADATA_MEMBER} holds a JSON {type(metadata).__name__}, a "
                    f"QLearning save holds an object with 'format': {FILE_FORMAT!r}); load it with the tool that "
                    f"wrote it, or pass a file written by QLearning.save()"
                )
            if metadata.get("format") != FILE_FORMAT:
                raise ValueError(f"{path}: not a QLearning file (format {metadata.get('format')!r})")
            if metadata.get("algorithm") != ALGORITHM_NAME:
                raise ValueError(f"{path}: saved by algorithm {metadata.get('algorithm')!r}, not {ALGORITHM_NAME}")
            if metadata.get("format_version") != FILE_FORMAT_VERSION:
                raise ValueError(
                    f"{path}: file format version {metadata.get('format_version')!r} is not supported "
                    f"(this is mmrl {__version__}, format {FILE_FORMAT_VERSION})"
                )
            arrays: dict[str, np.ndarray] = {}
            described = metadata.get("arrays")
            if not isinstance(described, dict):
                raise ValueError(f"{path}: metadata lists no arrays")
            for name, spec in described.items():
                if not isinstance(spec, dict):
                    raise ValueError(
                        f"{path}: not a QLearning file (its metadata describes array {name!r} as "
                        f"{type(spec).__name__} {spec!r}, a QLearning save gives each array a dict with its shape and "
                        f"dtype); pass a file written by QLearning.save()"
                    )
                member = f"{name}.npy"
                if member not in names:
                    raise ValueError(f"{path}: array {name!r} listed in the metadata is missing")
                array = np.load(io.BytesIO(archive.read(member)), allow_pickle=False)
                if list(array.shape) != spec.get("shape") or array.dtype.str != spec.get("dtype"):
                    raise ValueError(
                        f"{path}: array {name!r} is {array.shape} {array.dtype.str}, the metadata says "
                        f"{spec.get('shape')} {spec.get('dtype')}"
                    )
                arrays[name] = array
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: corrupted or truncated QLearning file ({error})") from error
    except (zlib.error, EOFError, OSError) as error:
        raise ValueError(f"{path}: corrupted or truncated QLearning file ({error!r})") from error
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: corrupted QLearning file ({error})") from error
    return metadata, arrays

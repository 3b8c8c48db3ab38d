"""Tabular Q-learning (Watkins) in NumPy, with the surface of an SB3 model (:class:`QLearning`).

Epsilon-greedy while learning; :meth:`QLearning.predict` is greedy (ties: lowest action; unseen observations: the
first action).

* **Vectorised updates.** The N transitions of one vectorised step are applied at once, with the result of
  applying them one after the other (:func:`~mmrl.agents.table_update.sequential_update`); targets come from the
  table as it was before the batch.
* **Terminal vs truncated.** No bootstrap when an episode terminates; on truncation the target bootstraps from
  the terminal observation (:meth:`~mmrl.agents.q_table.QTable.bootstrap_rows`). Gymnasium vector envs go through
  :class:`~mmrl.agents.vec_env_adapter.GymnasiumVecEnvAdapter`; its ``NEXT_STEP`` auto-reset steps are skipped.
* **States.** ``Discrete`` observations index the table directly, others go through a
  :class:`~mmrl.agents.state_indexer.StateIndexer` of at most ``max_states`` rows (see :mod:`mmrl.agents.q_table`).
* **Save format.** ``save("model")`` writes one ``model.npz`` (see :mod:`mmrl.agents.qlearning_file`), atomically.
* **Schedules** are functions of the absolute step counter (:mod:`mmrl.agents.schedules`). The exploration
  schedule built from ``exploration_fraction`` is fixed at the first ``learn`` call (or any call with
  ``reset_num_timesteps=True``) to span ``exploration_fraction * total_timesteps`` steps, and kept by
  ``learn(..., reset_num_timesteps=False)``, so resumed training continues the same curve.

References:
    Watkins & Dayan (1992), "Q-learning", Machine Learning 8; van Hasselt (2010), "Double Q-learning", NeurIPS;
    Sutton & Barto (2018), *Reinforcement Learning: An Introduction*, 2nd ed., 6.5, 6.7; Raffin et al. (2021),
    "Stable-Baselines3", JMLR 22 (the model/callback/VecEnv interface reproduced here).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import configure_logger, safe_mean
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, unwrap_vec_normalize

from mmrl.agents.callbacks import init_callback
from mmrl.agents.hyperparameters import (
    check_exploration_schedule,
    check_finite,
    check_learning_rate,
    check_override_names,
    check_unit_interval,
)
from mmrl.agents.q_table import QTable
from mmrl.agents.qlearning_file import (
    ALGORITHM_NAME,
    DEFAULT_SUFFIX,
    FILE_FORMAT,
    FILE_FORMAT_VERSION,
    MAX_LOAD_BYTES,
    file_errors,
    last_obs_arrays,
    last_obs_from_arrays,
    read_archive,
    saved_arguments,
    saved_progress,
    write_archive,
)
from mmrl.agents.rng_state import rng_state_to_array
from mmrl.agents.schedules import Schedule, make_schedule, schedule_from_dict
from mmrl.agents.state_indexer import batch_size_of
from mmrl.agents.table_update import greedy_actions, sequential_update
from mmrl.agents.vec_env_adapter import GymEnvLike, GymnasiumVecEnvAdapter, add_batch_axis, wrap_env
from mmrl.checks import check_int
from mmrl.spaces_json import space_to_json

__all__ = [
    "ALGORITHM_NAME",
    "FILE_FORMAT",
    "FILE_FORMAT_VERSION",
    "GymnasiumVecEnvAdapter",
    "QLearning",
    "sequential_update",
    "wrap_env",
]


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
        gamma = check_unit_interval("gamma", gamma, "the discount factor")
        lr_schedule = check_learning_rate(learning_rate)
        exploration_initial_eps = check_unit_interval(
            "exploration_initial_eps", exploration_initial_eps, "the probability of a random action at step 0"
        )
        exploration_final_eps = check_unit_interval(
            "exploration_final_eps", exploration_final_eps, "the probability of a random action after the decay"
        )
        exploration_fraction = check_unit_interval(
            "exploration_fraction", exploration_fraction, "the fraction of the first learn() call spent decaying"
        )
        check_exploration_schedule(exploration_schedule)
        initial_q_value = check_finite("initial_q_value", initial_q_value, "the value of unvisited table entries")
        max_states = check_int("max_states", max_states, low=1, hint=" (the most rows of a hashed state table)")
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

        self.table = QTable(observation_space, self.n_actions, self.double_q, self.initial_q_value, self.max_states)
        self.indexer = self.table.indexer

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
            if json.dumps(space_to_json(given), sort_keys=True) != json.dumps(space_to_json(expected), sort_keys=True):
                raise ValueError(f"{where}: {name} space {given} differs from the model's {expected}")

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
        return self.table.rows(observations, add)

    @property
    def n_states(self) -> int:
        """Number of table rows in use."""
        return self.indexer.n_states

    @property
    def q_table(self) -> np.ndarray:
        """``(n_states, n_actions)`` action values (copy). For Double Q, the mean of the two tables."""
        tables = self.table.tables
        if self.double_q:
            return (tables[0][: self.n_states] + tables[1][: self.n_states]) / 2.0
        return tables[0][: self.n_states].copy()

    @property
    def q_tables(self) -> tuple[np.ndarray, ...]:
        """The raw table(s) (copies): one, or ``(Q_A, Q_B)`` for Double Q."""
        return tuple(table[: self.n_states].copy() for table in self.table.tables)

    @property
    def visit_counts(self) -> np.ndarray:
        """``(n_states, n_actions)`` number of updates of each pair (copy)."""
        return self.table.visits[: self.n_states].copy()

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
        callback = init_callback(self, callback, progress_bar)
        if callback is not None:
            callback.on_training_start(locals(), globals())
            callback.on_rollout_start()
        env, table = self.env, self.table
        assert env is not None
        logging_enabled = bool(self.logger.output_formats)
        innermost = env.unwrapped
        next_step_adapter = (
            innermost
            if isinstance(innermost, GymnasiumVecEnvAdapter) and innermost.autoreset_mode == AutoresetMode.NEXT_STEP
            else None
        )
        episodes_at_last_dump = self._episode_num
        assert self.exploration_schedule is not None  # set by _setup_learn
        while self.num_timesteps < total_timesteps:
            self.exploration_rate = self.exploration_schedule(self.num_timesteps)
            self.learning_rate_value = self.lr_schedule(self.num_timesteps)
            rows = self._last_rows
            assert rows is not None  # set by _setup_learn, kept by every step
            actions = self.table.explore_actions(rows, self.exploration_rate, self._rng)
            env.step_async(actions + self._action_start)
            new_obs, rewards, dones, infos = env.step_wait()
            self.num_timesteps += env.num_envs
            new_rows = self._rows(new_obs, add=True)
            any_done = bool(np.any(dones))
            next_rows, bootstrap = (
                self.table.bootstrap_rows(self.observation_space, new_rows, dones, infos)
                if any_done
                else (new_rows, True)
            )
            rewards_float = np.asarray(rewards, dtype=np.float64)
            step = (self.learning_rate_value, self.gamma, self._rng)
            if next_step_adapter is not None and next_step_adapter.autoreset_mask.any():
                real = ~next_step_adapter.autoreset_mask  # NEXT_STEP auto-reset steps are no transitions
                if real.any():
                    bootstrap = np.broadcast_to(bootstrap, real.shape)[real]
                    table.update(rows[real], actions[real], rewards_float[real], next_rows[real], bootstrap, *step)
            else:
                table.update(rows, actions, rewards_float, next_rows, bootstrap, *step)
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

    def _record_episodes(self, dones: np.ndarray, infos: list[dict]) -> None:
        finished = np.flatnonzero(dones)
        self._episode_num += finished.size
        # Only the most recent episodes can stay in the (maxlen 100) buffers.
        for i in finished[-(self.ep_info_buffer.maxlen or 1) :].tolist():
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
        batched = observation if batch is not None else add_batch_axis(self.observation_space, observation)
        rows = self._rows(batched, add=False)
        actions = np.zeros(rows.size, dtype=np.int64)
        known = rows >= 0
        if known.any():
            actions[known] = greedy_actions(self.table.behaviour_values(rows[known]))
        if not deterministic:
            explore = self._predict_rng.random(rows.size) < self.exploration_rate
            actions = np.where(explore, self._predict_rng.integers(self.n_actions, size=rows.size), actions)
        actions = actions + self._action_start
        return (actions if batch is not None else actions.reshape(())), None

    # ------------------------------------------------------------------------------------------------- save/load
    def _metadata(self) -> dict[str, Any]:
        return {
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
        arrays = self.table.to_arrays()
        arrays["rng_state"] = rng_state_to_array(self._rng)
        arrays["predict_rng_state"] = rng_state_to_array(self._predict_rng)
        arrays["counters"] = np.asarray([self.num_timesteps, self._episode_num], dtype=np.int64)
        arrays["schedule_values"] = np.asarray([self.exploration_rate, self.learning_rate_value], dtype=np.float64)
        arrays.update(self.indexer.to_arrays())
        arrays.update(last_obs_arrays(self.observation_space, self._last_obs))
        arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
        write_archive(path, self._metadata(), arrays)
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
        max_bytes: int = MAX_LOAD_BYTES,
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
            max_bytes: Largest total size of the file's arrays (default 1 GiB); a file declaring more is refused
                before anything is decompressed. Raise it for a trusted file with a larger table.
            custom_objects: Constructor arguments to replace, like ``overrides``.
            **overrides: Constructor arguments to override (e.g. ``verbose``, ``tensorboard_log``).

        Raises:
            FileNotFoundError: If the file does not exist.
            TypeError: If an override (or ``custom_objects`` key) is not a constructor argument, or has the wrong
                type; if ``env`` is not an env.
            ValueError: If the file is corrupted, truncated, not a QLearning file, larger than ``max_bytes``, holds
                NaN or infinite action values, or is made for other spaces than ``env``'s (the message names the
                file), or if an override is out of range.
        """
        replacements = {**(custom_objects or {}), **overrides}
        check_override_names(cls, replacements)
        path = Path(path)
        if not path.exists() and path.suffix == "":
            path = path.with_suffix(DEFAULT_SUFFIX)
        if not path.exists():
            raise FileNotFoundError(f"no QLearning file at {path}")
        metadata, arrays = read_archive(path, check_int("max_bytes", max_bytes, low=0))
        with file_errors(path):
            observation_space, action_space, arguments = saved_arguments(metadata)
            # Built from the file's values alone first, so that a bad saved value is reported as the file's fault.
            model = cls(None, observation_space=observation_space, action_space=action_space, **arguments)
        if replacements:  # the caller's values: their errors are the caller's
            model = cls(
                None, observation_space=observation_space, action_space=action_space, **{**arguments, **replacements}
            )
        with file_errors(path):
            model._restore(metadata, arrays)
            last_obs = last_obs_from_arrays(arrays, observation_space) if env is not None and not force_reset else None
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
            with file_errors(path):
                saved_envs = batch_size_of(observation_space, last_obs)
            if saved_envs != model.n_envs:
                raise ValueError(
                    f"{path}: the saved last observations are for {saved_envs} env copies, the given env has "
                    f"{model.n_envs}; pass an env with {saved_envs} copies to continue the saved episodes, or "
                    f"force_reset=True to start new ones"
                )
            with file_errors(path):
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
        self.table.load_arrays(arrays, n_states)
        progress = saved_progress(arrays)
        self._rng, self._predict_rng = progress.rng, progress.predict_rng
        self.num_timesteps, self._episode_num = progress.num_timesteps, progress.episode_num
        if self.num_timesteps != metadata["num_timesteps"]:
            raise ValueError("step counter in the arrays and in the metadata disagree")
        self.exploration_rate, self.learning_rate_value = progress.exploration_rate, progress.learning_rate_value

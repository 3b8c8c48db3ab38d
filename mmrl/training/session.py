"""A training session: the training and evaluation envs and the model, built new or resumed from a checkpoint.

Nothing here writes to the run directory: :func:`build_session` is called before the run directory is created, so
that a setting the env, the extractor or the algorithm refuses costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import pickle
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.algorithms import get_spec
from mmrl.training.checkpointing import restore_rng_states
from mmrl.training.config import EXTRACTOR_FIELDS, TrainConfig
from mmrl.training.learning_rate import make_learning_rate
from mmrl.training.run_dir import METRICS_FILE, TB_DIR, Checkpoint, load_env_state, load_model

__all__ = ["EVAL_SEED_OFFSET", "Session", "base_env", "build_model", "build_session"]

#: Evaluation envs are seeded ``seed + EVAL_SEED_OFFSET``: seeds the training envs never see.
EVAL_SEED_OFFSET = 1_000_000


@dataclass
class Session:
    """What :func:`mmrl.train` builds before it touches the run directory: envs, model, and the resumed history."""

    venv: Any
    """The training envs in an :class:`~mmrl.training.monitor.EpisodeMonitor`."""
    eval_env: Any
    """The evaluation envs (seeded ``seed + EVAL_SEED_OFFSET``)."""
    model: Any
    evaluations: list[dict[str, Any]]
    """Evaluation history (``{"timesteps", "mean_return", ...}`` per evaluation)."""
    best: float
    """Best mean evaluation return so far (``-inf``: none yet)."""
    log_bytes: int | None = None
    """Size of ``monitor.csv`` at the resumed checkpoint (None: not recorded, or a new run)."""
    cloning: dict[str, Any] | None = None
    """Stats of the behaviour-cloning warm start (``demonstrations``), or None."""

    def close(self) -> None:
        """Close both VecEnvs."""
        self.venv.close()
        self.eval_env.close()


def base_env(venv: Any) -> Any:
    """The innermost VecEnv below any VecEnv wrappers."""
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv


def make_env(config: TrainConfig, n_envs: int, seed: int) -> Any:
    """``n_envs`` envs of ``config`` in an :class:`EpisodeMonitor` (no log file until ``open_log``): mmrl's batched
    VecEnv for ``mmrl/`` ids, else a ``DummyVecEnv`` of :func:`foreign_env` copies."""
    from mmrl.envs.vec_env import make_vec_env
    from mmrl.training.monitor import EpisodeMonitor

    if config.env_id.startswith("mmrl/"):
        venv = make_vec_env(config.env_id, n_envs=n_envs, seed=seed, env_kwargs=dict(config.env_kwargs))
    else:
        from stable_baselines3.common.vec_env import DummyVecEnv

        factory = functools.partial(foreign_env, config)
        venv = DummyVecEnv([factory] * n_envs)
        venv.seed(seed)
    try:
        return EpisodeMonitor(venv)
    except BaseException:
        venv.close()
        raise


def foreign_env(config: TrainConfig) -> Any:
    """One env of another package (``BabyAI-GoToObj-v0``, ``CartPole-v1``) with the wrappers mmrl chose for it.

    The first call on a new config runs :func:`mmrl.wrappers.auto_wrap` (which logs one line of what it chose)
    and records its spec in ``config.env_wrappers``; later calls, resumes and evaluations re-apply that spec.
    """
    from mmrl.wrappers.auto import make_wrapped, wrap_spec

    env = make_wrapped(config.env_id, config.env_wrappers, **dict(config.env_kwargs))
    if config.env_wrappers is None:
        config.env_wrappers = wrap_spec(env)
    return env


#: TrainConfig fields passed to the extractor as they are: its settings and the pre-trained weights (mmrl.pretrain).
EXTRACTOR_KEYS = (*EXTRACTOR_FIELDS, "pretrained", "freeze")


def build_model(config: TrainConfig, venv: Any, tb_dir: Path) -> Any:
    """A new model of ``config.algo`` on ``venv``: Dict observations get the mmrl extractor.

    Raises:
        ValueError: For a combination of settings the algorithm refuses (SB3 checks them with ``assert``).
    """
    from gymnasium import spaces

    spec = get_spec(config.algo)
    model_class = spec.load_class()
    if not spec.sb3:
        return model_class(venv, seed=config.seed, tensorboard_log=str(tb_dir), **config.hyperparams)
    if str(config.device).split(":")[0] == "meta":
        raise ValueError("device=meta holds no tensor data, so no model can train on it; use cpu, cuda or auto")
    hyperparams = dict(config.hyperparams)
    if config.learning_rate_schedule not in (None, "constant"):
        default_rate = inspect.signature(model_class).parameters["learning_rate"].default
        rate = hyperparams.get("learning_rate", default_rate)
        hyperparams["learning_rate"] = make_learning_rate(config.learning_rate_schedule, rate)
    policy_extra = {key: hyperparams.pop(key) for key in spec.policy_hyperparams if key in hyperparams}
    kwargs: dict[str, Any]
    if isinstance(venv.observation_space, spaces.Dict):
        from mmrl.extractor import policy_kwargs

        extractor = {key: getattr(config, key) for key in EXTRACTOR_KEYS if getattr(config, key) is not None}
        policy, kwargs = spec.dict_policy, policy_kwargs(**extractor)
        if spec.replay_buffer and int(hyperparams.get("n_steps", 1)) > 1:  # SB3 refuses n-step on Dict spaces
            from mmrl.agents.replay_buffer import NStepDictReplayBuffer

            gamma = hyperparams.get("gamma", inspect.signature(model_class).parameters["gamma"].default)
            hyperparams["replay_buffer_class"] = NStepDictReplayBuffer
            hyperparams["replay_buffer_kwargs"] = {"n_steps": hyperparams.pop("n_steps"), "gamma": gamma}
    else:
        policy, kwargs = spec.flat_policy, ({"net_arch": config.net_arch} if config.net_arch else {})
    kwargs.update(policy_extra)
    try:
        model = model_class(
            policy,
            venv,
            policy_kwargs=kwargs,
            seed=config.seed,
            tensorboard_log=str(tb_dir),
            device=config.device,
            verbose=0,
            **hyperparams,
        )
    except AssertionError as error:
        detail = str(error).strip() or "a setting check failed"
        raise ValueError(
            f"invalid {config.algo} settings for {config.env_id} (n_envs={config.n_envs}, "
            f"{', '.join(f'{k}={v}' for k, v in sorted(config.hyperparams.items()))}): {detail}; fix the value with "
            "--set KEY=VALUE or in the preset"
        ) from None
    if config.pretrained is not None:
        from mmrl.pretrain.cloning import load_policy_into  # a behaviour-cloned run's heads too

        load_policy_into(model.policy, config.pretrained)
    return model


def build_session(
    config: TrainConfig, checkpoint: Checkpoint | None, run_path: Path, progress: bool = False
) -> Session:
    """Build the training and evaluation envs and the model (new, or loaded from ``checkpoint`` with the env
    state, replay buffer, RNG states, monitor counters and evaluation history). A new model with
    ``config.demonstrations`` is first cloned from the planner (``progress``: its progress bars). Writes nothing.

    Raises:
        ValueError: For settings the env, the extractor or the algorithm refuse.
    """
    assert config.n_envs is not None and config.eval_episodes is not None
    venv = make_env(config, config.n_envs, config.seed)
    eval_env = None
    try:
        eval_env = make_env(config, min(config.n_envs, config.eval_episodes), config.seed + EVAL_SEED_OFFSET)
        if checkpoint is None:
            model = build_model(config, venv, run_path / TB_DIR)
            cloning = _clone_demonstrations(config, model, progress) if config.demonstrations else None
            return Session(venv, eval_env, model, [], -np.inf, cloning=cloning)
        return _resume_session(config, checkpoint, run_path, venv, eval_env)
    except BaseException:
        venv.close()
        if eval_env is not None:
            eval_env.close()
        raise


def _clone_demonstrations(config: TrainConfig, model: Any, progress: bool) -> dict[str, Any]:
    """Warm-start ``model``'s policy by cloning ``config.demonstrations`` planner frames (one env of ``config``)."""
    from mmrl.pretrain.cloning import DEFAULT_UPDATES, clone_into
    from mmrl.pretrain.collect import make_env as make_single_env

    assert config.demonstrations
    env = make_single_env(config.env_id, dict(config.env_kwargs))
    try:
        return clone_into(
            model.policy,
            env,
            config.demonstrations,
            updates=config.demonstration_updates or DEFAULT_UPDATES,
            seed=config.seed,
            value_gamma=float(model.gamma) if config.demonstration_values else None,
            progress=progress,
            demonstrator=config.demonstrator or "planner",
            rounds=config.demonstration_rounds or 0,
        )
    finally:
        env.close()


def _resume_session(config: TrainConfig, checkpoint: Checkpoint, run_path: Path, venv: Any, eval_env: Any) -> Session:
    spec = get_spec(config.algo)
    base = base_env(venv)
    state = checkpoint.state
    env_restored = False
    if checkpoint.env_state_path is not None and hasattr(base, "set_state"):
        base.set_state(load_env_state(checkpoint.env_state_path))
        env_restored = True
    kwargs: dict[str, Any] = {"tensorboard_log": str(run_path / TB_DIR), "force_reset": not env_restored}
    if spec.sb3:
        kwargs.update(device=config.device)
    with _damaged_file(checkpoint.model_path):
        model = load_model(checkpoint.model_path, env=venv, algo=config.algo, **kwargs)
    if spec.replay_buffer:
        if checkpoint.replay_buffer_path is not None:
            with _damaged_file(checkpoint.replay_buffer_path):
                model.load_replay_buffer(checkpoint.replay_buffer_path)
        else:
            warnings.warn(
                f"{run_path}: the replay buffer of the checkpoint at {checkpoint.steps} steps is missing "
                f"(replay_buffer_{checkpoint.steps}_steps.pkl); {config.algo} resumes with an EMPTY replay buffer, so "
                f"it collects learning_starts steps again and the result differs from an uninterrupted run",
                RuntimeWarning,
                stacklevel=4,
            )
    restore_rng_states(state.get("rng", {}))
    if state.get("action_space_rng") is not None:
        # DQN explores with action_space.sample(): its generator is part of the training state
        model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    monitor = state.get("monitor")
    if monitor is not None:
        # the episodes running at the checkpoint continue (without an env state, SB3 resets the env and the
        # counters at the start of learn)
        venv.restore_counters(monitor)
    evaluations, best = _resumed_evaluations(state, run_path, checkpoint.steps)
    log_bytes = None if monitor is None else monitor.get("log_bytes")
    return Session(venv, eval_env, model, evaluations, best, log_bytes)


@contextlib.contextmanager
def _damaged_file(path: Path) -> Iterator[None]:
    """Turn the errors a truncated or damaged checkpoint file raises while it is read into one-line ValueErrors."""
    try:
        yield
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path}: damaged checkpoint file ({type(error).__name__}); resume from an earlier checkpoint by "
            "deleting this checkpoint's state_<N>_steps.json, or start a new run"
        ) from None


def _resumed_evaluations(state: dict[str, Any], run_path: Path, steps: int) -> tuple[list[dict[str, Any]], float]:
    """The evaluation history and best return at a checkpoint; a ``metrics.json`` written at the same step may
    hold a later final evaluation than the checkpoint (runs whose checkpoint lacks it)."""
    evaluations = list(state.get("evaluations", []))
    best_saved = state.get("best_mean_return")
    metrics = _read_metrics(run_path)
    if metrics is not None and metrics.get("timesteps") == steps:
        recorded = metrics.get("evaluations")
        if isinstance(recorded, list) and len(recorded) > len(evaluations):
            evaluations = list(recorded)
        metrics_best = metrics.get("best_mean_return")
        if isinstance(metrics_best, (int, float)) and (best_saved is None or metrics_best > best_saved):
            best_saved = metrics_best
    return evaluations, (-np.inf if best_saved is None else float(best_saved))


def _read_metrics(run_path: Path) -> dict[str, Any] | None:
    try:
        metrics = json.loads((run_path / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None

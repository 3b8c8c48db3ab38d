"""``train(...)``: build envs and model from a resolved :class:`TrainConfig`, learn, evaluate, write the run dir."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmrl.atomic import atomic_path, write_json, write_text
from mmrl.checks import check_int
from mmrl.training.config import TrainConfig
from mmrl.training.interrupts import GracefulInterrupt, sigint_deferred, sigint_ignored
from mmrl.training.presets import complete_config, resolve_config
from mmrl.training.run_dir import (
    CONFIG_FILE,
    METRICS_FILE,
    MONITOR_FILE,
    TB_DIR,
    TOKENIZER_FILE,
    RunDir,
    check_run_dir,
    checkpoint_paths,
    default_run_dir,
    load_env_state,
    load_model,
    model_suffix,
    prepare_run_dir,
    save_env_state,
    write_metrics,
)

__all__ = ["EVAL_SEED_OFFSET", "TrainResult", "evaluate_model", "train"]

#: Evaluation envs are seeded ``seed + EVAL_SEED_OFFSET``: seeds the training envs never see.
EVAL_SEED_OFFSET = 1_000_000


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    """The run directory (layout: :mod:`mmrl.training.run_dir`)."""
    model: Any
    """The trained model (SB3 ``PPO``/``A2C``/``DQN`` or :class:`mmrl.agents.QLearning`)."""
    metrics: dict[str, Any]
    """The content of ``metrics.json`` (final evaluation, timesteps, wall time, fps, interrupted)."""
    config: TrainConfig
    """The resolved configuration (``config.yaml``)."""

    @property
    def interrupted(self) -> bool:
        """True if training was stopped with Ctrl-C (the model was still saved)."""
        return bool(self.metrics.get("interrupted", False))


def evaluate_model(model: Any, venv: Any, n_episodes: int, seed: int, deterministic: bool = True) -> dict[str, Any]:
    """Run ``n_episodes`` episodes on ``venv`` (reseeded with ``seed``), greedy unless ``deterministic=False``.

    Episodes are spread evenly over the envs (as SB3's ``evaluate_policy``) so short episodes are not favoured.

    Returns:
        ``{"mean_return", "std_return", "success_rate", "episodes", "mean_length"}`` (``success_rate`` is None
        when the env reports no ``is_success``).
    """
    n_envs = venv.num_envs
    targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
    counts = np.zeros(n_envs, dtype=int)
    returns, lengths, successes = [], [], []
    current_return = np.zeros(n_envs)
    current_length = np.zeros(n_envs, dtype=int)
    venv.seed(seed)
    obs = venv.reset()
    while (counts < targets).any():
        actions, _ = model.predict(obs, deterministic=deterministic)
        obs, rewards, dones, infos = venv.step(actions)
        current_return += rewards
        current_length += 1
        for i in np.flatnonzero(dones):
            if counts[i] < targets[i]:
                returns.append(current_return[i])
                lengths.append(current_length[i])
                if "is_success" in infos[i]:
                    successes.append(float(infos[i]["is_success"]))
                counts[i] += 1
            current_return[i] = 0.0
            current_length[i] = 0
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "success_rate": float(np.mean(successes)) if successes else None,
        "episodes": len(returns),
        "mean_length": float(np.mean(lengths)),
    }


# ------------------------------------------------------------------------------------------------------ RNG states
def _rng_states() -> dict[str, Any]:
    import torch

    return {
        "python": _to_json(random.getstate()),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state().tolist(),
    }


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def _restore_rng_states(states: dict[str, Any]) -> None:
    import torch

    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    if "torch" in states:
        torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))


# ------------------------------------------------------------------------------------------------ env and models
def _make_env(config: TrainConfig, n_envs: int, seed: int) -> Any:
    """The env wrapped in an :class:`EpisodeMonitor` (no log file until ``open_log``)."""
    from mmrl.envs.vec_env import make_vec_env
    from mmrl.training.monitor import EpisodeMonitor

    venv = make_vec_env(config.env_id, n_envs=n_envs, seed=seed, env_kwargs=dict(config.env_kwargs))
    try:
        return EpisodeMonitor(venv)
    except BaseException:
        venv.close()
        raise


def _base_env(venv: Any) -> Any:
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv


def _sb3_class(algo: str) -> Any:
    from stable_baselines3 import A2C, DQN, PPO

    return {"ppo": PPO, "a2c": A2C, "dqn": DQN}[algo]


def _build_model(config: TrainConfig, venv: Any, tb_dir: Path) -> Any:
    from gymnasium import spaces

    if config.algo == "qlearning":
        from mmrl.agents import QLearning

        return QLearning(venv, seed=config.seed, tensorboard_log=str(tb_dir), **config.hyperparams)
    if isinstance(venv.observation_space, spaces.Dict):
        from mmrl.extractor import policy_kwargs

        extractor = {
            key: getattr(config, key)
            for key in ("fusion", "text_encoder", "image_encoder", "features_dim", "net_arch")
            if getattr(config, key) is not None
        }
        policy, kwargs = "MultiInputPolicy", policy_kwargs(**extractor)
    else:
        policy, kwargs = "MlpPolicy", ({"net_arch": config.net_arch} if config.net_arch else {})
    try:
        return _sb3_class(config.algo)(
            policy,
            venv,
            policy_kwargs=kwargs,
            seed=config.seed,
            tensorboard_log=str(tb_dir),
            device=config.device,
            verbose=0,
            **config.hyperparams,
        )
    except AssertionError as error:
        # SB3 checks combinations of settings with asserts (batch_size > 1, n_steps * n_envs > 1, ...)
        detail = str(error).strip() or "a setting check failed"
        raise ValueError(
            f"invalid {config.algo} settings for {config.env_id} (n_envs={config.n_envs}, "
            f"{', '.join(f'{k}={v}' for k, v in sorted(config.hyperparams.items()))}): {detail}; fix the value with "
            "--set KEY=VALUE or in the preset"
        ) from None


def _save_model(model: Any, path: Path, algo: str) -> None:
    if algo == "qlearning":
        model.save(path)  # QLearning.save is atomic
    else:
        with atomic_path(path) as tmp:
            model.save(tmp)


# ------------------------------------------------------------------------------------------------------ train
def train(
    algo: str | TrainConfig,
    env_id: str | None = None,
    timesteps: int | None = None,
    seed: int | None = None,
    n_envs: int | None = None,
    preset: str | os.PathLike[str] | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    fusion: str | None = None,
    text_encoder: str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    resume: str | os.PathLike[str] | None = None,
    progress_bar: bool = True,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    checkpoint_freq: int | None = None,
    runs_root: str | os.PathLike[str] = "runs",
    stop_at: int | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train an agent and write a run directory (:mod:`mmrl.training.run_dir`).

    Example::

        result = mmrl.train("ppo", "mmrl/GoTo-5x5-v0", timesteps=50_000)
        print(result.run_dir, result.metrics["success_rate"])

    Args:
        algo: ``"ppo"``, ``"a2c"``, ``"dqn"``, ``"qlearning"``, or a :class:`TrainConfig` (then ``env_id``,
            ``timesteps``, ``seed``, ``n_envs``, ``preset``, ``overrides``, ``fusion``, ``text_encoder``,
            ``eval_freq``, ``eval_episodes`` and ``checkpoint_freq`` must be left unset/ignored).
        env_id: Registered env id (e.g. ``"mmrl/GoTo-5x5-v0"``).
        timesteps: Total env steps (default: the preset's). With ``resume``: the new total.
        seed: Seed of model and training envs (default 0; with ``resume``: the run's own, so only that seed may be
            given).
        n_envs: Parallel envs (default: the preset's).
        preset: Preset YAML (default ``agents/<algo>.yaml``; schema in :mod:`mmrl.training.presets`).
        overrides: ``["key=value", ...]`` or a dict overriding preset keys (``env_kwargs.<name>`` for env args).
        fusion: Extractor fusion (overrides the preset).
        text_encoder: Extractor text encoder (overrides the preset).
        run_dir: Run directory (default ``<runs_root>/<env>/<algo>/<seed>-<time>``).
        force: Replace an existing run directory at ``run_dir``. It is replaced only once the new run's envs and
            model are built, so a bad setting never costs the old run.
        resume: A run directory to continue from its last checkpoint (its ``config.yaml`` is reused; only
            ``timesteps``, which is then written to ``config.yaml``, and ``stop_at`` may be given with it).
        progress_bar: Show a progress bar.
        eval_freq: Steps between evaluations (0: only the final one).
        eval_episodes: Episodes per evaluation.
        checkpoint_freq: Steps between checkpoints (0: only at the end).
        runs_root: Root of default run directories.
        stop_at: Stop this session early, at the first rollout boundary at or after ``stop_at`` total steps (see
            *Stopping and exact resume* below). Training keeps the full ``timesteps`` horizon, so schedules
            (exploration, learning rate) are those of the uninterrupted run. A per-session instruction: it is not
            written to ``config.yaml``. None: train to ``timesteps``.
        callbacks: Extra SB3-style callbacks (``BaseCallback`` instances; QLearning takes the same interface),
            run after mmrl's own (evaluation, checkpoints, progress bar).

    Stopping and exact resume:
        Checkpoints are taken at rollout boundaries: at ``on_rollout_start`` for PPO/A2C/DQN (after the previous
        update, before the next env step; SB3 steps the env *before* ``callback.on_step()``, so a stop requested
        from ``on_step`` would leave the env one step ahead of the stored transitions) and after a complete step
        (table update, then ``_last_obs``) for QLearning. A checkpoint holds the model (with its last observation,
        step counters, optimizer and schedule state), the env state (``venv.get_state()``), the DQN replay buffer,
        the Python, NumPy and torch global RNG states and the ``action_space.np_random`` state (DQN explores with
        ``action_space.sample()``). Caches that are not saved but change results are emptied at every boundary in
        both runs: the extractors' text-encoding memos (:func:`mmrl.training.callbacks.reset_inference_memos`;
        DQN's target network would otherwise reuse encodings computed in other batches, off in the last bits).
        With ``stop_at``, the boundary checkpoint is written and training stops
        there without another env step (``result.metrics["stopped"]`` is True); the final ``model`` file is then
        the same model, and no newer checkpoint is written. ``train(resume=RUN_DIR, timesteps=T)`` continues from
        that checkpoint, and on CPU its parameters after ``T`` steps are bit-identical to an uninterrupted
        ``T``-step run with the same seed (tested for PPO, DQN with exploration, and QLearning in
        ``tests/test_fault_tolerance.py``), provided ``T`` is the ``timesteps`` of the stopped run (the schedules
        span the total horizon) and evaluation / checkpoint frequencies are the same. A stop with Ctrl-C, or
        resuming from a periodic checkpoint after a crash, is exact only from the last checkpoint.

    Returns:
        A :class:`TrainResult`; ``result.interrupted`` if Ctrl-C stopped training (the model is saved anyway).

    Nothing is written before the settings are validated: the envs and the model are built first (fusion, encoder,
    env arguments and the algorithm's own checks), then the run directory is created (or replaced with ``force``).
    If training fails before its first env step, the new run directory is removed again.

    Raises:
        ValueError: For invalid settings (unknown algo / env / preset key, wrong types, out-of-range values,
            combinations the algorithm refuses, settings given with ``resume``, ...).
        FileExistsError: If ``run_dir`` exists, is not empty and ``force`` is False.
        FileNotFoundError: For a missing preset or resume directory / checkpoint.
    """
    start_time = time.time()
    if stop_at is not None:
        stop_at = check_int("stop_at", stop_at, 1, " (or None)")
    checkpoint = None
    rewrite_config = False
    if resume is not None:
        _check_resume_arguments(
            algo,
            seed=seed,
            n_envs=n_envs,
            preset=preset,
            overrides=overrides,
            fusion=fusion,
            text_encoder=text_encoder,
            run_dir=run_dir,
            force=force,
            eval_freq=eval_freq,
            eval_episodes=eval_episodes,
            checkpoint_freq=checkpoint_freq,
        )
        run = RunDir(resume)
        checkpoint = run.latest_checkpoint()
        if checkpoint is None:
            raise FileNotFoundError(
                f"no complete checkpoint in {run.checkpoints_dir}; cannot resume {run.path} (start a new run, or "
                f"replace it with --force)"
            )
        config = TrainConfig.from_dict(run.config)
        if isinstance(algo, str) and algo != config.algo:
            raise ValueError(
                f"--resume {run.path} is a {config.algo} run; drop --algo {algo} or pass --algo {config.algo}"
            )
        if env_id is not None and env_id != config.env_id:
            raise ValueError(f"--resume {run.path} trained on {config.env_id}; drop --env {env_id}")
        if seed is not None and seed != config.seed:
            raise ValueError(f"--resume {run.path} was trained with seed {config.seed}; drop --seed {seed}")
        if timesteps is not None:
            timesteps = check_int("timesteps", timesteps, 1)
            rewrite_config = timesteps != config.timesteps
            config.timesteps = timesteps
        run_path = run.path
        new_run = False
    elif isinstance(algo, TrainConfig):
        config = complete_config(algo, preset)
        new_run = True
    else:
        if env_id is None:
            raise ValueError("env_id is required (e.g. train('ppo', 'mmrl/GoTo-5x5-v0')); or pass resume=RUN_DIR")
        config = resolve_config(
            algo,
            env_id,
            timesteps=timesteps,
            seed=0 if seed is None else seed,
            n_envs=n_envs,
            preset=preset,
            overrides=overrides,
            fusion=fusion,
            text_encoder=text_encoder,
            eval_freq=eval_freq,
            eval_episodes=eval_episodes,
            checkpoint_freq=checkpoint_freq,
        )
        new_run = True
    if new_run:
        run_path = (
            Path(run_dir)
            if run_dir is not None
            else default_run_dir(config.env_id, config.algo, config.seed, runs_root)
        )
        check_run_dir(run_path, force=force)  # fail early; nothing is touched before the settings are validated
    with torch_threads(config.torch_threads if config.algo != "qlearning" else None):
        # Envs and model first: a bad setting (fusion, encoder, env argument, SB3 constraint) raises here, before
        # the run directory is created, or an existing one replaced with --force.
        session = _build_session(config, checkpoint, Path(run_path))
        try:
            if new_run:
                run_path = prepare_run_dir(run_path, force=force)
                write_text(run_path / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
            elif rewrite_config:
                write_text(run_path / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
        except BaseException:
            session.close()
            raise
        try:
            return _run(config, Path(run_path), checkpoint, session, progress_bar, start_time, stop_at, callbacks)
        except BaseException:
            with contextlib.suppress(Exception):
                session.close()
            if new_run and int(session.model.num_timesteps) == 0:
                # failed before the first env step: nothing worth keeping, and the folder would block a rerun
                with contextlib.suppress(OSError):
                    shutil.rmtree(run_path)
            raise


#: Arguments of :func:`train` that a resumed run takes from its own ``config.yaml`` (argument -> CLI flag); giving
#: one with ``resume`` is an error rather than silently ignored.
RESUME_FIXED_SETTINGS = {
    "n_envs": "--n-envs",
    "preset": "--preset",
    "overrides": "--set",
    "fusion": "--fusion",
    "text_encoder": "--text-encoder",
    "run_dir": "--run-dir",
    "force": "--force",
    "eval_freq": "--eval-freq",
    "eval_episodes": "--set eval_episodes",
    "checkpoint_freq": "--checkpoint-freq",
}


def is_given(value: Any) -> bool:
    """Whether an optional argument was given (not left at ``None``, ``False`` or empty)."""
    return value not in (None, False, [], {})


def _check_resume_arguments(algo: Any, **given: Any) -> None:
    """With ``resume``, the run's own ``config.yaml`` is the configuration: refuse settings that would be ignored."""
    if isinstance(algo, TrainConfig):
        raise ValueError("resume takes the run's own config.yaml; pass algo as a string (or None), not a TrainConfig")
    ignored = [f"{flag} ({key})" for key, flag in RESUME_FIXED_SETTINGS.items() if is_given(given.get(key))]
    if ignored:
        raise ValueError(
            f"resume continues a run with its own config.yaml and cannot change {', '.join(ignored)}; drop them "
            "(only timesteps and stop_at may be given), or start a new run"
        )


def _record_evaluations(state_path: Path, tracker: dict[str, Any]) -> None:
    """Add the final evaluation (and the best return it may have set) to the checkpoint at the final step, so that
    a resumed run starts from the same history and never replaces ``best_model`` with a worse model."""
    if not state_path.is_file():
        return
    state = json.loads(state_path.read_text(encoding="utf-8"))
    state["evaluations"] = tracker["evaluations"]
    state["best_mean_return"] = tracker["best"] if np.isfinite(tracker["best"]) else None
    write_json(state_path, state)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Runs the block with ``torch.set_num_threads(count)`` and restores the previous count (None / 0: unchanged)."""
    if not count:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class _Session:
    """What :func:`train` builds before it touches the run directory: envs, model, and the resumed history."""

    venv: Any
    eval_env: Any
    model: Any
    evaluations: list[dict[str, Any]]
    best: float
    log_bytes: int | None = None
    """Size of ``monitor.csv`` at the resumed checkpoint (None: not recorded, or a new run)."""

    def close(self) -> None:
        self.venv.close()
        self.eval_env.close()


def _build_session(config: TrainConfig, checkpoint: Any, run_path: Path) -> _Session:
    """Build the training and evaluation envs and the model (new, or loaded from ``checkpoint`` with the env
    state, replay buffer, RNG states, monitor counters and evaluation history). Writes nothing.

    Raises:
        ValueError: For settings the env, the extractor or the algorithm refuse.
    """
    venv = _make_env(config, config.n_envs, config.seed)
    eval_env = None
    try:
        eval_env = _make_env(config, min(config.n_envs, config.eval_episodes), config.seed + EVAL_SEED_OFFSET)
        if checkpoint is None:
            model = _build_model(config, venv, run_path / TB_DIR)
            return _Session(venv, eval_env, model, [], -np.inf)
        return _resume_session(config, checkpoint, run_path, venv, eval_env)
    except BaseException:
        venv.close()
        if eval_env is not None:
            eval_env.close()
        raise


def _resume_session(config: TrainConfig, checkpoint: Any, run_path: Path, venv: Any, eval_env: Any) -> _Session:
    algo = config.algo
    base = _base_env(venv)
    state = checkpoint.state
    env_restored = False
    if checkpoint.env_state_path is not None and hasattr(base, "set_state"):
        base.set_state(load_env_state(checkpoint.env_state_path))
        env_restored = True
    kwargs: dict[str, Any] = {"tensorboard_log": str(run_path / TB_DIR), "force_reset": not env_restored}
    if algo != "qlearning":
        kwargs.update(device=config.device)
    model = load_model(checkpoint.model_path, env=venv, algo=algo, **kwargs)
    if algo == "dqn":
        if checkpoint.replay_buffer_path is not None:
            model.load_replay_buffer(checkpoint.replay_buffer_path)
        else:
            warnings.warn(
                f"{run_path}: the replay buffer of the checkpoint at {checkpoint.steps} steps is missing "
                f"(replay_buffer_{checkpoint.steps}_steps.pkl); DQN resumes with an EMPTY replay buffer, so it "
                f"collects learning_starts steps again and the result differs from an uninterrupted run",
                RuntimeWarning,
                stacklevel=4,
            )
    _restore_rng_states(state.get("rng", {}))
    if state.get("action_space_rng") is not None:
        # DQN explores with action_space.sample(): its generator is part of the training state
        model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    monitor = state.get("monitor")
    if monitor is not None:
        # the episodes running at the checkpoint continue (without an env state, SB3 resets the env and the
        # counters at the start of learn)
        venv.restore_counters(monitor)
    evaluations = list(state.get("evaluations", []))
    best_saved = state.get("best_mean_return")
    # Runs written before the final evaluation was recorded in the checkpoint: metrics.json of the session that
    # ended at this checkpoint has it (and best_model.zip may hold that model).
    metrics = _read_metrics(run_path)
    if metrics is not None and metrics.get("timesteps") == checkpoint.steps:
        recorded = metrics.get("evaluations")
        if isinstance(recorded, list) and len(recorded) > len(evaluations):
            evaluations = list(recorded)
        metrics_best = metrics.get("best_mean_return")
        if isinstance(metrics_best, (int, float)) and (best_saved is None or metrics_best > best_saved):
            best_saved = metrics_best
    best = -np.inf if best_saved is None else float(best_saved)
    log_bytes = None if monitor is None else monitor.get("log_bytes")
    return _Session(venv, eval_env, model, evaluations, best, log_bytes)


def _read_metrics(run_path: Path) -> dict[str, Any] | None:
    try:
        metrics = json.loads((run_path / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def _run(
    config: TrainConfig,
    run_path: Path,
    checkpoint: Any,
    session: _Session,
    progress_bar: bool,
    start_time: float,
    stop_at: int | None = None,
    extra_callbacks: list[Any] | None = None,
) -> TrainResult:
    from mmrl.training.callbacks import EpisodeStats, PeriodicCallback, ProgressBarCallback, StopAtBoundary

    algo = config.algo
    venv, eval_env, model = session.venv, session.eval_env, session.model
    venv.open_log(run_path / MONITOR_FILE, config.env_id, append=checkpoint is not None, keep_bytes=session.log_bytes)
    base = _base_env(venv)
    try:
        tokenizer = venv.get_attr("tokenizer")[0]
        write_json(run_path / TOKENIZER_FILE, tokenizer.to_config())
    except (AttributeError, IndexError):
        pass
    evaluations, best = session.evaluations, session.best

    tracker = {"best": best, "evaluations": evaluations}

    def evaluate(current: Any) -> None:
        result = evaluate_model(current, eval_env, config.eval_episodes, config.seed + EVAL_SEED_OFFSET)
        tracker["evaluations"].append({"timesteps": int(current.num_timesteps), **result})
        if result["mean_return"] > tracker["best"]:
            tracker["best"] = result["mean_return"]
            with sigint_deferred():
                _save_model(current, run_path / f"best_model{model_suffix(algo)}", algo)

    def save_checkpoint(current: Any) -> None:
        with sigint_deferred():
            _write_checkpoint(current)

    def _write_checkpoint(current: Any) -> None:
        steps = int(current.num_timesteps)
        paths = checkpoint_paths(run_path, steps, algo)
        _save_model(current, paths["model"], algo)
        if algo == "dqn":
            with atomic_path(paths["replay_buffer"]) as tmp:
                current.save_replay_buffer(tmp)
        if hasattr(base, "get_state"):
            save_env_state(paths["env_state"], base.get_state())
        write_json(
            paths["state"],
            {
                "steps": steps,
                "rng": _rng_states(),
                "action_space_rng": current.action_space.np_random.bit_generator.state,
                "evaluations": tracker["evaluations"],
                "best_mean_return": tracker["best"] if np.isfinite(tracker["best"]) else None,
                "monitor": venv.counters(),
            },
        )
        # Only now is the new checkpoint complete (state_*.json is written last): a crash before this point
        # leaves the previous checkpoint with its replay buffer. Older buffers are dropped (they are large).
        if algo == "dqn":
            for old in paths["replay_buffer"].parent.glob("replay_buffer_*_steps.pkl"):
                if old != paths["replay_buffer"]:
                    old.unlink(missing_ok=True)

    stats = EpisodeStats()
    start_steps = int(model.num_timesteps)
    remaining = max(int(config.timesteps) - start_steps, 0)
    stopped = False
    if stop_at is not None and stop_at <= start_steps:
        remaining, stopped = 0, True  # already at or past the stop: the loaded checkpoint is the boundary
    interrupt = GracefulInterrupt()
    periodic = PeriodicCallback(
        stats,
        evaluate,
        save_checkpoint,
        eval_freq=config.eval_freq,
        checkpoint_freq=config.checkpoint_freq,
        checkpoint_on_step=algo == "qlearning",
        stop_at=stop_at,
        stop_requested=lambda: interrupt.requested,
    )
    callbacks: list[Any] = [periodic]
    bar = ProgressBarCallback(int(config.timesteps), stats) if progress_bar else None
    if bar is not None:
        callbacks.append(bar)
    callbacks.extend(extra_callbacks or [])
    learn_start = time.time()
    interrupted = False
    try:
        if remaining > 0:
            with interrupt:
                model.learn(remaining, callback=callbacks, reset_num_timesteps=checkpoint is None, tb_log_name="run")
    except StopAtBoundary:
        pass  # the boundary checkpoint is written; the model is exactly in its state
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    interrupted = interrupted or interrupt.requested
    stopped = stopped or periodic.stopped_at is not None
    learn_time = time.time() - learn_start
    # A checkpoint already written at the current step (the loaded one, or the stop boundary's) is kept as is.
    written = start_steps if checkpoint is not None else None
    if periodic.last_checkpoint_steps is not None:
        written = periodic.last_checkpoint_steps
    with sigint_ignored():
        _save_model(model, run_path / f"model{model_suffix(algo)}", algo)
        if int(model.num_timesteps) > 0 and int(model.num_timesteps) != written:
            save_checkpoint(model)
    metrics: dict[str, Any] = {
        "algo": algo,
        "env_id": config.env_id,
        "timesteps": int(model.num_timesteps),
        "wall_time_s": time.time() - start_time,
        "fps": (int(model.num_timesteps) - start_steps) / max(learn_time, 1e-9),
        "interrupted": interrupted,
        "stopped": stopped,
        "train_mean_return": stats.mean_return,
        "train_success_rate": stats.success_rate,
    }
    if not interrupted:
        final = evaluate_model(model, eval_env, config.eval_episodes, config.seed + EVAL_SEED_OFFSET)
        metrics.update(final)
        tracker["evaluations"].append({"timesteps": int(model.num_timesteps), **final})
        with sigint_ignored():
            if final["mean_return"] > tracker["best"]:
                tracker["best"] = final["mean_return"]
                _save_model(model, run_path / f"best_model{model_suffix(algo)}", algo)
            _record_evaluations(checkpoint_paths(run_path, int(model.num_timesteps), algo)["state"], tracker)
    metrics["best_mean_return"] = tracker["best"] if np.isfinite(tracker["best"]) else None
    metrics["evaluations"] = tracker["evaluations"]
    write_metrics(run_path, metrics)
    session.close()
    return TrainResult(run_dir=run_path, model=model, metrics=metrics, config=config)

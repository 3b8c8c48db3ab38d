"""``train(...)``: build envs and model from a resolved :class:`TrainConfig`, learn, evaluate, write the run dir."""

from __future__ import annotations

import contextlib
import glob
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmrl.algorithms import AlgorithmSpec, get_spec
from mmrl.atomic import write_json, write_text
from mmrl.checks import check_int
from mmrl.threads import resolve_threads, torch_threads
from mmrl.training.best_model import BestModelTracker
from mmrl.training.checkpointing import CheckpointWriter, record_evaluations, save_model
from mmrl.training.claim import RunLock, RunPlacement, recover_siblings
from mmrl.training.config import TrainConfig
from mmrl.training.final_model import choose_final_model
from mmrl.training.interrupts import GracefulInterrupt, sigint_deferred, sigint_ignored
from mmrl.training.presets import complete_config, resolve_config
from mmrl.training.run_dir import (
    CONFIG_FILE,
    MONITOR_FILE,
    TB_DIR,
    TOKENIZER_FILE,
    Checkpoint,
    RunDir,
    check_run_dir,
    checkpoint_paths,
    default_run_dir,
    write_metrics,
)
from mmrl.training.session import EVAL_SEED_OFFSET, Session, base_env, build_session
from mmrl.trust import check_env_id_from_file

__all__ = ["EVAL_SEED_OFFSET", "RESUME_FIXED_SETTINGS", "TrainResult", "is_given", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    """The run directory (layout: :mod:`mmrl.training.run_dir`)."""
    model: Any
    """The trained model (an SB3 algorithm or :class:`mmrl.agents.QLearning`)."""
    metrics: dict[str, Any]
    """The content of ``metrics.json`` (final evaluation, timesteps, wall time, fps, interrupted)."""
    config: TrainConfig
    """The resolved configuration (``config.yaml``)."""

    @property
    def interrupted(self) -> bool:
        """True if training was stopped with Ctrl-C (the model was still saved)."""
        return bool(self.metrics.get("interrupted", False))


def train(
    algo: str | TrainConfig | None,
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
        algo: A registered algorithm (:func:`mmrl.algorithms.algorithm_names`: ``"ppo"``, ``"a2c"``, ``"dqn"``,
            ``"qlearning"``, ``"recurrent_ppo"``), or a :class:`TrainConfig` (then leave ``env_id``, ``timesteps``,
            ``seed``, ``n_envs``, ``overrides``, ``fusion``, ``text_encoder``, ``eval_freq``, ``eval_episodes`` and
            ``checkpoint_freq`` unset), or None with ``resume``.
        env_id: Registered env id (e.g. ``"mmrl/GoTo-5x5-v0"``).
        timesteps: Total env steps (default: the preset's). With ``resume``: the new total.
        seed: Seed of model and training envs (default 0; with ``resume`` only the run's own seed may be given).
        n_envs: Parallel envs (default: the preset's).
        preset: Preset YAML (default ``agents/<algo>.yaml``; schema in :mod:`mmrl.training.presets`).
        overrides: ``["key=value", ...]`` or a dict overriding preset keys (``env_kwargs.<name>`` for env args).
        fusion: Extractor fusion (overrides the preset).
        text_encoder: Extractor text encoder (overrides the preset).
        run_dir: Run directory (default ``<runs_root>/<env>/<algo>/<seed>-<time>``).
        force: Replace an existing run directory at ``run_dir``, once the new run's envs and model are built.
        resume: A run directory to continue from its last checkpoint with its own ``config.yaml``; only
            ``timesteps`` (written to ``config.yaml``), ``stop_at`` and ``callbacks`` may be given with it.
        progress_bar: Show a progress bar.
        eval_freq: Steps between evaluations (0: only the final one).
        eval_episodes: Episodes per evaluation.
        checkpoint_freq: Steps between checkpoints (0: only at the end).
        runs_root: Root of default run directories.
        stop_at: Stop this session at the first rollout boundary at or after ``stop_at`` total steps, keeping the
            full ``timesteps`` horizon for schedules; not written to ``config.yaml``. None: train to ``timesteps``.
        callbacks: Extra SB3-style callbacks, run after mmrl's own (non-finite guard, evaluation and checkpoints,
            progress bar) at every event.

    Stopping and exact resume:
        Checkpoints are taken at rollout boundaries (for Q-learning: after any complete step) and hold everything
        the next steps depend on (:mod:`mmrl.training.checkpointing`). With ``stop_at``, the boundary checkpoint
        is written and training stops there (``result.metrics["stopped"]``). ``train(resume=RUN_DIR,
        timesteps=T)`` continues from the last checkpoint; on CPU the parameters after ``T`` steps are
        bit-identical to an uninterrupted ``T``-step run with the same seed, when ``T`` is the stopped run's
        ``timesteps`` and the evaluation / checkpoint frequencies are the same. After Ctrl-C or a crash, a run
        resumes exactly from its last checkpoint.

    Returns:
        A :class:`TrainResult`; ``result.interrupted`` if Ctrl-C stopped training (the model is saved anyway).

    Raises:
        ValueError: For invalid settings (unknown algo / env / preset key, wrong types, out-of-range values,
            combinations the algorithm refuses, settings given with ``resume``, ...), and
            :class:`mmrl.safety.NonFiniteError` when ``check_finite`` catches a NaN / inf.
        FileExistsError: If ``run_dir`` exists, is not empty and ``force`` is False.
        FileNotFoundError: For a missing preset or resume directory / checkpoint.
    """
    start_time = time.time()
    if stop_at is not None:
        stop_at = check_int("stop_at", stop_at, 1, " (or None)")
    if callbacks is not None and not isinstance(callbacks, list):
        raise TypeError(f"callbacks must be a list of SB3 callbacks or None, got {type(callbacks).__name__}")
    checkpoint: Checkpoint | None = None
    rewrite_config = False
    lock: RunLock | None = None
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
        run_path = Path(resume)
        moved_aside = run_path.parent.is_dir() and any(
            run_path.parent.glob(f".{glob.escape(run_path.name)}.replaced-*")
        )
        if run_path.is_dir() or moved_aside:  # a killed replacement may have left the run moved aside
            lock = RunLock(run_path).acquire()
        try:
            if lock is not None:
                recover_siblings(run_path)
            config, checkpoint, rewrite_config = _resume_config(resume, algo, env_id, seed, timesteps)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
    else:
        if isinstance(algo, TrainConfig):
            config = complete_config(algo, preset)
        else:
            if algo is None or env_id is None:
                raise ValueError(
                    "algo and env_id are required (e.g. train('ppo', 'mmrl/GoTo-5x5-v0')); or pass resume=RUN_DIR"
                )
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
        run_path = (
            Path(run_dir)
            if run_dir is not None
            else default_run_dir(config.env_id, config.algo, config.seed, runs_root)
        )
    try:
        check_finite_settings(config)
        if lock is None:
            check_run_dir(run_path, force=force)  # fail early; nothing is touched before the settings are validated
        with torch_threads(resolve_threads(config.torch_threads) if get_spec(config.algo).uses_torch_threads else None):
            return _train_session(
                config,
                run_path,
                checkpoint,
                rewrite_config,
                lock,
                force,
                progress_bar,
                start_time,
                stop_at,
                callbacks or [],
            )
    finally:
        if lock is not None:
            lock.release()


def _train_session(
    config: TrainConfig,
    run_path: Path,
    checkpoint: Checkpoint | None,
    rewrite_config: bool,
    lock: RunLock | None,
    force: bool,
    progress_bar: bool,
    start_time: float,
    stop_at: int | None,
    callbacks: list[Any],
) -> TrainResult:
    """Build envs and model, claim the run directory (a new run: lock it, place it), train, release."""
    # envs and model first: a bad setting raises here, before the run directory is created or replaced
    session = build_session(config, checkpoint, run_path, progress=progress_bar)
    placement: RunPlacement | None = None
    own_lock = None
    try:
        if checkpoint is None:
            own_lock = RunLock(run_path).acquire()
            recover_siblings(run_path)
            check_run_dir(run_path, force=force)  # again, now that no other writer can change it
            placement = RunPlacement(run_path, force)
            session.model.tensorboard_log = str(placement.path / TB_DIR)
        if checkpoint is None or rewrite_config:
            folder = placement.path if placement is not None else run_path
            write_text(folder / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
    except BaseException:
        session.close()
        if placement is not None:
            placement.abandon()
        if own_lock is not None:
            own_lock.release()
        raise
    try:
        return _run(config, run_path, checkpoint, session, progress_bar, start_time, stop_at, callbacks, placement)
    except BaseException:
        with contextlib.suppress(Exception):
            session.close()
        if placement is not None and placement.replacing:
            placement.abandon()  # the old run stays
        elif checkpoint is None and int(session.model.num_timesteps) == 0:
            # failed before the first env step: nothing worth keeping, and the folder would block a rerun
            with contextlib.suppress(OSError):
                shutil.rmtree(run_path)
        raise
    finally:
        if own_lock is not None:
            own_lock.release()


def check_finite_settings(config: TrainConfig) -> None:
    """Refuse NaN / infinite numbers among the hyperparameters before anything is built.

    Raises:
        ValueError: Naming the setting.
    """
    for key, value in sorted(config.hyperparams.items()):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key} is {value}; hyperparameters must be finite numbers: fix it with --set {key}=...")


def _resume_config(
    resume: str | os.PathLike[str], algo: Any, env_id: str | None, seed: int | None, timesteps: int | None
) -> tuple[TrainConfig, Checkpoint, bool]:
    """The configuration and last checkpoint of the run to resume, and whether ``config.yaml`` must be rewritten
    (a new ``timesteps``)."""
    run = RunDir(resume)
    checkpoint = run.latest_checkpoint()
    if checkpoint is None:
        raise FileNotFoundError(
            f"no complete checkpoint in {run.checkpoints_dir}; cannot resume {run.path} (start a new run, or "
            f"replace it with --force)"
        )
    config = TrainConfig.from_dict(run.config)
    check_env_id_from_file(config.env_id, f"{run.path / CONFIG_FILE}")
    if isinstance(algo, str) and algo != config.algo:
        raise ValueError(f"--resume {run.path} is a {config.algo} run; drop --algo {algo} or pass --algo {config.algo}")
    if env_id is not None and env_id != config.env_id:
        raise ValueError(f"--resume {run.path} trained on {config.env_id}; drop --env {env_id}")
    if seed is not None and seed != config.seed:
        raise ValueError(f"--resume {run.path} was trained with seed {config.seed}; drop --seed {seed}")
    rewrite = False
    if timesteps is not None:
        timesteps = check_int("timesteps", timesteps, 1)
        rewrite = timesteps != config.timesteps
        config.timesteps = timesteps
    return config, checkpoint, rewrite


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


def _run(
    config: TrainConfig,
    run_path: Path,
    checkpoint: Checkpoint | None,
    session: Session,
    progress_bar: bool,
    start_time: float,
    stop_at: int | None = None,
    extra_callbacks: list[Any] | None = None,
    placement: RunPlacement | None = None,
) -> TrainResult:
    """Learn in a prepared run directory (or its staged replacement, swapped in after the first update), then save
    the model, evaluate it and write ``metrics.json``."""
    from mmrl.training.callbacks import (
        CommitAfterFirstUpdate,
        EpisodeStats,
        PeriodicCallback,
        ProgressBarCallback,
        StopAtBoundary,
    )

    spec = get_spec(config.algo)
    model, venv = session.model, session.venv
    final_path, run_path = run_path, (placement.path if placement is not None else run_path)
    venv.open_log(run_path / MONITOR_FILE, config.env_id, append=checkpoint is not None, keep_bytes=session.log_bytes)
    _write_tokenizer(venv, run_path)
    assert config.eval_episodes is not None and config.timesteps is not None
    tracker = BestModelTracker(
        run_path,
        spec,
        session.eval_env,
        config.eval_episodes,
        config.seed + EVAL_SEED_OFFSET,
        session.evaluations,
        session.best,
    )
    save_checkpoint = CheckpointWriter(run_path, spec, venv, base_env(venv), tracker.history)
    committer: list[Any] = []
    if placement is not None and placement.replacing:
        staging = placement.path

        def moved(path: Path) -> None:
            save_checkpoint.run_path = path
            tracker.path = path / tracker.path.name
            venv.log_path = path / MONITOR_FILE
            _follow_tensorboard(model, staging, path)

        def commit(current: Any) -> None:
            with sigint_deferred():
                save_model(current, placement.path / f"model{spec.suffix}", spec)
                placement.commit()

        placement.on_commit.append(moved)
        committer.append(CommitAfterFirstUpdate(commit, after_step=spec.checkpoint_on_step))
    stats = EpisodeStats()
    start_steps = int(model.num_timesteps)
    remaining = max(int(config.timesteps) - start_steps, 0)
    stopped = False
    if stop_at is not None and stop_at <= start_steps:
        remaining, stopped = 0, True  # already at or past the stop: the loaded checkpoint is the boundary
    interrupt = GracefulInterrupt()
    periodic = PeriodicCallback(
        stats,
        tracker.evaluate,
        save_checkpoint,
        eval_freq=int(config.eval_freq or 0),
        checkpoint_freq=int(config.checkpoint_freq or 0),
        checkpoint_on_step=spec.checkpoint_on_step,
        stop_at=stop_at,
        stop_requested=lambda: interrupt.requested,
        stop_success=config.stop_success,
    )
    bar = ProgressBarCallback(int(config.timesteps), stats) if progress_bar else None
    callbacks = [
        *_guard(config, spec),
        *committer,
        periodic,
        *([bar] if bar is not None else []),
        *(extra_callbacks or []),
    ]
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
    steps = int(model.num_timesteps)
    # A checkpoint already written at the current step (the loaded one, or the stop boundary's) is kept as is.
    written = start_steps if checkpoint is not None else None
    if periodic.last_checkpoint_steps is not None:
        written = periodic.last_checkpoint_steps
    run_path = final_path
    with sigint_ignored():
        if placement is not None:
            placement.commit()  # no-op unless training ended before its second rollout
        save_model(model, run_path / f"model{spec.suffix}", spec)
        if steps > 0 and steps != written:
            save_checkpoint(model)
    metrics: dict[str, Any] = {
        "algo": config.algo,
        "env_id": config.env_id,
        "timesteps": steps,
        "wall_time_s": time.time() - start_time,
        "fps": (steps - start_steps) / max(learn_time, 1e-9),
        "interrupted": interrupted,
        "stopped": stopped,
        "stopped_on_success": periodic.stopped_on_success,
        "train_mean_return": stats.mean_return,
        "train_success_rate": stats.success_rate,
    }
    if not interrupted:
        final = tracker.measure(model)
        metrics.update(final)
        with sigint_ignored():
            tracker.record(model, final)
            record_evaluations(checkpoint_paths(run_path, steps, spec.name)["state"], tracker.evaluations, tracker.best)
            if not stopped or periodic.stopped_on_success is not None:  # the run's end, not a --stop-at boundary
                metrics.update(choose_final_model(config.final_model, model, run_path, spec, tracker))
    if session.cloning is not None:
        metrics["cloning"] = session.cloning
    metrics["best_mean_return"] = tracker.best_or_none
    metrics["evaluations"] = tracker.evaluations
    metrics["session_timesteps"] = steps - start_steps
    metrics["eval_seed"] = config.seed + EVAL_SEED_OFFSET
    if tracker.evaluations:
        with sigint_ignored():  # after a Ctrl-C it may still have to play its episodes; metrics.json comes next
            metrics["random_baseline"] = tracker.baseline
    write_metrics(run_path, metrics)
    session.close()
    return TrainResult(run_dir=run_path, model=model, metrics=metrics, config=config)


def _follow_tensorboard(model: Any, old_root: Path, new_root: Path) -> None:
    """Point the model's TensorBoard writers at the run's new place after the staged run was moved into it (the
    event writer reopens its file by path, so writes to the old path would fail)."""
    try:
        formats = model.logger.output_formats
    except AttributeError:
        return
    from stable_baselines3.common.logger import TensorBoardOutputFormat
    from torch.utils.tensorboard import SummaryWriter

    for output in formats:
        if isinstance(output, TensorBoardOutputFormat):
            folder = Path(output.writer.log_dir)
            if folder.is_relative_to(old_root):
                output.writer.close()
                output.writer = SummaryWriter(log_dir=str(new_root / folder.relative_to(old_root)))


def _guard(config: TrainConfig, spec: AlgorithmSpec) -> list[Any]:
    """The non-finite guard when ``config.check_finite`` (policy parameters and losses only for SB3 models)."""
    if not config.check_finite:
        return []
    from mmrl.safety import NonFiniteGuard

    return [NonFiniteGuard(check_parameters=spec.sb3, check_losses=spec.sb3)]


def _write_tokenizer(venv: Any, run_path: Path) -> None:
    """``tokenizer.json`` from the envs' tokenizer, if they have one."""
    try:
        tokenizer = venv.get_attr("tokenizer")[0]
    except (AttributeError, IndexError):
        return
    write_json(run_path / TOKENIZER_FILE, tokenizer.to_config())

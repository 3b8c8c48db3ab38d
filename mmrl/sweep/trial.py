"""One sweep trial (one seed of one configuration) as a Ray Tune function trainable, and the sweep folder layout.

Layout of a sweep folder::

    <sweep_dir>/
        sweep.json                       the validated spec (``SweepSpec.to_dict()``)
        runs/<config>/config.json        the configuration: env id, searched values, label
        runs/<config>/seed-<s>/          an ordinary mmrl run directory (``mmrl evaluate`` / ``mmrl plot`` take it)
        runs/<config>/seed-<s>.trial.json   attempts, errors, node, wall time of the trial
        tune/                            Ray Tune's experiment state (``--resume`` restores it)
        results.csv, results.json, results.md, results.png   the report (:mod:`mmrl.sweep.results`)

A retried trial (a crash, a lost node) continues its run directory from the last mmrl checkpoint
(``mmrl.train(resume=...)``); a trial whose run already finished reports it again without training.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrl.atomic import write_json

__all__ = ["RUNS_DIR", "SweepContext", "config_dir_name", "config_label", "run_trial", "trial_metrics"]

RUNS_DIR = "runs"
SEED_KEY = "seed"
INDEX_KEY = "__trial_index__"  # set by Tune's Repeater (Optuna search): the seed's position in spec.seeds
ENV_KEY = "env_id"


@dataclass(frozen=True)
class SweepContext:
    """What every trial of a sweep shares (sent to the workers with the trainable)."""

    sweep_dir: str
    algo: str
    timesteps: int
    seeds: tuple[int, ...]
    settings: dict[str, Any]
    metric: str
    threshold: float
    report_every: int
    preset: str | None = None


def searched_params(config: dict[str, Any]) -> dict[str, Any]:
    """The searched values of a Tune config (without env id, seed and Tune's own keys)."""
    return {k: v for k, v in config.items() if k not in (SEED_KEY, INDEX_KEY, ENV_KEY)}


def config_label(env_id: str, params: dict[str, Any], with_env: bool = False) -> str:
    """A short readable name of a configuration, e.g. ``fusion=concat learning_rate=0.0003``."""
    parts = [f"{k}={_short(v)}" for k, v in sorted(params.items())]
    if with_env or not parts:
        parts.insert(0, env_id)
    return " ".join(parts)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def config_dir_name(env_id: str, params: dict[str, Any]) -> str:
    """The folder of a configuration under ``runs/``: a readable slug and a hash of the exact values."""
    exact = json.dumps({ENV_KEY: env_id, **params}, sort_keys=True, default=str)
    digest = hashlib.sha1(exact.encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9.=_-]+", "_", config_label(env_id, params, with_env=False))[:60].strip("_")
    return f"{slug}-{digest}"


def trial_paths(context: SweepContext, env_id: str, params: dict[str, Any], seed: int) -> tuple[Path, Path, Path]:
    """(config folder, run directory, trial record) of one trial."""
    folder = Path(context.sweep_dir) / RUNS_DIR / config_dir_name(env_id, params)
    return folder, folder / f"seed-{seed}", folder / f"seed-{seed}.trial.json"


def trial_metrics(metrics: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The numbers a sweep reports for a finished run (from its ``metrics.json``)."""
    frames = None
    for evaluation in metrics.get("evaluations") or []:
        rate = evaluation.get("success_rate")
        if rate is not None and rate >= threshold:
            frames = int(evaluation["timesteps"])
            break
    return {
        "success": metrics.get("success_rate"),
        "mean_return": metrics.get("mean_return"),
        "frames_to_threshold": frames,
        "timesteps": metrics.get("timesteps"),
    }


def objective(numbers: dict[str, Any], metric: str, budget: int) -> float:
    """The value Tune optimises: the metric, with an unreached threshold counted as ``budget + 1`` frames."""
    value = numbers.get(metric)
    if value is None:
        return float(budget + 1) if metric == "frames_to_threshold" else 0.0
    return float(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _reporter(context: SweepContext, report: Any) -> Any:
    """An SB3 callback that reports training progress to Tune every ``context.report_every`` steps."""
    from collections import deque

    from stable_baselines3.common.callbacks import BaseCallback

    class TuneProgress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.successes: deque[float] = deque(maxlen=100)
            self.returns: deque[float] = deque(maxlen=100)
            self.next_report = 0
            self.reached: int | None = None

        def _on_training_start(self) -> None:
            self.next_report = int(self.model.num_timesteps) + context.report_every

        def _on_step(self) -> bool:
            for info in self.locals.get("infos") or []:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
                    if "is_success" in info:
                        self.successes.append(float(info["is_success"]))
            steps = int(self.model.num_timesteps)
            rate = sum(self.successes) / len(self.successes) if self.successes else None
            if self.reached is None and rate is not None and len(self.successes) >= 20 and rate >= context.threshold:
                self.reached = steps
            if steps >= self.next_report:
                self.next_report = steps + context.report_every
                during = {"success": rate or 0.0, "frames_to_threshold": self.reached}
                report(
                    {
                        "timesteps": steps,
                        "objective": objective(during, context.metric, context.timesteps),
                        "train_success_rate": rate,
                        "train_mean_return": sum(self.returns) / len(self.returns) if self.returns else None,
                        "finished": False,
                    }
                )
            return True

    return TuneProgress()


def run_trial(config: dict[str, Any], context: SweepContext) -> None:
    """Train one seed of one configuration into its run directory and report to Ray Tune.

    Continues the run directory from its last checkpoint when an earlier attempt left one (a retry after a crash
    or a lost node); reports a finished run again without training.
    """
    from ray import tune

    import mmrl
    from mmrl.training.run_dir import RunDir

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    env_id = config[ENV_KEY]
    seed = config[SEED_KEY] if SEED_KEY in config else context.seeds[int(config[INDEX_KEY]) % len(context.seeds)]
    params = searched_params(config)
    folder, run_dir, record_path = trial_paths(context, env_id, params, seed)
    folder.mkdir(parents=True, exist_ok=True)
    label = config_label(env_id, params)
    write_json(folder / "config.json", {"env_id": env_id, "params": params, "label": label})
    record = _read_json(record_path)
    # a trial that finished as an interrupted sweep stopped can be handed out again on --resume (Tune had not yet
    # recorded its end): it is reported from its metrics, not counted as another attempt
    finished = _finished_metrics(run_dir, context.timesteps)
    record.update(
        env_id=env_id,
        params=params,
        seed=seed,
        attempts=int(record.get("attempts", 0)) + (finished is None),
        status="running",
        node=socket.gethostname(),
        pid=os.getpid(),
    )
    write_json(record_path, record)
    started = time.time()
    try:
        metrics = finished
        if metrics is None:
            reporter = _reporter(context, tune.report)
            checkpoint = RunDir(run_dir).latest_checkpoint() if (run_dir / "config.yaml").is_file() else None
            if checkpoint is not None:
                record["resumed_from"] = checkpoint.steps
                write_json(record_path, record)
                result = mmrl.train(
                    None, resume=run_dir, timesteps=context.timesteps, progress_bar=False, callbacks=[reporter]
                )
            else:
                result = mmrl.train(
                    context.algo,
                    env_id,
                    timesteps=context.timesteps,
                    seed=seed,
                    run_dir=run_dir,
                    force=(run_dir / "config.yaml").is_file(),
                    preset=context.preset,
                    overrides={**context.settings, **params, "torch_threads": 1},
                    progress_bar=False,
                    callbacks=[reporter],
                )
            if result.interrupted:
                raise RuntimeError(f"training in {run_dir} was interrupted; the sweep retries it from its checkpoint")
            metrics = result.metrics
    except SystemExit as error:
        if error.code not in (0, None):
            raise
        # Tune ends a trial its scheduler stops (ASHA) with SystemExit(0): stopped early, not failed
        record.update(status="stopped", wall_time_s=float(record.get("wall_time_s", 0.0)) + time.time() - started)
        write_json(record_path, record)
        raise
    except BaseException as error:
        record.update(status="failed", wall_time_s=float(record.get("wall_time_s", 0.0)) + time.time() - started)
        errors = list(record.get("errors", []))[-9:]
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        errors.append(f"attempt {record['attempts']}: {detail}"[:2000])
        record["errors"] = errors
        write_json(record_path, record)
        raise
    numbers = trial_metrics(metrics, context.threshold)
    record.update(status="done", wall_time_s=float(record.get("wall_time_s", 0.0)) + time.time() - started)
    write_json(record_path, record)
    tune.report(
        {
            **{k: v for k, v in numbers.items() if v is not None},
            "objective": objective(numbers, context.metric, context.timesteps),
            "run_dir": str(run_dir),
            "finished": True,
        }
    )


def _finished_metrics(run_dir: Path, timesteps: int) -> dict[str, Any] | None:
    """``metrics.json`` of a run that already trained its full budget (an earlier attempt finished it)."""
    metrics = _read_json(run_dir / "metrics.json")
    finished = metrics and not metrics.get("interrupted") and "success_rate" in metrics
    if finished and int(metrics.get("timesteps", 0)) >= timesteps:
        return metrics
    return None
